"""What `benchmarks.ingest` prints and draws from its phases, and the fast variant's stage bound."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

CLIP_SECONDS = 30


def stage_bound(phases: list[dict], mode: str, cores: int) -> dict:
    """The most the fast variant could ingest if nothing but its stages' own work took the cores.

    A stage's work per clip in core-seconds: int8 CLIP and greedy Whisper measured on one thread (no
    thread-per-core run does more per core), decode and fingerprint from their every-core ceilings (the
    machine full). The cores allow cores / sum(core-seconds) clips/s; CLIP's share is scaled by the
    fraction of sampled frames the fast variant embedded. Text embedding and storage are left out, so the
    bound is generous. The baseline's median clip says what 10x is.
    """
    row = {p["phase"]: p for p in phases}
    kept = [p for p in phases if p["phase"].startswith("service") and "int8" in p["phase"] and "pans kept" not in p["phase"]]
    sampled = row[next(name for name in row if name.startswith(f"ceiling: decode {mode} "))]
    fraction = statistics.median(p["frames_embedded"] for p in kept) / max(1, sampled["frames"]) if kept else 1.0
    core_s = {
        "decode": cores / sampled["clips_per_s"],
        "clip_int8": fraction / row["ceiling: CLIP image tower int8, 1 thread"]["clips_per_s"],
        "whisper_greedy": 1 / row["ceiling: Whisper batched, greedy, 1 thread"]["clips_per_s"],
        "fingerprint": cores / row["ceiling: fingerprint batched"]["clips_per_s"],
    }
    median_clip = statistics.median(row["baseline (sequential)"]["latencies_s"])
    bound = cores / sum(core_s.values())
    return {
        "core_s_per_clip": {k: round(v, 3) for k, v in core_s.items()},
        "frames_embedded_fraction": round(fraction, 3),
        "bound_video_s_per_s": round(bound * CLIP_SECONDS, 1),
        "baseline_median_clip_s": round(median_clip, 2),
        "bound_x_baseline_median": round(bound * median_clip, 2),
        "ten_x_video_s_per_s": round(10 * CLIP_SECONDS / median_clip, 1),
    }


def save(results: dict, out: Path) -> None:
    """results.json as it stands, each phase against the baseline (the first phase)."""
    base = results["phases"][0]["clips_per_s"] if results["phases"] else 0
    for ph in results["phases"]:
        ph["x_baseline"] = round(ph["clips_per_s"] / base, 2) if base else None
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))


def print_row(r: dict, results: dict | None = None, out: Path | None = None) -> None:
    """One phase's line; with results and out, also saves results.json, so a run stopped at its budget (the GPU
    suite) keeps the phases it measured."""
    if results is not None and out is not None:
        save(results, out)
    print(f"  {r['phase']:<42} {r['clips_per_s']:>8.3f} clips/s {r['video_s_per_s']:>8.1f} video-s/s"
          + (f"  p50 {r['p50_s']:.2f} s p99 {r['p99_s']:.2f} s" if "p50_s" in r else ""), flush=True)


def print_table(results: dict) -> None:
    print(f"\n{results['clip']} + Whisper {results['whisper']} on {results['device']} ({results['machine']}), "
          f"{results['clips']} clips, concurrency {results['concurrency']}, {results['decode_workers']} decode procs")
    print("| phase | clips/s | video-s/s | x baseline | p50 s | p99 s | mean batch | GPU % |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for r in results["phases"]:
        batch = ", ".join(f"{k} {v}" for k, v in r.get("mean_batch", {}).items())
        if "frames_per_s" in r:
            batch = f"{r['frames_per_s']} frames/s"
        gpu = "n/a" if r["gpu_util_pct"] is None else r["gpu_util_pct"]
        print(f"| {r['phase']} | {r['clips_per_s']:.3f} | {r['video_s_per_s']:.1f} | {r['x_baseline']} | "
              f"{r.get('p50_s', '')} | {r.get('p99_s', '')} | {batch} | {gpu} |")


def chart(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e .[bench]); no chart written")
        return
    names = [r["phase"] for r in results["phases"]]
    values = [r["video_s_per_s"] for r in results["phases"]]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
    ax.barh(names[::-1], values[::-1], color="#3b7dd8")
    ax.set_xlabel("video-seconds per second")
    ax.set_title(f"{results['clip']} + {results['whisper']} on {results['device']}, {results['date'][:10]}", fontsize=9)
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
