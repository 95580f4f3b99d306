"""The service: media -> models -> store -> index, and every query, behind one facade. No gRPC types here.

Each use case lives in its own module and shares what it needs through `Core` (core.py):

  bootstrap.py     opening a data dir: lock, catalog, embedding space, indexes from snapshot or catalog
  ingest.py        admission, an upload's write (sound links, catalog, indexes, pool, vector store), delete
  queries.py       Search, GetVideo, engagement batches
  sounds.py        SearchBySound, GetSound, ListSounds
  route.py         Route
  outlook.py       content priors, posteriors, Rollout
  replication.py   following other replicas, shipping to a shared vector store
  snapshotting.py  background snapshots of the indexes and the pool
"""

from __future__ import annotations

import logging

from coldopen.app import bootstrap
from coldopen.app.core import Core
from coldopen.app.ingest import Ingest
from coldopen.app.outlook import Outlook
from coldopen.app.queries import Queries
from coldopen.app.relations import CatalogRelations
from coldopen.app.replication import Replication
from coldopen.app.route import Route
from coldopen.app.snapshotting import Snapshotter
from coldopen.app.sounds import SoundQueries
from coldopen.config.settings import Settings
from coldopen.engine.batching import BatcherStats
from coldopen.engine.pipeline import Pipeline
from coldopen.models.bundle import Models
from coldopen.ops.metrics import Observer
from coldopen.ranking.coldstart.content import ContentPriors
from coldopen.ranking.pool import open_pool
from coldopen.sounds.identity import SoundIdentity
from coldopen.sounds.postings import SoundPostings
from coldopen.storage import snapshots
from coldopen.storage.catalog import Catalog
from coldopen.storage.datadir import DataDirLock
from coldopen.storage.vectors import FaissIndex, VectorIndex

__all__ = ["ColdOpenService", "Models"]

log = logging.getLogger(__name__)


class ColdOpenService:
    core: Core
    _replication: Replication

    def __init__(
        self,
        settings: Settings,
        models: Models,
        store: Catalog,
        indexes: dict[str, VectorIndex],
        lock: DataDirLock | None = None,
        feed_cursor: int | None = None,
        snapshot_key: snapshots.SnapshotKey | None = None,
        snapshot_due: bool = False,
    ):
        self.settings, self.models = settings, models
        self._lock_file = lock
        postings = SoundPostings(settings.data_dir / "sound-postings", store.sounds.chunks_after, key=store.catalog_id(),
                                 memory_bytes=settings.sound_build_memory_mb << 20)
        core = self.core = Core(
            settings=settings, models=models, store=store, indexes=indexes,
            pipeline=Pipeline(settings, models, on_batch=lambda *batch: self.core.observer.batch(*batch)),
            postings=postings, sounds=SoundIdentity(store, postings), ships=any(i.shared for i in indexes.values()),
        )
        core.pool = open_pool(
            settings, store, models.clip.dim, models.text.dim,
            # pool moves reach a shared vector store through replication's shipping (created below: it follows the pool)
            on_publish=(lambda rows, changes: self._replication.ship_rows(rows, changes)) if core.ships else None,
            # members' embeddings from the in-process indexes; with an external store, read with their profiles
            vectors=core.vectors_of if all(isinstance(i, FaissIndex) for i in indexes.values()) else None,
            background=True, snapshot_dir=settings.data_dir / "snapshots" if snapshot_key is not None else None,
        )
        # What a video's content predicts, from neighbours among every video with impressions (ranking/coldstart/).
        core.relations = CatalogRelations(store)
        core.priors = ContentPriors(settings, indexes, core.vectors_of, core.pool.rates, core.pool.rows_with,
                                    core.pool.count_with, relations=core.relations)
        self._replication = Replication(core, feed_cursor)
        self._outlook = Outlook(core)
        self._sounds = SoundQueries(core)
        self._ingest = Ingest(core, self._replication, self._sounds, self._outlook)
        self._queries = Queries(core, self._outlook)
        self._route = Route(core, self._ingest, self._sounds, self._outlook)
        self._snapshots = Snapshotter(core, snapshot_key, snapshot_due)
        self.pipeline = core.pipeline
        # The use cases, as the API calls them.
        self.ingest_slot, self.upload_file, self.ingest, self.delete = (
            self._ingest.slot, self._ingest.upload_file, self._ingest.ingest, self._ingest.delete)
        self.search, self.get, self.record_engagement = self._queries.search, self._queries.get, self._queries.record_engagement
        self.search_by_sound, self.sound_stats, self.list_sounds = (
            self._sounds.search_by_sound, self._sounds.sound_stats, self._sounds.list_sounds)
        self.route, self.outlook, self.rollout = self._route.route, self._outlook.outlook, self._outlook.rollout
        self.write_snapshot, self.write_pool_snapshot = self._snapshots.write, self._snapshots.write_pool
        self.replication = self._replication.stats

    @classmethod
    def open(cls, settings: Settings, models: Models, lock: DataDirLock | None = None,
             store: Catalog | None = None) -> ColdOpenService:
        """Lock the data dir (unless the caller already holds `lock`), open the catalog (unless the caller
        opened it: `store`), check it matches the embedding model, rebuild the index from the store. The
        service releases the lock and closes the catalog when it closes."""
        lock = bootstrap.locked(settings, lock)
        try:
            store, indexes, key, cursor, how = bootstrap.open_store(settings, models, store)
            try:
                return cls(settings, models, store, indexes, lock, cursor, snapshot_key=key,
                           snapshot_due=how.startswith("rebuilt"))
            except BaseException:
                store.close()
                raise
        except BaseException:
            lock.release()
            raise

    @property
    def observer(self) -> Observer:
        return self.core.observer

    @observer.setter
    def observer(self, observer: Observer) -> None:
        self.core.observer = observer

    def close(self) -> None:
        self._replication.close()
        self._snapshots.close()
        self.core.pipeline.close()
        for index in self.core.indexes.values():
            index.close()
        self.core.postings.close()
        self.core.store.close()
        if self._lock_file is not None:
            self._lock_file.release()

    # --- what the server and its metrics read -----------------------------------------
    @property
    def ingests_in_flight(self) -> int:
        """Uploads holding an ingest slot right now."""
        return self._ingest.in_flight

    @property
    def size(self) -> int:
        return len(self.core.indexes["visual"])

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Whether the performs-well pool, loaded in the background at open, is ready (waits up to `timeout`)."""
        return self.core.pool.wait_ready(timeout)

    def index_sizes(self) -> dict[str, int]:
        """Vectors per index: the three modalities, the pool, and sound-index postings."""
        core = self.core
        return {**{m: len(i) for m, i in core.indexes.items()}, "pool": len(core.pool), "sound_postings": core.sounds.postings}

    @property
    def pool_size(self) -> int:
        return len(self.core.pool)

    @property
    def index_description(self) -> str:
        return self.core.indexes["visual"].description

    @property
    def device(self) -> str:
        """Where CLIP runs (cpu, cuda)."""
        return str(self.models.clip.device)

    @property
    def decode_restarts(self) -> int:
        """Decode worker pools restarted after a worker died."""
        return self.core.pipeline.decoder.crashes

    def queues(self) -> list[BatcherStats]:
        """Each model batcher's counts and queue depth."""
        return self.core.pipeline.stats()
