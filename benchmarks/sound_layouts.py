"""Why a sound lookup still grows with the corpus, and what a hash-addressed postings layout would cost.

    python -m benchmarks.sound_layouts [--clips 10000 100000 1000000] [--dir /var/tmp/coldopen-sound-scale]
                                       [--json out.json]

`sound_scale.py` shows a 30-s query's lookup growing about 2x from 10^4 to 10^6 indexed clips although it
does the same work at every size: one seek per distinct query hash (~1,400). This measures the cost of
those seeks in three layouts holding the same corpus, with the same key sets, at each size:

* `btree`: the table keyed by hash that held the postings until the chunk layout (`sound_postings`,
  SQLite) in a store that `sound_scale.py --keep` of that time (main at 42eb8e3 or earlier) left in --dir,
  queried with the catalog's key join on a bare sqlite3 connection (no ColdOpen code: rows are fetched,
  not converted). Skipped for a size without such a store.
* `sorted`: the hash column of the segment below (one sorted array in a memory-mapped file), searched by
  binary search (np.searchsorted, both ends of each key's run): comparison search, without SQLite.
* `hashed`: `sounds/segment.py`'s lookup over the same files: a directory of bucket offsets by the
  hash's top bits (about 8 postings per bucket), so a key costs one directory read and a short scan.
* `node`: `sounds/postings.py`'s lookup over that segment plus an in-memory tail of 300 newer
  sounds, with the postings cap applied: what a node's lookup would cost, less the catalog read of new
  chunks.

The corpus is sound_scale's synthetic one (30-s sounds of 670 index-side postings whose hash fields follow
real audio's skew, same sampler and seed); keys are synthetic 30-s query key sets with that skew. Each
timed query follows OTHER_TRAFFIC untimed lookups of other key sets, as in sound_scale. Files are read
into the OS's page cache before timing. Reports per-query p50/p99 ms and the growth from the smallest size.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import sqlite3
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.sound_scale import OTHER_TRAFFIC, FieldSampler, index_fields, real_segments

QUERIES = 200
KEYS_PER_QUERY = 1396  # distinct hashes of a 30-s query (sound_scale's query_hashes_median)
POSTINGS_PER_CLIP = 670  # index-side postings of a 30-s sound (sound_scale's postings_per_30s_clip)
TAIL_CHUNKS = 300  # newer sounds a node holds in memory between compactions (~200k postings, under TAIL_MAX)
JOIN = "SELECT p.hash, p.sound, p.t FROM json_each(?) AS k JOIN sound_postings AS p ON p.hash = k.value"


def _warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def _timed(lookup, keysets: list) -> list[float]:
    """ms per timed key set, each after OTHER_TRAFFIC untimed ones; the first 50 rounds warm up."""
    traffic = itertools.cycle(keysets[QUERIES:])
    out = []
    for i, keys in enumerate(itertools.chain(keysets[:50], keysets[:QUERIES])):
        for _ in range(OTHER_TRAFFIC):
            lookup(next(traffic))
        t0 = time.perf_counter()
        lookup(keys)
        if i >= 50:
            out.append((time.perf_counter() - t0) * 1000)
    return out


def _has_table(db: Path, name: str) -> bool:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None
    finally:
        conn.close()


def btree(db: Path, keysets: list[np.ndarray]) -> list[float]:
    _warm(db)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    texts = [json.dumps(k.view(np.int32).tolist()) for k in keysets]  # stored signed, as the catalog does
    try:
        return _timed(lambda text: conn.execute(JOIN, (text,)).fetchall(), texts)
    finally:
        conn.close()


def binary(segment, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The segment's sorted hash column searched by bisection (both ends of each key's run), its directory
    unused: comparison search over the same bytes."""
    lo = np.searchsorted(segment.hashes, keys, "left")
    hi = np.searchsorted(segment.hashes, keys, "right")
    n = hi - lo
    pos = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
    return np.asarray(segment.hashes[pos]), np.asarray(segment.sounds[pos])


