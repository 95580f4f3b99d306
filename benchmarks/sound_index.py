"""Sound-index lookup cost: ColdOpen's in-memory sorted-array index vs a clustered SQLite table.

Fills both with P postings (hash, video, frame) whose hashes follow the empirical distribution of
real landmark hashes (from synthesized songs), then times the postings lookup of 5-second and
30-second queries. The SQLite table is the alternative we measured before choosing (WITHOUT ROWID,
PRIMARY KEY (hash, video, t): one B-tree range scan per hash).

    python -m benchmarks.sound_index [--postings 1000000 5000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def main() -> None:
    import sqlite3

    from models.fingerprint import Fingerprint, Fingerprinter
    from server.sound_index import SoundIndex
    from tests import audiogen as ag

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--postings", type=int, nargs="+", default=[1_000_000, 5_000_000])
    p.add_argument("--queries", type=int, default=30)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    fp = Fingerprinter.load("cpu")
    real = fp.fingerprint([ag.resample(ag.music(s, 30.0), ag.RATE, 16000) for s in range(8)])
    pool = np.concatenate([f.hashes for f in real]).astype(np.int64)
    per_clip = int(np.mean([len(f) for f in real]))  # postings of one 30-s clip
    rng = np.random.default_rng(0)
    rows = []
    for total in args.postings:
        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite3.connect(str(Path(tmp) / "s.sqlite3"))
            db.execute("CREATE TABLE p (hash INTEGER, video INTEGER, t INTEGER, PRIMARY KEY (hash, video, t)) WITHOUT ROWID")
            # Real hash values shuffled across clips.
            hashes = rng.choice(pool, size=total) ^ (rng.integers(0, 8, size=total) << 20)
            videos = np.arange(total) // per_clip + 1
            times = rng.integers(0, 1900, size=total)
            hashes, videos, times = np.unique(np.stack([hashes, videos, times]), axis=1)  # as real clips: no duplicate triples
            started = time.perf_counter()
            with db:
                db.executemany("INSERT OR IGNORE INTO p VALUES (?, ?, ?)", zip(hashes.tolist(), videos.tolist(), times.tolist()))
            sqlite_load_s = time.perf_counter() - started
            started = time.perf_counter()
            index = SoundIndex()
            for v in np.unique(videos):
                m = videos == v
                index.add(int(v), Fingerprint(hashes[m].astype(np.uint32), times[m].astype(np.int32), 30.0, 0))
            index_load_s = time.perf_counter() - started

            def sqlite_lookup(q):
                u = np.unique(q).tolist()
                return db.execute(f"SELECT hash, video, t FROM p WHERE hash IN ({', '.join('?' * len(u))})", u).fetchall()

            for seconds in (5, 30):
                n = int(len(real[0]) * seconds / 30)
                sq, arr = [], []
                for _ in range(args.queries):
                    q = rng.choice(pool, size=n)
                    t0 = time.perf_counter()
                    a = len(sqlite_lookup(q))
                    sq.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    b = len(index.lookup(q)[0])
                    arr.append(time.perf_counter() - t0)
                    assert a == b, (a, b)
                row = {
                    "postings": total,
                    "clips_equivalent": total // per_clip,
                    "query_seconds": seconds,
                    "query_hashes": n,
                    "sqlite_ms_p50": round(1000 * float(np.median(sq)), 2),
                    "sqlite_ms_p99": round(1000 * float(np.percentile(sq, 99)), 2),
                    "sound_index_ms_p50": round(1000 * float(np.median(arr)), 2),
                    "sound_index_ms_p99": round(1000 * float(np.percentile(arr, 99)), 2),
                    "sqlite_load_s": round(sqlite_load_s, 1),
                    "sound_index_build_s": round(index_load_s, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
            db.close()
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()} cores={__import__('os').cpu_count()}", "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
