"""The pool on a shared catalog (PostgreSQL): other replicas record engagement too, and no replica sees every
counter change, so the replica that records a batch recomputes the pool from every engaged video's
counters and publishes it (members, prior, threshold, under a new version); the others load the published
version after their next feed poll."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from coldopen.config.settings import Settings
from coldopen.domain.engagement import Counters, EngagementEvent, Performance
from coldopen.ranking.pool.base import PerformancePool, Publish, Vectors
from coldopen.ranking.scorebook import ScoreBook
from coldopen.ranking.view import PoolView
from coldopen.storage.catalog import Catalog, EngagementWrite


class SharedPool(PerformancePool):
    def __init__(self, settings: Settings, store: Catalog, visual_dim: int, text_dim: int,
                 on_publish: Publish | None = None, vectors: Vectors | None = None):
        super().__init__(settings, store, visual_dim, text_dim, on_publish, vectors)
        self._scores: dict[int, float] = {}   # members
        self._threshold = float("inf")
        self._shared_book: tuple[str | None, ScoreBook] | None = None  # every engaged video's rates, per version
        if not self.sync():   # a published pool: load it; none yet (a new catalog, or one from before
            self.refresh()    # pools were published): compute and publish it
        self._ready.set()

    def __len__(self) -> int:
        return len(self._scores)

    def __contains__(self, row: int) -> bool:
        return row in self._scores

    @property
    def threshold(self) -> float:
        return self._threshold

    def scores_now(self, rows: np.ndarray) -> np.ndarray:
        return np.array([self._scores.get(int(r), 0.0) for r in rows])

    def _rate_book(self) -> ScoreBook:
        """A book of every engaged video's counters, read again when the published pool's version changes
        (seconds at 10^6 engaged videos)."""
        with self._refresh_lock:
            if self._shared_book is None or self._shared_book[0] != self.version:
                self._shared_book = (self.version, self._book_from_catalog())
            return self._shared_book[1]

    def performance(self, row: int) -> Performance:
        c = self._store.engagement.counters(row) or Counters()
        now = datetime.now(timezone.utc)
        with self._lock:
            score = self._scores.get(row)
            in_pool, threshold = row in self._scores, self._threshold
        if score is None:  # not a member: from the book of every engaged video (its content prior included)
            score = self._rate_book().score(row, now)
            score = self._prior if score is None else score
        return Performance(counters=c, score=score, completion_rate=c.completions / c.plays if c.plays else 0.0,
                           in_pool=in_pool, pool_threshold=threshold)

    def record(self, events: list[EngagementEvent]) -> EngagementWrite:
        """Store, then recompute and publish."""
        write = self._store.engagement.record(events)
        if write.accepted:
            self.refresh()
        return write

    def forget(self, row: int) -> None:
        if row in self._scores:  # a member changed: recompute
            self.refresh()

    def reprofile(self, row: int) -> None:
        self.forget(row)

    def refresh(self) -> None:
        """Recompute from every engaged video's counters and publish the result (shared catalog): the same
        score book one server keeps, built afresh, so both choose members (ties, content priors) alike."""
        with self._refresh_lock:  # serialised, so an older snapshot never overwrites a newer one
            book = self._book_from_catalog()
            now = datetime.now(timezone.utc)
            members = book.members()
            prior, threshold = book.prior, book.threshold(now)
            published = dict(zip(members.tolist(), book.scores(members, now).tolist()))
            version, moved, changes = self._store.pool.publish(prior, threshold, published, ship=self._on_publish is not None)
            self._install(version, prior, threshold, published)
            self._shared_book = (version, book)  # this version's rates: no second read for content priors
        if self._on_publish is not None and moved:
            self._on_publish(moved, changes)

    def sync(self) -> bool:
        """Load the published pool when another replica changed it; False when none was ever published."""
        version = self._store.pool.version()
        if version is None:
            return False
        if version != self.version:
            with self._refresh_lock:
                published = self._store.pool.published()
                if published is not None:
                    self._install(*published)
        return True

    def _install(self, version: str, prior: float, threshold: float, members: dict[int, float]) -> None:
        view = PoolView.build(self._store.videos.profiles(sorted(members)), members, *self._dims)
        with self._lock:
            self.version, self._prior, self._threshold = version, prior, threshold
            self._scores = {int(r): members[int(r)] for r in view.rows}  # members whose video still exists
            self._view = view