def build_segment(folder: Path, n_clips: int, sampler: FieldSampler):
    """sound_scale's synthetic corpus (same sampler, same seed: the same hash values) as a Segment."""
    from coldopen.sounds.segment import Segment

    started = time.perf_counter()
    total = n_clips * POSTINGS_PER_CLIP
    hashes = np.concatenate([sampler.hashes(min(50_000_000, total - lo)) for lo in range(0, total, 50_000_000)])
    sounds = np.arange(total, dtype=np.uint32) // np.uint32(POSTINGS_PER_CLIP)
    times = sampler.rng.integers(0, 1875, size=total, dtype=np.int32)
    segment = Segment.write(folder / "segment", hashes, sounds, times)
    return segment, time.perf_counter() - started


def node_lookup(folder: Path, n_clips: int, segment_name: str, fields: np.ndarray):
    """`SoundPostings.lookup` (cap 64) over the segment plus a tail of TAIL_CHUNKS newer sounds' chunks, as a
    node sees its postings between compactions. The segment is adopted through a manifest naming it, as if
    the node had written it after reading chunk `n_clips` (bootstrapping 670 M postings through
    chunks needs more memory than this VM has beside the corpus)."""
    from coldopen.sounds.identity import POSTINGS_CAP
    from coldopen.sounds.postings import Chunk, SoundPostings, write_manifest
    from coldopen.sounds.segment import Segment

    write_manifest(folder, [Segment(folder / segment_name)], n_clips, set(), key="")
    sampler = FieldSampler(fields, seed=3)
    tail = [Chunk(n_clips + i + 1, n_clips + i, sampler.hashes(POSTINGS_PER_CLIP), np.arange(POSTINGS_PER_CLIP))
            for i in range(TAIL_CHUNKS)]
    postings = SoundPostings(folder, lambda cursor: (tail, n_clips + TAIL_CHUNKS) if cursor == n_clips else ([], cursor),
                             compact_every_s=3600)
    assert postings.segments == 1 and len(postings) == n_clips * POSTINGS_PER_CLIP + TAIL_CHUNKS * POSTINGS_PER_CLIP
    return lambda keys: postings.lookup(keys, POSTINGS_CAP)


def summary(ms: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def main() -> None:
    from coldopen.models.fingerprint import Fingerprinter

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "coldopen-sound-scale")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    fp = Fingerprinter.load("cpu")
    fields = np.concatenate([index_fields(fp, a) for _, a in real_segments()])
    keys_sampler = FieldSampler(fields, seed=5)
    keysets = [np.unique(keys_sampler.hashes(KEYS_PER_QUERY)) for _ in range(QUERIES + 97)]
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} cores={os.cpu_count()}",
        "keys_per_query": KEYS_PER_QUERY,
        "corpora": [],
    }
    for n in sorted(args.clips):
        row: dict = {"clips": n, "postings": n * POSTINGS_PER_CLIP}
        db = args.dir / str(n) / "coldopen.sqlite3"
        if db.exists() and _has_table(db, "sound_postings"):
            row["btree"] = {**summary(btree(db, keysets)), "file_bytes": db.stat().st_size}
        with tempfile.TemporaryDirectory(dir=args.dir if args.dir.exists() else None) as tmp:
            segment, built_s = build_segment(Path(tmp), n, FieldSampler(fields, seed=0))
            row["segment_build_s"] = round(built_s, 1)
            for path in segment.folder.iterdir():
                _warm(path)
            for keys in keysets[:20]:  # the two searches agree
                assert np.array_equal(np.sort(binary(segment, keys)[0]), np.sort(segment.lookup(keys)[0]))
            row["sorted"] = summary(_timed(functools.partial(binary, segment), keysets))
            row["hashed"] = summary(_timed(segment.lookup, keysets))
            row["hashed"]["file_bytes"] = sum(p.stat().st_size for p in segment.folder.iterdir())
            row["postings_returned_median"] = int(np.median([segment.lookup(k)[0].size for k in keysets[:QUERIES]]))
            row["node"] = summary(_timed(node_lookup(Path(tmp), n, segment.folder.name, fields), keysets))
            del segment
        print(json.dumps(row), flush=True)
        report["corpora"].append(row)
    first = report["corpora"][0]
    for row in report["corpora"]:
        row["growth"] = {k: round(row[k]["p50_ms"] / first[k]["p50_ms"], 2) for k in ("btree", "sorted", "hashed", "node")
                         if k in row and k in first}
    print(json.dumps({c["clips"]: c["growth"] for c in report["corpora"]}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
