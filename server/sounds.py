"""Sound matching: vote on the time offset at which a query's landmark hashes agree with a stored clip's.

Postings come from the store (``Store.lookup_postings``). For each candidate video the votes are
grouped by offset (reference time minus query time); a video matches when at least
``MIN_MATCH_FRAMES`` distinct query anchor frames agree on one offset. Counting distinct anchor
frames rather than hashes matters: one chord that two unrelated songs share produces dozens of
identical hashes at a single instant, but it is one coincidence, not dozens.

Thresholds were set on the robustness suite in tests/test_sounds.py (synthesized songs, espeak-ng
voice-over at 0 dB SNR, noise, codecs, 5-second excerpts): true matches under the hardest
distortion (a 5-s excerpt under voice-over) had >= 7 agreeing frames; unrelated songs <= 5, except
pairs at the same tempo in related keys (up to 11 over 20 s), which is why false matches are
measured and asserted rather than assumed away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.fingerprint import Fingerprint

MIN_MATCH_FRAMES = 7


@dataclass(frozen=True)
class SoundMatch:
    video_row: int
    matched_frames: int     # distinct query anchor frames that agree on the offset
    query_start_s: float    # where the shared sound starts in the query ...
    reference_start_s: float  # ... and in the matched video
    duration_s: float       # span of the agreeing landmarks
    confidence: float       # matched_frames / (2 * MIN_MATCH_FRAMES), capped at 1: 0.5 at the threshold


def match(
    query: Fingerprint,
    post_hash: np.ndarray,
    post_video: np.ndarray,
    post_time: np.ndarray,
    frame_s: float,
    exclude_row: int | None = None,
    limit: int = 10,
    min_frames: int = MIN_MATCH_FRAMES,
) -> list[SoundMatch]:
    """Best-offset matches of `query` against postings (hash, video row, anchor frame), strongest first."""
    if len(query) == 0 or post_hash.size == 0:
        return []
    # Join postings to every query occurrence of the same hash.
    order = np.argsort(query.hashes, kind="stable")
    q_hash, q_time = query.hashes[order].astype(np.int64), query.times[order].astype(np.int64)
    lo = np.searchsorted(q_hash, post_hash, "left")
    hi = np.searchsorted(q_hash, post_hash, "right")
    reps = hi - lo
    keep = reps > 0
    if exclude_row is not None:
        keep &= post_video != exclude_row
    if not keep.any():
        return []
    lo, reps = lo[keep], reps[keep]
    video = np.repeat(post_video[keep].astype(np.int64), reps)
    ref_t = np.repeat(post_time[keep].astype(np.int64), reps)
    # Index of each query occurrence: lo, lo+1, ..., hi-1 for every posting.
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(reps)[:-1])), reps)
    q_t = q_time[starts + np.arange(reps.sum())]
    offset = ref_t - q_t
    votes = np.unique(np.stack([video, offset, q_t], axis=1), axis=0)  # distinct anchor frames
    pairs, counts = np.unique(votes[:, :2], axis=0, return_counts=True)
    # Best offset per video: sort by (video, -count) and take each video's first row.
    best = np.lexsort((-counts, pairs[:, 0]))
    first = np.ones(best.size, dtype=bool)
    first[1:] = pairs[best[1:], 0] != pairs[best[:-1], 0]
    best = best[first]
    best = best[counts[best] >= min_frames]
    best = best[np.argsort(-counts[best], kind="stable")][:limit]
    out = []
    for i in best:
        vid, off = pairs[i]
        frames = votes[(votes[:, 0] == vid) & (votes[:, 1] == off), 2]
        q0, q1 = int(frames.min()), int(frames.max())
        n = int(counts[i])
        out.append(
            SoundMatch(
                video_row=int(vid),
                matched_frames=n,
                query_start_s=round(q0 * frame_s, 3),
                reference_start_s=round((q0 + int(off)) * frame_s, 3),
                duration_s=round((q1 - q0 + 1) * frame_s, 3),
                confidence=round(min(1.0, n / (2 * MIN_MATCH_FRAMES)), 3),
            )
        )
    return out
