"""Speed search against a large index: does trying ~340 speed, pitch and tempo hypotheses per short query
find false matches among N sounds? (`sound_speed.py` measures recall and false matches among ~110.)

Index: the real recordings of tests/data/music whole (their real postings) plus N synthetic sounds of 30 s
with ~670 postings each whose hash fields follow real audio's (benchmarks/sound_scale.py's FieldSampler,
frames uniform over 30 s), held sorted in memory; a lookup drops hashes with POSTINGS_CAP postings or
more, as the node does. Queries, fingerprinted with speed search on: `--queries` 5-s excerpts of the
real music under the edits (must find their recording, nothing else), and `--unrelated` 5-s excerpts of
audio that is not indexed (synthetic songs, testkit/audiogen.py, of seeds no index holds) under the same
edits, where every match is false. With `--tail`, the most frames
any sound reached with the thresholds lowered to 2 (the margin below the real thresholds).

    python -m benchmarks.sound_speed_scale [--sounds 100000] [--queries 40] [--unrelated 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

EDITS = ("speed:0.8", "speed:0.9", "speed:1.1", "speed:1.25", "pitch:-1", "pitch:+1", "tempo:1.15", "speed:1")


class SortedPostings:
    """Postings sorted by hash, looked up as the node does (hashes with POSTINGS_CAP postings or more left out)."""

    def __init__(self, hashes: np.ndarray, sounds: np.ndarray, times: np.ndarray):
        order = np.argsort(hashes, kind="stable")
        self.hash, self.sound, self.time = hashes[order], sounds[order], times[order]

    def match(self, q, floor: int | None = None) -> list:
        """The node's matches for a query; `floor`: every group's threshold lowered to it (the tail)."""
        from coldopen.sounds import vote
        from coldopen.sounds.identity import POSTINGS_CAP

        keys = np.unique(q.hashes.astype(np.uint32))
        lo, hi = np.searchsorted(self.hash, keys, "left"), np.searchsorted(self.hash, keys, "right")
        keep = (hi > lo) & (hi - lo < POSTINGS_CAP)
        lo, n = lo[keep], (hi - lo)[keep]
        rows = np.repeat(lo - np.concatenate(([0], np.cumsum(n)[:-1])), n) + np.arange(n.sum())
        extra = {} if floor is None else {"min_frames": floor, "group_min_frames": floor, "shift_min_frames": floor}
        return vote.match(q.hashes, q.times, self.hash[rows].astype(np.int64), self.sound[rows].astype(np.int64),
                          self.time[rows].astype(np.int64), limit=10, q_groups=q.groups, group_scales=q.group_scales,
                          group_pitches=q.group_pitches, plain_groups=q.plain_groups, **extra)


def build(n_sounds: int, real_refs: list, seed: int = 0) -> SortedPostings:
    from benchmarks.sound_scale import FieldSampler, index_fields, real_segments
    from coldopen.models.fingerprint import Fingerprinter

    fields = np.concatenate([index_fields(Fingerprinter.load("cpu"), a) for _, a in real_segments()])
    sampler = FieldSampler(fields, seed)
    per_clip, frames = 670, int(30 / 0.016)
    total = n_sounds * per_clip
    hashes = np.concatenate([sampler.hashes(total).astype(np.uint32)] + [r.index_hashes for r in real_refs])
    times = np.concatenate([sampler.rng.integers(0, frames, total, dtype=np.int32)] + [r.index_times for r in real_refs])
    first = len(real_refs)
    sounds = np.concatenate([(np.arange(total, dtype=np.int64) // per_clip + first).astype(np.uint32)]
                            + [np.full(r.landmarks, i, np.uint32) for i, r in enumerate(real_refs)])
    return SortedPostings(hashes, sounds, times)


def main() -> None:
    from benchmarks.sound_speed import excerpt, tail, wilson
    from coldopen.engine import media
    from coldopen.models.fingerprint import Fingerprinter
    from coldopen.sounds import vote
    from testkit import audiogen as ag
    from testkit import soundsuite

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sounds", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=40, help="excerpts of indexed music, spread over the edits")
    p.add_argument("--unrelated", type=int, default=200, help="excerpts of audio not indexed, spread over the edits")
    p.add_argument("--tail", action="store_true")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    real = [soundsuite._decoded(n) for n in soundsuite.RECORDINGS]
    plain, speedy = Fingerprinter.load("cpu"), Fingerprinter.load("cpu", speed_search=True)
    refs = plain.fingerprint([ag.resample(a, ag.RATE, 16_000) for a in real])
    index = build(args.sounds, refs)
    built_s = time.perf_counter() - started
    print(f"index: {len(real)} recordings + {args.sounds} sounds, {index.hash.size} postings ({built_s:.0f} s)", flush=True)
    rng = np.random.default_rng(zlib.crc32(b"scale"))
    found = false_own = 0
    unrelated_matched, unrelated_frames, tails = 0, [], []
    seconds = 0.0
    for k in range(args.queries + args.unrelated):
        condition = EDITS[k % len(EDITS)]
        own = k % len(real) if k < args.queries else None
        audio = excerpt(real[own] if own is not None else ag.music(20_000 + k, 8.0), condition, rng)
        decoded = media.decode_audio(ag.encode(Path("/tmp/coldopen-speed-scale-q.m4a"), audio))
        t0 = time.perf_counter()
        q = speedy.fingerprint([decoded])[0]
        matches = index.match(q)
        seconds += time.perf_counter() - t0
        if own is not None:
            found += any(m.sound == own for m in matches)
            false_own += any(m.sound != own for m in matches)
            continue
        unrelated_matched += bool(matches)
        unrelated_frames += [(condition, m.matched_frames, m.group) for m in matches]
        if args.tail:
            tails.append(tail(q, lambda part: index.match(part, floor=2)))
        if (k + 1) % 20 == 0:
            print(f"{k + 1} queries: unrelated matched {unrelated_matched} {unrelated_frames}", flush=True)
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "sounds": args.sounds + len(real), "postings": int(index.hash.size), "edits": EDITS,
        "thresholds": {"as_is": vote.MIN_MATCH_FRAMES, "explicit_pitch_shifts": vote.SHIFT_MATCH_FRAMES,
                       "hypothesis_groups": vote.SPEED_MATCH_FRAMES},
        "queries": args.queries, "found": found, "recall_95ci": wilson(found, args.queries),
        "queries_with_a_false_match": false_own,
        "unrelated": args.unrelated, "unrelated_matched": unrelated_matched,
        "unrelated_matched_95ci": wilson(unrelated_matched, args.unrelated),
        "false_matches": unrelated_frames, "ms_per_query": round(1000 * seconds / max(1, args.queries + args.unrelated)),
    }
    if tails:
        a = np.array(tails)
        result["tail"] = {"as_is_max_frames": np.bincount(a[:, 0]).tolist(), "groups_max_frames": np.bincount(a[:, 1]).tolist()}
    print(json.dumps({k: v for k, v in result.items() if k != "false_matches"}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
