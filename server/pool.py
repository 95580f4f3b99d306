"""Performance scores and the performs-well pool, recomputed from the store's engagement counters.

The pool has its own vector indexes (one per modality) and a routing view, so performing-only
searches and routes never scan the whole corpus. A refresh builds everything aside and swaps it in
under a lock, so readers always see one consistent snapshot.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import numpy as np

from server import engagement, routing
from server.index import FaissFlatIndex, VectorIndex
from server.settings import Settings
from server.store import Store


class PerformancePool:
    def __init__(self, settings: Settings, store: Store, visual_dim: int, text_dim: int):
        self._settings = settings
        self._store = store
        self._dims = (visual_dim, text_dim)
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._prior = 0.0
        self._counters: dict[int, engagement.Counters] = {}
        self._scores: dict[int, float] = {}
        self._members: set[int] = set()
        self.threshold = float("inf")
        self._indexes: dict[str, VectorIndex] = {}
        self._view = routing.PoolView.build([], {}, visual_dim, text_dim)
        self.refresh()

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, row: int) -> bool:
        return row in self._members

    def has_counters(self, row: int) -> bool:
        return row in self._counters

    def index(self, modality: str) -> VectorIndex:
        with self._lock:
            return self._indexes[modality]

    def view(self) -> routing.PoolView:
        with self._lock:
            return self._view

    def performance(self, row: int) -> engagement.Performance:
        with self._lock:
            c = self._counters.get(row, engagement.Counters())
            score = self._scores.get(row)
            if score is None:
                score = engagement.score(c, self._settings, self._prior, datetime.now(timezone.utc))
            return engagement.Performance(
                counters=c,
                score=score,
                completion_rate=c.completions / c.plays if c.plays else 0.0,
                in_pool=row in self._members,
                pool_threshold=self.threshold,
            )

    def refresh(self) -> None:
        with self._refresh_lock:  # serialised, so an older snapshot never overwrites a newer one
            counters = self._store.all_counters()
            prior = engagement.prior_rate(list(counters.values()), self._settings)
            now = datetime.now(timezone.utc)
            scores = {row: engagement.score(c, self._settings, prior, now) for row, c in counters.items()}
            members, threshold = engagement.pool(scores, counters, self._settings)
            view = routing.PoolView.build(self._store.profiles(sorted(members)), scores, *self._dims)
            indexes: dict[str, VectorIndex] = {}
            for modality, matrix in (("visual", view.visual), ("spoken", view.spoken), ("caption", view.caption)):
                indexes[modality] = FaissFlatIndex(matrix.shape[1])
                has = np.abs(matrix).sum(axis=1) > 0
                if has.any():
                    indexes[modality].add(view.rows[has], matrix[has])
            with self._lock:
                self._prior, self._counters, self._scores = prior, counters, scores
                self._members, self.threshold = members, threshold
                self._indexes, self._view = indexes, view
