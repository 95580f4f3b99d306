"""Where two uses of one sound meet: the one rule every sound answer follows.

A video uses a sound over a stretch of the sound's timeline ([first, last], in fingerprint frames), and
a sound frame is round(video frame x scale) + offset in it (``SoundUse``). Two videos share the part of
the sound both cover: it starts, in each video, where that overlap starts on the sound's timeline mapped
back into the video, and lasts as long as the overlap, so a shared stretch is never negative, never
outside either clip and never longer than either. Ingest's matches, SearchBySound (by video id and by
upload), GetVideo's sounds and Route's sound reasons all come from here, through the links the catalog
keeps (``sound_links``), so one video gets one answer whichever RPC asks.
"""

from __future__ import annotations

from coldopen.domain.sounds import FRAME_SECONDS, SoundNeighbour, SoundUse
from coldopen.sounds.vote import SoundMatch

FRAME_S = FRAME_SECONDS


def use_of_match(m: SoundMatch, primary: bool = False) -> SoundUse:
    """A query's match as a use of the matched sound: the stretch its agreeing frames cover."""
    return SoundUse(m.sound, primary, m.offset, m.scale, m.sound_first, m.sound_last, m.matched_frames, m.confidence,
                    pitch=m.pitch)


def times(use: SoundUse) -> tuple[float, float, float]:
    """(where the stretch of sound starts in the video, where on the sound's timeline, how long), in seconds."""
    return (round(_video_frame(use, use.first) * FRAME_S, 3), round(use.first * FRAME_S, 3),
            round((use.last - use.first + 1) / use.scale * FRAME_S, 3))


def shared(query: SoundUse, other: SoundUse, video_id: str) -> SoundNeighbour | None:
    """What `video_id` (using the sound as `other`) shares with the query (using it as `query`); None when
    their stretches of the sound do not overlap."""
    first, last = max(query.first, other.first), min(query.last, other.last)
    if first > last:
        return None
    frames = last - first + 1
    return SoundNeighbour(
        video_id=video_id,
        sound_id=query.sound_id,
        matched_frames=_weaker(query.matched_frames, other.matched_frames),
        query_start_s=round(_video_frame(query, first) * FRAME_S, 3),
        reference_start_s=round(_video_frame(other, first) * FRAME_S, 3),
        duration_s=round(frames / max(query.scale, other.scale) * FRAME_S, 3),
        confidence=round(min(query.confidence, other.confidence), 3),
    )


def strongest(uses: list[SoundUse], found: dict[int, list[tuple[int, str, SoundUse]]],
              exclude_row: int | None = None) -> dict[int, tuple[int, float]]:
    """Stored videos sharing a stretch of a sound with `uses`, from the catalog's `sharing` answer (sound ->
    [(row, video id, its use)]): row -> (the sound, the confidence of the shared stretch), the strongest
    where a video shares more than one."""
    out: dict[int, tuple[int, float]] = {}
    for u in uses:
        for row, video_id, other in found.get(u.sound_id, []):
            n = shared(u, other, video_id)
            if n is not None and row != exclude_row and n.confidence > out.get(row, (0, 0.0))[1]:
                out[row] = (u.sound_id, n.confidence)
    return out


def _video_frame(use: SoundUse, sound_frame: int) -> float:
    """The video frame at which the sound reaches `sound_frame` (never before the video's start)."""
    return max(0.0, (sound_frame - use.offset) / use.scale)


def _weaker(a: int, b: int) -> int:
    """The evidence of a shared stretch: the weaker of its two links (0: a link that kept none)."""
    known = [x for x in (a, b) if x > 0]
    return min(known) if known else 0
