"""What both kinds of performs-well pool share: the routing view held still while it is read, performing-only
search over it, rates for content priors, and the interface the service uses (one server: local.py; a
shared catalog: shared.py)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from coldopen.config.settings import Settings
from coldopen.domain.engagement import EngagementEvent, Performance
from coldopen.ranking import scores as engagement
from coldopen.ranking.scorebook import ScoreBook
from coldopen.ranking.view import PoolView
from coldopen.storage import pool_snapshot
from coldopen.storage.catalog import Catalog, EngagementWrite, Profile

if TYPE_CHECKING:
    from coldopen.ranking.pool.index import PoolIndex

Vectors = Callable[[np.ndarray], dict[str, np.ndarray]]
Publish = Callable[[list[int], list[int]], None]


class PerformancePool(ABC):
    """The performs-well pool. `on_publish(rows that joined or left, their change seqs)`: set when an external
    vector store holds pool membership (the caller ships those rows). `vectors(rows)`: modality -> (n, dim)
    embeddings, which the service takes from its in-process indexes where it has them (at start, 10^5
    members' blobs take seconds to read from the catalog); None: read with the profiles."""

    def __init__(self, settings: Settings, store: Catalog, visual_dim: int, text_dim: int,
                 on_publish: Publish | None = None, vectors: Vectors | None = None):
        self._vectors = vectors
        self._settings = settings
        self._on_publish = on_publish
        self._store = store
        self._dims = (visual_dim, text_dim)
        self._lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self.version: str | None = None
        self._prior = 0.0
        self._view = PoolView(visual_dim, text_dim)
        self._ready = threading.Event()
        self.changes = 0  # updates since the last snapshot (written only when some happened)

    # --- what each kind answers its own way --------------------------------------
    @abstractmethod
    def __len__(self) -> int:
        """Members; 0 while the pool is loading (never waits: metrics read it)."""

    @abstractmethod
    def __contains__(self, row: int) -> bool: ...

    @property
    @abstractmethod
    def threshold(self) -> float: ...

    @abstractmethod
    def scores_now(self, rows: np.ndarray) -> np.ndarray:
        """Current (decayed) scores of rows, for routing's neighbour performance."""

    @abstractmethod
    def performance(self, row: int) -> Performance: ...

    @abstractmethod
    def record(self, events: list[EngagementEvent]) -> EngagementWrite:
        """Store a batch of (valid) events and move the pool by them."""

    @abstractmethod
    def forget(self, row: int) -> None:
        """A video was deleted: its counters went with it."""

    @abstractmethod
    def reprofile(self, row: int) -> None:
        """A video was re-ingested: a member's embeddings changed, and an engaged video's content prior."""

    @abstractmethod
    def _rate_book(self) -> ScoreBook:
        """Every engaged video's rate, for content priors."""

    def sync(self) -> bool:
        """Load a pool another replica published; False when none was ever published."""
        return True

    def snapshot(self, cursor: int) -> pool_snapshot.PoolSnapshot | None:
        """The pool as it is now, to write (None: not snapshotted here)."""
        return None

    def write_snapshot(self, snap: pool_snapshot.PoolSnapshot) -> float:
        raise NotImplementedError("this pool is not snapshotted")

    # --- shared -----------------------------------------------------------------------
    def _wait(self) -> None:
        if not self._ready.is_set():
            self._ready.wait()
        self._raise_if_failed()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def index(self, modality: str) -> PoolIndex:
        """Performing-only search of one modality: exact, over the routing view's own dense matrix."""
        self._wait()
        from coldopen.ranking.pool.index import PoolIndex

        return PoolIndex(self, modality)

    @contextmanager
    def reading(self) -> Iterator[PoolView]:
        """The routing view, held still while the caller reads it."""
        self._wait()
        with self._lock:
            yield self._view

    def rates(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(undecayed smoothed rate, impressions) per row, for content priors (nan, 0 without engagement)."""
        return self._rate_book().rates(np.asarray(rows, np.int64))

    def rows_with(self, min_impressions: float) -> np.ndarray:
        return self._rate_book().rows_with(min_impressions)

    def count_with(self, min_impressions: float) -> int:
        return self._rate_book().count_with(min_impressions)

    def _book_from_catalog(self) -> ScoreBook:
        """Every engaged video's score, read from the catalog's counters and stored priors."""
        return ScoreBook.from_arrays(
            self._settings, *self._store.engagement.arrays(engagement.counter_weights(self._settings)))

    def _profiles(self, rows: list[int]) -> tuple[list[Profile], dict[str, np.ndarray] | None]:
        """Members' routing profiles, with their embeddings from the service when it gives them."""
        if not rows:
            return [], None
        if self._vectors is None:
            return self._store.videos.profiles(rows), None
        profiles = self._store.videos.profiles(rows, vectors=False)
        return profiles, self._vectors(np.array([p.row for p in profiles], np.int64))

    def _raise_if_failed(self) -> None:  # noqa: B027 (a hook: only a pool loaded in the background can fail to load)
        """Calls that need the pool raise what kept it from loading (one server loads it in the background)."""
