"""What every use case of the service shares: the models, the catalog, the vector indexes, the pool, sound
identity, the write lock, and the one lookup from a video id to its row and profile."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from coldopen.app.relations import CatalogRelations
from coldopen.config.settings import Settings
from coldopen.domain.errors import NotFound
from coldopen.domain.videos import check_count, validate_video_id
from coldopen.engine.pipeline import Pipeline
from coldopen.models.bundle import Models
from coldopen.ops.metrics import Observer
from coldopen.ranking.coldstart.content import ContentPriors
from coldopen.ranking.pool import PerformancePool
from coldopen.sounds.identity import SoundIdentity
from coldopen.sounds.postings import SoundPostings
from coldopen.storage.catalog import Catalog, Profile
from coldopen.storage.feed import Follower
from coldopen.storage.vectors import FaissIndex, VectorIndex


@dataclass
class Core:
    settings: Settings
    models: Models
    store: Catalog
    indexes: dict[str, VectorIndex]          # target modality (visual, spoken, caption) -> vector index
    pipeline: Pipeline
    postings: SoundPostings                  # this node's hash-addressed view of the sound postings
    sounds: SoundIdentity
    ships: bool                              # the vectors live in a shared store (Milvus): writes ship to it
    pool: PerformancePool = field(init=False)
    priors: ContentPriors = field(init=False)
    relations: CatalogRelations = field(init=False)  # sounds shared and creators, for the prior and Route
    feed: Follower | None = None             # other replicas' writes, and the outbox of a shared vector store
    observer: Observer = field(default_factory=Observer)  # the server sets its metrics here when it attaches
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    dirty: int = 0         # writes applied to the in-process indexes since the last snapshot
    pool_behind: int = 0   # re-ingests and deletes committed that the pool has not applied yet

    def check_count(self, value: int, name: str, noun: str) -> int:
        """k and limit: 1 to max_k."""
        return check_count(value, self.settings.max_k, name, noun)

    def profile(self, video_id: str) -> tuple[int, Profile]:
        """The one lookup from a caller's video id to its row and routing profile; NotFound otherwise."""
        validate_video_id(video_id)
        row = self.store.videos.row_id(video_id)
        profiles = self.store.videos.profiles([row]) if row is not None else []
        if row is None or not profiles:
            raise NotFound(f"video {video_id!r} is not indexed; ingest it first or check the id")
        return row, profiles[0]

    def feed_cursor(self) -> int:
        """Where this node is in the change feed: every change before it is in its indexes."""
        return self.feed.cursor if self.feed is not None else self.store.feed.position()

    def pool_caught_up(self) -> None:
        with self.write_lock:
            self.pool_behind -= 1

    def local_indexes(self) -> dict[str, VectorIndex]:
        """The indexes this process holds (not a shared store's)."""
        return {m: i for m, i in self.indexes.items() if not i.shared}

    def vectors_of(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Every modality's vectors of rows (zero rows where a video lacks one): from this process's indexes
        where it has them, else from the catalog."""
        rows = np.asarray(rows, np.int64)
        dims = self.models.dims()
        out: dict[str, np.ndarray] = {}
        for modality, dim in dims.items():
            index = self.indexes.get(modality)
            got = index.get(rows) if isinstance(index, FaissIndex) else None
            if got is None or (modality == "visual" and not got[0].all()):
                break
            full = np.zeros((len(rows), dim), np.float32)
            full[got[0]] = got[1]
            out[modality] = full
        else:
            return out
        profiles = {p.row: p for p in self.store.videos.profiles([int(r) for r in rows])}

        def column(m: str, d: int) -> np.ndarray:
            if not len(rows):
                return np.zeros((0, d), np.float32)
            return np.stack([getattr(profiles[int(r)], m) if int(r) in profiles and getattr(profiles[int(r)], m) is not None
                             else np.zeros(d, np.float32) for r in rows])

        return {m: column(m, d) for m, d in dims.items()}


def refresh_rows(store: Catalog, indexes: dict[str, VectorIndex], rows: list[int]) -> None:
    """Bring in-process indexes to the catalog's current state of `rows` (idempotent)."""
    current = store.videos.vectors(rows)
    ids = np.array(rows, dtype=np.int64)
    for modality, index in indexes.items():
        index.remove(ids)
        have = [r for r in rows if r in current and current[r].vectors[modality] is not None]
        if have:
            vectors = [v for r in have if (v := current[r].vectors[modality]) is not None]
            index.add(np.array(have, dtype=np.int64), np.stack(vectors))
