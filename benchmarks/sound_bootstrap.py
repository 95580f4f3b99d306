"""A new node's first start over a catalog of N sounds: peak RSS and time to write its postings segment.

    python -m benchmarks.sound_bootstrap [--clips 100000 1000000] [--memory-mb 1024 256] [--old-tree CHECKOUT]
                                         [--dir /var/tmp/coldopen-sound-scale] [--json out.json]

The corpus is benchmarks/sound_scale.py's (synthetic 30-s sounds with real audio's hash fields, in the
production catalog's `sound_chunks`), built once per size and kept in --dir (a store an earlier
`sound_scale --keep` run left there is reused). For each setting, the node's postings folder is removed
and a fresh process opens `SoundPostings` over the catalog, as `coldopen serve` does on a new node:
it reads every chunk and writes one segment. The child's peak resident set (its own VmHWM) and wall
time are reported; --old-tree runs another checkout's code the same way (the build before
streaming held every chunk in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

CHILD = """
import json, sys, time
from pathlib import Path
from coldopen.storage.catalog import open_catalog
from coldopen.sounds.postings import SoundPostings
folder, memory = Path(sys.argv[1]), int(sys.argv[2])
catalog = open_catalog("", folder)
started = time.perf_counter()
import coldopen
assert Path(coldopen.__file__).resolve().parent.parent == Path.cwd().resolve(), coldopen.__file__
kw = {"memory_bytes": memory << 20} if memory else {}
node = SoundPostings(folder / "sound-postings", catalog.sounds.chunks_after, key=catalog.catalog_id(),
                     compact_every_s=3600, **kw)
status = open("/proc/self/status").read()
hwm = int(status.split("VmHWM:")[1].split()[0])  # kB; this process's own peak (exec starts a new one)
print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "postings": len(node),
                  "segments": node.segments, "peak_rss_kb": hwm}))
node.close()
"""


def first_start(folder: Path, memory_mb: int, tree: Path) -> dict:
    shutil.rmtree(folder / "sound-postings", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # cwd = the tree: `python -c` puts the working directory first on sys.path
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(memory_mb)], env=env, cwd=tree,
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.wait() != 0:
        return {"failed": f"exit {proc.returncode}"}
    # The peak is the child's VmHWM, read by itself: wait4's ru_maxrss also counts the pages it shared with
    # this process between fork and exec (this process holds a whole corpus after a build).
    row = json.loads(out.strip().splitlines()[-1])
    kb = row.pop("peak_rss_kb")
    row["peak_rss_mb"] = round(kb / 1024)
    row["bytes_per_posting_peak"] = round(kb * 1024 / max(row["postings"], 1), 1)
    return row


def build(folder: Path, n: int) -> dict:
    """sound_scale's corpus of n synthetic sounds (and its real ones) in folder/coldopen.sqlite3."""
    from benchmarks import sound_scale as ss
    from coldopen.models.fingerprint import Fingerprinter

    fp = Fingerprinter.load("cpu")
    segments = ss.real_segments()
    fields = [ss.index_fields(fp, a) for _, a in segments]
    full = [f for (_, a), f in zip(segments, fields) if a.size >= ss.SEGMENT_S * 16000 * 0.99]
    import numpy as np

    per_clip = int(np.mean([f.size for f in full]))
    real = fp.fingerprint([a for _, a in segments])
    return ss.build(folder / "coldopen.sqlite3", n, per_clip, ss.FieldSampler(np.concatenate(fields)),
                    list(zip([s[0] for s in segments], real)), segment=False)


def main() -> None:
    from testkit.paths import REPO

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, nargs="+", default=[100_000])
    p.add_argument("--memory-mb", type=int, nargs="+", default=[1024])
    p.add_argument("--old-tree", type=Path, help="another checkout, run the same way (its default memory)")
    p.add_argument("--dir", type=Path, default=Path("/var/tmp/coldopen-sound-scale"))
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    report: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{platform.machine()} cores={os.cpu_count()} "
                               f"ram={os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f}GiB",
                    "corpora": []}
    for n in args.clips:
        folder = args.dir / f"{n}"
        started = time.perf_counter()
        built = {"reused": True} if (folder / "coldopen.sqlite3").exists() else build(folder, n)
        built["build_s"] = round(time.perf_counter() - started, 1)
        row: dict = {"sounds": n, "built": built, "starts": []}
        # the other checkout first: this one's start migrates the catalog to a revision it may not know
        runs = [("before", args.old_tree.resolve(), 0)] if args.old_tree else []
        runs += [(f"now, {m} MB", REPO, m) for m in args.memory_mb]
        for label, tree, memory in runs:
            result = {"code": label, **first_start(folder, memory, tree)}
            print(json.dumps({"sounds": n, **result}), flush=True)
            row["starts"].append(result)
        report["corpora"].append(row)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
