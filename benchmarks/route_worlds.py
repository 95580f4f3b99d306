"""Routing one signal at a time: on each world of testkit/signalworlds.py (the topic lives only in the
picture, only in a shared sound, only in speech, only in the caption, in two at once with a misleading
third, with the creator deciding engagement, or with engagement driven by nothing), precision@k of the
default Route, of fixed default weights (robust and z-score fusion) and of each modality alone; and the
content prior's Spearman with the queries' true rates and its 80% interval's coverage, with 95% intervals.

Each world gets a fresh `coldopen serve` process (random-init ViT-B-32 on the CPU, the bundled Whisper
and MiniLM), its corpus ingested and engaged over gRPC, its held-out queries routed as uploads (not
stored). --old-tree CHECKOUT runs the same worlds against another checkout's server too (the code before
a change), side by side in the same run.

    python -m benchmarks.route_worlds [--per-topic 16] [--queries 3] [-k 4] [--worlds "sound;speech"]
                                      [--old-tree /tmp/before] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from testkit import routeworld, signalworlds
from testkit.paths import REPO
from testkit.serveproc import ServeProcess


def bootstrap(values: list[float], stat=np.mean, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of a statistic over small samples."""
    rng = np.random.default_rng(seed)
    v = np.asarray(values, dtype=float)
    draws = [stat(v[rng.integers(0, len(v), len(v))]) for _ in range(n)]
    draws = [d for d in draws if np.isfinite(d)]
    return (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))) if draws else (float("nan"),) * 2


def spearman(pairs: np.ndarray) -> float:
    from coldopen.ranking.coldstart.prior import spearman as rho

    return rho(pairs[:, 0], pairs[:, 1])


def wilson(hits: int, n: int) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    z, p = 1.96, hits / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def run_world(spec: signalworlds.WorldSpec, corpus, queries, repo: Path, work: Path, k: int) -> dict:
    from coldopen.api.client import Client

    server = ServeProcess(work / "data", work / "serve.log", *signalworlds.serve_flags(corpus), repo=repo)
    try:
        with Client(server.address, timeout=600) as client:
            started = time.perf_counter()
            routeworld.load(client, corpus)
            loaded = time.perf_counter() - started
            ev = signalworlds.evaluate(client, corpus, queries, k)
    finally:
        server.close()
    calibrated = [line.split("] ", 1)[-1] for line in (work / "serve.log").read_text(errors="replace").splitlines()
                  if "content prior calibrated" in line]
    priors = np.array([(m, r) for m, _, _, r in ev.priors])
    covered = sum(lo <= r <= hi for _, lo, hi, r in ev.priors)
    out = {name: {"precision": ev.mean(name), "ci95": bootstrap(v) if v else None, "queries": len(v) if v else 0}
           for name, v in ev.precision.items()}
    best, best_p = ev.best_single()
    rho = spearman(priors)
    return {
        "precision_at_k": out, "best_single": best, "best_single_precision": best_p,
        "default_minus_best": (ev.mean("Route (default)") or 0.0) - best_p,
        "prior_spearman": rho, "prior_spearman_ci95": bootstrap(list(range(len(priors))),
                                                                   stat=lambda i: spearman(priors[i.astype(int)])),
        "prior_coverage": covered / len(ev.priors), "prior_coverage_ci95": wilson(covered, len(ev.priors)),
        "weights_basis": ev.bases, "weights_reasons": ev.reasons, "load_s": round(loaded, 1),
        "last_calibration": calibrated[-1] if calibrated else "",  # the server's log line: per-signal Spearman, weights
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-topic", type=int, default=16, help="corpus videos per topic (six topics)")
    p.add_argument("--queries", type=int, default=3, help="held-out uploads per topic")
    p.add_argument("-k", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worlds", default="", help="names separated by semicolons (default: all): " + ", ".join(signalworlds.WORLDS))
    p.add_argument("--old-tree", type=Path, help="another checkout whose server runs the same worlds, side by side")
    p.add_argument("--skip-now", action="store_true", help="run only --old-tree (to complete an earlier run's worlds)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    names = [w.strip() for w in args.worlds.split(";") if w.strip()] or list(signalworlds.WORLDS)
    unknown = [n for n in names if n not in signalworlds.WORLDS]
    if unknown:
        p.error(f"unknown worlds {unknown}; choose from {list(signalworlds.WORLDS)}")
    trees = {**({} if args.skip_now else {"now": REPO}), **({"before": args.old_tree.resolve()} if args.old_tree else {})}
    report: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{platform.machine()} cores={os.cpu_count()}", "k": args.k, "per_topic": args.per_topic,
                    "queries_per_topic": args.queries, "seed": args.seed, "worlds": {}}
    for name in names:
        spec = signalworlds.WORLDS[name]
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            corpus, queries = signalworlds.make(spec, Path(tmp) / "clips", args.per_topic, args.queries, args.seed)
            print(f"{name}: {len(corpus)} videos, {len(queries)} queries, built in {time.perf_counter() - started:.0f} s",
                  flush=True)
            report["worlds"][name] = {}
            for label, repo in trees.items():
                work = Path(tmp) / label
                work.mkdir()
                row = run_world(spec, corpus, queries, repo, work, args.k)
                report["worlds"][name][label] = row
                print(f"  {label}: " + json.dumps({"default": row["precision_at_k"]["Route (default)"]["precision"],
                                                   "best": [row["best_single"], row["best_single_precision"]],
                                                   "spearman": row["prior_spearman"], "basis": row["weights_basis"]}),
                      flush=True)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report, list(trees))


def print_table(report: dict, labels: list[str]) -> None:
    cols = list(signalworlds.ABLATIONS)
    for label in labels:
        print(f"\n{label}: precision@{report['k']} (95% interval of the default) | prior Spearman, 80% coverage")
        print("| world | " + " | ".join(cols) + " | default - best single | prior Spearman | coverage | weights |")
        print("|---" * (len(cols) + 5) + "|")
        for name, rows in report["worlds"].items():
            r = rows[label]
            cells = []
            for c in cols:
                v = r["precision_at_k"][c]
                cell = "n/a" if v["precision"] is None else f"{v['precision']:.3f}"
                if c == "Route (default)" and v["ci95"]:
                    cell += f" [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]"
                cells.append(cell)
            lo, hi = r["prior_spearman_ci95"]
            clo, chi = r["prior_coverage_ci95"]
            print(f"| {name} | " + " | ".join(cells) + f" | {r['default_minus_best']:+.3f} | {r['prior_spearman']:.2f} "
                  f"[{lo:.2f}, {hi:.2f}] | {r['prior_coverage']:.2f} [{clo:.2f}, {chi:.2f}] | "
                  + ", ".join(f"{b} {n}" for b, n in r["weights_basis"].items()) + " |")


if __name__ == "__main__":
    main()
