"""Sound postings on PostgreSQL: bytes per posting, lookup latency, and how long a new sound holds the
cross-replica new-sound lock (server/sounds/identity.py), at --sounds sounds of 670 postings each
(one 30-s clip's index side in hash format triplet32-v2).

    python -m benchmarks.postgres_postings [--sounds 10000] [--repeats 20]

A real PostgreSQL 15 server is started here (tests/pgserver.py) and loaded with COPY. Hash values are
drawn uniformly (benchmarks/sound_scale.py uses the empirical distribution on SQLite), so the lookup
figures are optimistic about postings returned per query, not about the cost of the key seeks. Queries:
1,396 keys (a 30-s clip's query side; 370 of them present, as for a reused 30-s sound in sound_scale.py)
and, for the lock, the first 670 of them.
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

    from server.storage import Catalog, Database
    from tests import pgserver

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
        hashes = rng.integers(-2**31, 2**31, size=n, dtype=np.int64)
        started = time.perf_counter()
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            with cur.copy("COPY sounds (id, created_at, first_video, first_frame, last_frame, postings) FROM STDIN") as cp:
                for i in range(1, args.sounds + 1):  # the last 20 are "recent": created while a lookup ran
                    at = "2026-11-23T23:00:00.000Z" if i > args.sounds - 20 else "2026-01-01T00:00:00.000Z"
                    cp.write_row((i, at, f"v{i}", 0, 1875, PER_SOUND))
            with cur.copy("COPY sound_postings (hash, sound, t) FROM STDIN") as cp:
                sounds = np.repeat(np.arange(1, args.sounds + 1), PER_SOUND)
                frames = rng.integers(0, 1875, size=n)
                for row in zip(hashes.tolist(), sounds.tolist(), frames.tolist()):
                    cp.write_row(row)
        load_s = time.perf_counter() - started
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE sound_postings")
            size = int(conn.execute("SELECT pg_total_relation_size('sound_postings')").fetchone()[0])
        query = np.concatenate([hashes[rng.integers(0, n, QUERY_PRESENT)],
                                rng.integers(-2**31, 2**31, QUERY_KEYS - QUERY_PRESENT)]).astype(np.uint32)
        since = "2026-11-23T22:00:00.000Z"

        def locked() -> None:
            with catalog.new_sound_lock():
                catalog.recent_postings(query[:PER_SOUND], since)

        out = {
            "sounds": args.sounds, "postings": n, "load_s": round(load_s, 1),
            "bytes_per_posting": round(size / n, 1), "kb_per_30s_clip": round(size / args.sounds / 1024, 1),
            f"lookup_{QUERY_KEYS}_keys_p50_ms": timed(lambda: catalog.lookup_postings(query, 64), args.repeats),
            f"recheck_{QUERY_KEYS}_keys_p50_ms": timed(lambda: catalog.recent_postings(query, since), args.repeats),
            f"lock_and_recheck_{PER_SOUND}_keys_p50_ms": timed(locked, args.repeats),
        }
        catalog.close()
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    for k, v in out.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
