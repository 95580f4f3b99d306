"""What the content prior and Route know about stored videos beyond their vectors: who shares a stretch of
a sound with whom (by the one rule of sounds/sharing.py, through the catalog's links) and who made what
(ranking/coldstart/signals.Relations)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coldopen.domain.sounds import SoundUse
from coldopen.sounds.sharing import strongest
from coldopen.storage.catalog import Catalog

SHARERS_PER_SOUND = 1000  # the oldest videos of a sound its coherence and its neighbours are read from
CREATOR_VIDEOS = 200      # a creator's most recent videos the prior looks at


class CatalogRelations:
    def __init__(self, store: Catalog):
        self._store = store

    def sharers_of(self, uses: list[SoundUse], exclude_row: int | None = None) -> dict[int, tuple[int, float]]:
        """Every stored video sharing a stretch of a sound with these uses: row -> (the sound, the confidence of
        the shared stretch); the strongest where it shares more than one."""
        if not uses:
            return {}
        found = self._store.sounds.sharing([(u.sound_id, u.first, u.last) for u in uses], SHARERS_PER_SOUND)
        return strongest(uses, found, exclude_row)

    def sound_sharers(self, rows: Sequence[int]) -> list[dict[int, tuple[int, float]]]:
        ids = self._store.videos.video_ids([int(r) for r in rows])
        with self._store.db.read() as conn:
            uses = self._store.sounds.uses_in(conn, [v for v in ids.values()])
        return [self.sharers_of(uses.get(ids.get(int(r), ""), []), exclude_row=int(r)) for r in rows]

    def creators(self, rows: Sequence[int]) -> list[str]:
        found = self._store.videos.creators([int(r) for r in rows])
        return [found.get(int(r), "") for r in rows]

    def creator_rows(self, creators: Sequence[str]) -> dict[str, np.ndarray]:
        found = self._store.videos.by_creators(list(creators), CREATOR_VIDEOS)
        return {c: np.array(rows, np.int64) for c, rows in found.items()}
