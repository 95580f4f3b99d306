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

Pitch, speed: a short clip also carries hashes computed with a change undone (models/fingerprint.py, one
*group* per hypothesis, each with its time scale and pitch). Each group is voted on alone, as if it were
its own query: a group's coincidences cannot add up with another's, so the chance of a false match grows
with the number of groups, not with their square. A sound keeps its best group, whose pitch and scale the
match reports. The first few groups (``plain_groups``: the two explicit pitch shifts) are voted like the
clip as it is, under the tempo scales, needing ``SHIFT_MATCH_FRAMES``; the many others (speed search,
~340) each under its own scale only, needing ``SPEED_MATCH_FRAMES``. A group's match must also stand out
from the hashes its sound shares with the group at other offsets (``BACKGROUND_PAIRS_PER_FRAME``): a song
that merely sounds alike shares many.

The threshold was set on the robustness suite (tests/test_sounds.py, benchmarks/RESULTS.md): with
32-bit triplet hashes, unrelated songs (including pairs generated at one tempo in related keys) agree
on at most 2 frames, and every reference under every distortion of the bar reaches 3.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

MIN_MATCH_FRAMES = 3
# A speed-hypothesis group needs more: ~240 groups are ~240 more chances for a coincidence. Measured on 100
# unrelated excerpts (x0.8-x1.2) against 100 synthetic songs: unrelated sounds reached 3 frames in one group
# for ~5% of queries, never 4; sped-up real music is found with a median of ~10 frames.
SPEED_MATCH_FRAMES = MIN_MATCH_FRAMES + 2
# An explicit pitch shift's group (hashed as densely as the clip as it is) needs one more than the clip: at 3,
# 10 of 100 unrelated excerpts a semitone up matched a synthetic song of the same generator (musical likeness,
# 3 frames); at 4, 1 did, while real music a semitone off is found with a median of ~16 frames (p10 6-7).
# Measured on 200 real excerpts at each of pitch +-1 (benchmarks/RESULTS.md): found 0.915 / 0.930 at 3,
# 0.900 / 0.905 at 4, 0.870 / 0.880 at 5.
SHIFT_MATCH_FRAMES = MIN_MATCH_FRAMES + 1
# A hypothesis group's match must also stand out from what the sound shares with that group elsewhere: one
# more frame for every BACKGROUND_PAIRS_PER_FRAME (query hash, posting) pairs it shares at other offsets.
# Why (benchmarks/RESULTS.md, 2026-12-06 "background"): the non-matching excerpts that reached a group's
# threshold were synthetic songs of the indexed songs' generator (one drum sample, one set of timbres, notes
# on one tuning), which share hashes with such a song at many offsets: 41-158 pairs for 4-6 aligned frames,
# where real music found under an edit shares at most ~1.3 pairs per aligned frame near the threshold (43 for
# 6 in the loop-built Vibe Ace, the most). A sound's own repetition is no evidence of *this* alignment. Any
# step from 20 to 36 separated them on 600 queries; 25 leaves margin both ways. The clip as it is (group 0)
# keeps the plain threshold: its matches include the 0 dB voice-over's, which sit at 3-7 frames.
BACKGROUND_PAIRS_PER_FRAME = 25
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
    scale: float = 1.0       # how much faster the query plays the sound
    pitch: float = 1.0       # the query's frequencies are the sound's x pitch
    group: int = 0           # the query's hypothesis group it was found in (0: the clip as it is)
    common: int = 0          # (query hash, posting) pairs the sound shares with that group, at any offset

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
    q_groups: np.ndarray | None = None,
    group_scales: tuple[float, ...] = (),
    group_min_frames: int = SPEED_MATCH_FRAMES,
    group_pitches: tuple[float, ...] = (),
    plain_groups: int = 0,
    shift_min_frames: int = SHIFT_MATCH_FRAMES,
    background_pairs_per_frame: int = BACKGROUND_PAIRS_PER_FRAME,
) -> list[SoundMatch]:
    """Best (scale, offset) matches of a query (hashes, anchor frames) against postings, strongest first.

    `q_groups` (optional, one per query hash) puts hashes in hypothesis groups: group 0 is voted on under
    `scales`; group g >= 1 (time scale `group_scales[g - 1]`, pitch `group_pitches[g - 1]`) under its scale
    times `scales` at max(min_frames, shift_min_frames) when g <= `plain_groups`, else under its scale alone
    at max(min_frames, group_min_frames), plus one frame per `background_pairs_per_frame` pairs the sound shares
    with the group away from its match (0: no such rule)."""
    if q_hashes.size == 0 or post_hash.size == 0:
        return []
    grouped = q_groups is not None and q_groups.size == q_hashes.size and bool(group_scales)
    # Join postings to every query occurrence of the same hash.
    order = np.argsort(q_hashes, kind="stable")
    q_hash, q_time = q_hashes[order].astype(np.int64), q_times[order].astype(np.int64)
    q_group = q_groups[order].astype(np.int64) if grouped and q_groups is not None else np.zeros(q_hash.size, np.int64)
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
    occurrence = starts + np.arange(reps.sum())
    q_t, group = q_time[occurrence], q_group[occurrence]
    # A sound with fewer joined rows than min_frames (in one group) cannot reach min_frames distinct frames
    # under any scale or offset. Most sounds a lookup returns are such: random hash collisions, which grow
    # with the corpus (one or two per sound), while the sounds worth voting on do not. Dropping them first
    # keeps the vote's cost set by the query's real candidates, not by the corpus size. The sounds are
    # numbered within this query once, here, for every scale's vote.
    n_groups = len(group_scales) + 1
    pair_ids, pair_of, rows = np.unique(sound * n_groups + group, return_inverse=True, return_counts=True)
    candidate = rows[pair_of] >= min_frames
    if not candidate.any():
        return []
    sound, group, ref_t, q_t = sound[candidate], group[candidate], ref_t[candidate], q_t[candidate]
    sound_ids, local = np.unique(sound, return_inverse=True)
    local = local.astype(np.int64)
    best: dict[int, SoundMatch] = {}
    for g in np.unique(group).tolist():
        rows_g = group == g
        g_local, g_ref, g_q = (local[rows_g], ref_t[rows_g], q_t[rows_g]) if grouped else (local, ref_t, q_t)
        plain = g <= plain_groups
        need = min_frames if not g else max(min_frames, shift_min_frames if plain else group_min_frames)
        own = group_scales[g - 1] if g else 1.0
        pitch = group_pitches[g - 1] if g and group_pitches else 1.0
        common = np.bincount(g_local, minlength=sound_ids.size)  # each sound's rows in this group
        for scale in (tuple(own * s for s in scales) if plain else (own,)):
            for m in _vote(sound_ids, g_local, g_ref, g_q, scale, need, common, background_pairs_per_frame if g else 0):
                if m.sound not in best or m.matched_frames > best[m.sound].matched_frames:
                    best[m.sound] = dataclasses.replace(m, pitch=pitch, group=g) if g else m
    return sorted(best.values(), key=lambda m: -m.matched_frames)[:limit]


def _vote(sound_ids: np.ndarray, local: np.ndarray, ref_t: np.ndarray, q_t: np.ndarray, scale: float,
          min_frames: int, common: np.ndarray, background_step: int = 0) -> list[SoundMatch]:
    """Each sound's best offset under one time scale; `local` indexes `sound_ids`, `common` counts each sound's
    rows. With `background_step`, a match needs one more frame per that many of its sound's rows it leaves out."""
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
        n, shared = int(counts[i]), int(common[sounds[i]])
        if background_step and n < min_frames + (shared - n) // background_step:
            continue
        group = int(pairs[i])
        near = np.abs(v_group - group) <= 1  # same sound (offsets never reach the sound bits' boundary)
        frames = votes[near] & ((1 << 17) - 1)
        out.append(
            SoundMatch(
                sound=int(sound_ids[sounds[i]]),
                matched_frames=n,
                offset=(group & ((1 << 22) - 1)) - _OFF,
                query_first=int(frames.min()),
                query_last=int(frames.max()),
                confidence=round(min(1.0, 0.5 + 0.5 * (n - min_frames) / max(1, CONFIDENT_FRAMES - min_frames)), 3),
                scale=scale,
                common=shared,
            )
        )
    return out


_OFF = 1 << 21
