"""Sound postings on PostgreSQL: bytes per posting, a node's first start and its following of new chunks,
lookup latency, and how long a new sound holds the cross-replica new-sound lock (sounds/identity.py),
at --sounds sounds of 670 postings each (one 30-s clip's index side in hash format triplet32-v2).

    python -m benchmarks.postgres_postings [--sounds 10000] [--repeats 20]

A real PostgreSQL 15 server is started here (testkit/pgserver.py) and loaded through the catalog's bulk
loader (COPY): one `sound_chunks` row per sound, as ingests write them. A node (sounds/postings.py) then starts on it with no
postings of its own (it reads every chunk and writes one segment), follows 100 newer chunks, and answers
lookups locally. Hash values are drawn uniformly (benchmarks/sound_scale.py uses the empirical
distribution on SQLite). Queries: 1,396 keys (a 30-s clip's query side; 370 of them present, as for a
reused 30-s sound in sound_scale.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PER_SOUND = 670  # index-side postings of a 30-s sound (benchmarks/sound_scale.py measures it)
QUERY_KEYS, QUERY_PRESENT = 1396, 370


def timed(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return round(float(np.percentile(samples, 50)), 1)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import psycopg

    from coldopen.sounds.postings import SoundPostings
    from coldopen.storage.catalog import Catalog
    from coldopen.storage.database import Database
    from testkit import pgserver

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sounds", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="coldopen-pg-"))
    pg = pgserver.PostgresServer(root).start()
    try:
        url = pg.new_database()
        catalog = Catalog(Database(url))
        rng = np.random.default_rng(0)
        n = args.sounds * PER_SOUND
        hashes = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
        frames = rng.integers(0, 1875, size=n).astype(np.int32)
        started = time.perf_counter()
        for lo in range(0, args.sounds, 10_000):
            catalog.bulk.sounds([(hashes[i * PER_SOUND : (i + 1) * PER_SOUND], frames[i * PER_SOUND : (i + 1) * PER_SOUND])
                                 for i in range(lo, min(args.sounds, lo + 10_000))], 1875)
        load_s = time.perf_counter() - started
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE sound_chunks")
            size = int(conn.execute("SELECT pg_total_relation_size('sound_chunks')").fetchone()[0])
        folder = root / "node"
        started = time.perf_counter()
        node = SoundPostings(folder, catalog.sounds.chunks_after, key=catalog.catalog_id(), compact_every_s=3600)
        first_start_s = time.perf_counter() - started
        newer = rng.integers(0, 2**32, size=100 * PER_SOUND, dtype=np.uint64).astype(np.uint32)
        for i in range(100):  # 100 newer sounds, each committed alone as an ingest commits it
            catalog.bulk.sounds([(newer[i * PER_SOUND : (i + 1) * PER_SOUND], frames[:PER_SOUND])], 1875)
        started = time.perf_counter()
        node.refresh()
        follow_ms = (time.perf_counter() - started) * 1000
        assert len(node) == n + 100 * PER_SOUND
        query = np.concatenate([hashes[rng.integers(0, n, QUERY_PRESENT)],
                                rng.integers(0, 2**32, QUERY_KEYS - QUERY_PRESENT, dtype=np.uint64).astype(np.uint32)])

        def locked() -> None:  # what a new sound does under the lock on a shared catalog
            with catalog.sounds.new_sound_lock():
                node.refresh()
                node.lookup(query, 64)
                catalog.sounds.recent_postings(query, node.cursor)

        out = {
            "sounds": args.sounds, "postings": n, "load_s": round(load_s, 1),
            "bytes_per_posting": round(size / n, 1), "kb_per_30s_clip": round(size / args.sounds / 1024, 1),
            "node_first_start_s": round(first_start_s, 1),
            "node_bytes_per_posting": round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / n, 1),
            "follow_100_new_chunks_ms": round(follow_ms, 1),
            "refresh_nothing_new_p50_ms": timed(node.refresh, args.repeats),
            f"lookup_{QUERY_KEYS}_keys_p50_ms": timed(lambda: node.lookup(query, 64), args.repeats),
            f"recheck_{QUERY_KEYS}_keys_p50_ms": timed(lambda: catalog.sounds.recent_postings(query, node.cursor), args.repeats),
            "lock_and_recheck_p50_ms": timed(locked, args.repeats),
        }
        node.close()
        catalog.close()
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    for k, v in out.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
