"""Sound queries: who shares a stretch of sound with a video or an upload (through the links the catalog
keeps, by the one rule of sounds/sharing.py), one sound's usage, and trends."""

from __future__ import annotations

from pathlib import Path

from coldopen.app.core import Core
from coldopen.app.validation import window_start
from coldopen.domain.errors import InvalidInput, NotFound
from coldopen.domain.sounds import Fingerprint, SoundNeighbour, SoundStats, SoundUse, parse_sound_id
from coldopen.domain.videos import validate_video_id
from coldopen.sounds.sharing import shared, strongest, use_of_match


class SoundQueries:
    def __init__(self, core: Core):
        self._core = core

    def shared_by(self, uses: list[SoundUse], exclude_video: str | None, limit: int) -> list[SoundNeighbour]:
        """The videos sharing a stretch of each sound the query uses: its strongest use first and, within a
        sound, the oldest video first."""
        found = self._core.store.sounds.sharing([(u.sound_id, u.first, u.last) for u in uses], limit, exclude_video)
        out = []
        for u in uses:
            for _, video_id, other in found.get(u.sound_id, []):
                n = shared(u, other, video_id)
                if n is not None:
                    out.append(n)
        return out[:limit]

    def pool_sharing(self, uses: list[SoundUse], exclude_row: int | None) -> dict[int, tuple[int, float]]:
        """Performing videos sharing a stretch of sound with the query: row -> (the sound, the confidence of
        the shared stretch), the same stretches SearchBySound reports."""
        if not uses:
            return {}
        found = self._core.store.sounds.sharing([(u.sound_id, u.first, u.last) for u in uses],
                                                limit=len(self._core.pool) + 1, pool_only=True)
        return strongest(uses, found, exclude_row)

    def query_uses(self, fingerprint: Fingerprint | None, limit: int) -> list[SoundUse]:
        """The sounds an upload's audio matches, as uses (strongest first)."""
        if fingerprint is None or not len(fingerprint):
            return []
        return [use_of_match(m) for m in self._core.sounds.match(fingerprint, limit=limit)]

    def search_by_sound(
        self, video_id: str | None = None, path: Path | None = None, limit: int = 10, deadline: float | None = None
    ) -> list[SoundNeighbour]:
        """Videos that reuse the sound of an indexed video, or of an uploaded audio/video file (not stored)."""
        core = self._core
        core.check_count(limit, "limit", "matches")
        if video_id is not None:
            validate_video_id(video_id)
            stored = core.store.videos.fingerprint(video_id)
            if stored is None:
                raise NotFound(f"video {video_id!r} is not indexed; ingest it first or check the id")
            if stored[1] is None:
                raise InvalidInput(f"video {video_id!r} has no audio track, so it has no sound to search by")
            return self.shared_by(core.store.sounds.uses(video_id), exclude_video=video_id, limit=limit)
        assert path is not None
        fingerprint = core.pipeline.sound_fingerprint(path, deadline)
        return self.shared_by(self.query_uses(fingerprint, limit), exclude_video=None, limit=limit)

    def sound_stats(self, sound_id: str, window_s: float, sample: int = 10) -> tuple[SoundStats, list[str]]:
        store = self._core.store
        sid = parse_sound_id(sound_id)
        if not store.sounds.exists(sid):
            raise NotFound(f"sound {sound_id!r} does not exist; sound ids come from Ingest or ListSounds")
        stats = store.sounds.stats(window_start(window_s), sound_id=sid, limit=1)
        if not stats:  # every video that used it was deleted or re-ingested with another sound
            return SoundStats(sid, "", "", 0, 0), []
        return stats[0], store.sounds.videos_of(sid, sample)

    def list_sounds(self, window_s: float, limit: int) -> list[SoundStats]:
        """Sounds by how many videos used them within the window (then in total): trend counting."""
        self._core.check_count(limit, "limit", "sounds")
        return self._core.store.sounds.stats(window_start(window_s), limit=limit)
