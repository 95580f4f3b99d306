"""Performance scores and the performs-well pool, computed from the catalog's engagement counters and
published in the catalog, so every replica on a shared catalog serves the same pool.

The replica that records engagement recomputes the pool and publishes it (members with their scores,
the prior and the threshold, under a new version); other replicas see the version change on their next
feed poll and load the published members instead of recomputing from every video. The pool has its own
vector indexes (one per modality) and a routing view, so performing-only searches and routes never scan
the whole corpus. A refresh builds everything aside and swaps it in under a lock, so readers always see
one consistent snapshot.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from server import engagement, routing
from server.settings import Settings
from server.storage import Catalog
from server.storage.vectors import FaissFlatIndex, VectorIndex


class PerformancePool:
    def __init__(
        self, settings: Settings, store: Catalog, visual_dim: int, text_dim: int,
        on_publish: Callable[[list[int], list[int]], None] | None = None,
    ):
        """`on_publish(rows that joined or left, their change seqs)`: set when an external vector store holds
        pool membership (the caller ships those rows)."""
        self._settings = settings
        self._on_publish = on_publish
        self._store = store
        self._dims = (visual_dim, text_dim)
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self.version: str | None = None
        self._prior = 0.0
        self._scores: dict[int, float] = {}   # members only
        self.threshold = float("inf")
        self._indexes: dict[str, VectorIndex] = {}
        self._view = routing.PoolView.build([], {}, visual_dim, text_dim)
        if not self.sync():   # a published pool: load it; none yet (a new catalog, or one from before pools
            self.refresh()    # were published): compute and publish it

    def __len__(self) -> int:
        return len(self._scores)

    def __contains__(self, row: int) -> bool:
        return row in self._scores

    def index(self, modality: str) -> VectorIndex:
        with self._lock:
            return self._indexes[modality]

    def view(self) -> routing.PoolView:
        with self._lock:
            return self._view

    def performance(self, row: int) -> engagement.Performance:
        c = self._store.counters(row) or engagement.Counters()
        with self._lock:
            score = self._scores.get(row)
            if score is None:
                score = engagement.score(c, self._settings, self._prior, datetime.now(timezone.utc))
            return engagement.Performance(
                counters=c,
                score=score,
                completion_rate=c.completions / c.plays if c.plays else 0.0,
                in_pool=row in self._scores,
                pool_threshold=self.threshold,
            )

    def refresh(self) -> None:
        """Recompute from every engaged video's counters and publish the result."""
        with self._refresh_lock:  # serialised, so an older snapshot never overwrites a newer one
            counters = self._store.all_counters()
            prior = engagement.prior_rate(list(counters.values()), self._settings)
            now = datetime.now(timezone.utc)
            scores = {row: engagement.score(c, self._settings, prior, now) for row, c in counters.items()}
            members, threshold = engagement.pool(scores, counters, self._settings)
            published = {r: scores[r] for r in members}
            version, moved, changes = self._store.publish_pool(prior, threshold, published, ship=self._on_publish is not None)
            self._install(version, prior, threshold, published)
        if self._on_publish is not None and moved:
            self._on_publish(moved, changes)

    def sync(self) -> bool:
        """Load the published pool when another replica changed it; False when none was ever published."""
        version = self._store.pool_version()
        if version is None:
            return False
        if version != self.version:
            with self._refresh_lock:
                published = self._store.published_pool()
                if published is not None:
                    self._install(*published)
        return True

    def _install(self, version: str, prior: float, threshold: float, members: dict[int, float]) -> None:
        view = routing.PoolView.build(self._store.profiles(sorted(members)), members, *self._dims)
        indexes: dict[str, VectorIndex] = {}
        for modality, matrix in (("visual", view.visual), ("spoken", view.spoken), ("caption", view.caption)):
            indexes[modality] = FaissFlatIndex(matrix.shape[1])
            has = np.abs(matrix).sum(axis=1) > 0
            if has.any():
                indexes[modality].add(view.rows[has], matrix[has])
        with self._lock:
            self.version, self._prior, self.threshold = version, prior, threshold
            self._scores = {int(r): members[int(r)] for r in view.rows}  # members whose video still exists
            self._indexes, self._view = indexes, view
