"""Offset voting: a query's hashes against postings (hash, sound, frame) from the index.

For each candidate sound the votes are grouped by offset (sound frame minus query frame); a sound
matches when at least ``MIN_MATCH_FRAMES`` distinct query anchor frames agree on one offset, give or
take one frame (re-encoding and resampling move a peak by a frame now and then, which would otherwise
split one alignment's votes over neighbouring offsets). Counting distinct anchor frames rather than
hashes matters: one chord that two unrelated songs share produces several identical hashes at one
instant, but it is one coincidence.

Tempo: an upload sped up or slowed down by a few percent keeps most triplets (their time deltas are
short), but its offset drifts (3% is 28 frames over 15 s) and the votes spread. So votes are cast under
a few time-scale hypotheses (``TEMPO_SCALES``: sound frame = round(query frame x scale) + offset); that
costs vote time only, no extra lookups.

The threshold was set on the robustness suite (tests/test_sounds.py, benchmarks/RESULTS.md): with
32-bit triplet hashes, unrelated songs (including pairs generated at one tempo in related keys) agree
on at most 2 frames, and every reference under every distortion of the bar reaches 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_MATCH_FRAMES = 3
CONFIDENT_FRAMES = 8  # confidence reaches 1 here
TEMPO_SCALES = (1.0, 1 / 1.03, 1.03)


@dataclass(frozen=True)
class SoundMatch:
    sound: int               # sound id
    matched_frames: int      # distinct query anchor frames that agree on the offset
    offset: int              # sound frame = round(query frame x scale) + offset
    query_first: int         # first and last agreeing query frames
    query_last: int
    confidence: float        # 0.5 at the threshold (about), 1 at CONFIDENT_FRAMES
    scale: float = 1.0       # the sound's tempo relative to the query's

    def on_sound(self, query_frames: np.ndarray) -> np.ndarray:
        """Query frames mapped onto the sound's timeline."""
        frames: np.ndarray = np.round(np.asarray(query_frames) * self.scale).astype(np.int64) + self.offset
        return frames

    def frame_on_sound(self, query_frame: int) -> int:
        return int(round(query_frame * self.scale)) + self.offset

    @property
    def sound_first(self) -> int:
        return self.frame_on_sound(self.query_first)

    @property
    def sound_last(self) -> int:
        return self.frame_on_sound(self.query_last)


def match(
    q_hashes: np.ndarray,
    q_times: np.ndarray,
    post_hash: np.ndarray,
    post_sound: np.ndarray,
    post_time: np.ndarray,
    limit: int = 10,
    min_frames: int = MIN_MATCH_FRAMES,
    scales: tuple[float, ...] = TEMPO_SCALES,
) -> list[SoundMatch]:
    """Best (scale, offset) matches of a query (hashes, anchor frames) against postings, strongest first."""
    if q_hashes.size == 0 or post_hash.size == 0:
        return []
    # Join postings to every query occurrence of the same hash.
    order = np.argsort(q_hashes, kind="stable")
    q_hash, q_time = q_hashes[order].astype(np.int64), q_times[order].astype(np.int64)
    post_hash = post_hash.astype(np.int64)
    lo = np.searchsorted(q_hash, post_hash, "left")
    hi = np.searchsorted(q_hash, post_hash, "right")
    reps = hi - lo
    keep = reps > 0
    if not keep.any():
        return []
    lo, reps = lo[keep], reps[keep]
    sound = np.repeat(post_sound[keep].astype(np.int64), reps)
    ref_t = np.repeat(post_time[keep].astype(np.int64), reps)
    # Index of each query occurrence: lo, lo+1, ..., hi-1 for every posting.
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(reps)[:-1])), reps)
    q_t = q_time[starts + np.arange(reps.sum())]
    # A sound with fewer joined rows than min_frames cannot reach min_frames distinct frames under any
    # scale or offset. Most sounds a lookup returns are such: random hash collisions, which grow with the
    # corpus (one or two per sound), while the sounds worth voting on do not. Dropping them first keeps the
    # vote's cost set by the query's real candidates, not by the corpus size. The sounds are numbered
    # within this query once, here, for every scale's vote.
    sound_ids, local, rows = np.unique(sound, return_inverse=True, return_counts=True)
    candidate = rows[local] >= min_frames
    if not candidate.any():
        return []
    local, ref_t, q_t = local[candidate].astype(np.int64), ref_t[candidate], q_t[candidate]
    best: dict[int, SoundMatch] = {}
    for scale in scales:
        for m in _vote(sound_ids, local, ref_t, q_t, scale, min_frames):
            if m.sound not in best or m.matched_frames > best[m.sound].matched_frames:
                best[m.sound] = m
    return sorted(best.values(), key=lambda m: -m.matched_frames)[:limit]


def _vote(sound_ids: np.ndarray, local: np.ndarray, ref_t: np.ndarray, q_t: np.ndarray, scale: float,
          min_frames: int) -> list[SoundMatch]:
    """Each sound's best offset under one time scale; `local` indexes `sound_ids`."""
    offset = ref_t - np.round(q_t * scale).astype(np.int64)
    # (sound, offset, query frame) packed into one int64 so the set operations are 1-D sorts: sounds are
    # numbered within this query (< 2^24: far more than one query's postings), offset + 2^21 < 2^22,
    # query frame < 2^17 (35 min at 16 ms).
    key = (local << 39) | ((offset + _OFF) << 17) | q_t
    votes = np.unique(key)  # distinct anchor frames per (sound, offset)
    # Each vote also counts for the neighbouring offsets (+-1 frame); distinct frames again.
    spread = np.unique(np.concatenate([votes + (d << 17) for d in (-1, 0, 1)]))
    pairs, counts = np.unique(spread >> 17, return_counts=True)  # (sound, offset) groups
    strong = counts >= min_frames
    pairs, counts = pairs[strong], counts[strong]
    if pairs.size == 0:
        return []
    sounds = pairs >> 22
    # Votes at exactly each offset break ties between neighbours (the +-1 spread gives offsets o-1, o and
    # o+1 of a clean alignment at o the same count).
    v_group = votes >> 17
    exact_groups, exact_counts = np.unique(v_group, return_counts=True)
    at = np.minimum(np.searchsorted(exact_groups, pairs), exact_groups.size - 1)
    exact = np.where(exact_groups[at] == pairs, exact_counts[at], 0)
    # Best offset per sound: sort by (sound, -count, -exact) and take each sound's first row.
    best = np.lexsort((-exact, -counts, sounds))
    first = np.ones(best.size, dtype=bool)
    first[1:] = sounds[best[1:]] != sounds[best[:-1]]
    out = []
    for i in best[first]:
        group = int(pairs[i])
        near = np.abs(v_group - group) <= 1  # same sound (offsets never reach the sound bits' boundary)
        frames = votes[near] & ((1 << 17) - 1)
        n = int(counts[i])
        out.append(
            SoundMatch(
                sound=int(sound_ids[sounds[i]]),
                matched_frames=n,
                offset=(group & ((1 << 22) - 1)) - _OFF,
                query_first=int(frames.min()),
                query_last=int(frames.max()),
                confidence=round(min(1.0, 0.5 + 0.5 * (n - min_frames) / max(1, CONFIDENT_FRAMES - min_frames)), 3),
                scale=scale,
            )
        )
    return out


_OFF = 1 << 21
