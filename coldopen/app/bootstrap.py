"""Opening the service on a data dir: its lock, the catalog and the embedding space it was built with, the
vector indexes (from their snapshot plus newer changes, else from every row of the catalog)."""

from __future__ import annotations

import logging
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from coldopen.app.core import refresh_rows
from coldopen.config.settings import Settings
from coldopen.domain.errors import ModelLoadError
from coldopen.domain.timing import utc_text
from coldopen.models.bundle import Models
from coldopen.storage import snapshots
from coldopen.storage.catalog import Catalog, open_catalog
from coldopen.storage.datadir import DataDirLock
from coldopen.storage.retention import KEEP_CHANGES_S
from coldopen.storage.vectors import FaissIndex, VectorIndex, open_indexes

log = logging.getLogger(__name__)


def open_store(settings: Settings, models: Models, store: Catalog | None
               ) -> tuple[Catalog, dict[str, VectorIndex], snapshots.SnapshotKey, int, str]:
    """(catalog, filled indexes, their snapshot key, the change-feed cursor they are current to, how they were
    filled). Closes the catalog when it fails."""
    tmp = settings.data_dir / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # partial uploads from a previous run
    tmp.mkdir()
    store = store or open_catalog(settings.database_url, settings.data_dir)
    try:
        _check_embedding_space(store, models)
        started = time.perf_counter()
        indexes = open_indexes(settings, models.dims())
        key = snapshots.SnapshotKey(store.catalog_id(), models.clip.name, models.clip.dim, settings.index_type)
        cursor, how = build_indexes(store, indexes, settings.data_dir / "snapshots", key)
        # The change feed only matters for a while (replicas follow it, the outbox ships from it): drop old
        # shipped entries at start too, so a single server that never follows it does not grow it forever.
        pruned = store.feed.prune(utc_text(datetime.now(timezone.utc) - timedelta(seconds=KEEP_CHANGES_S)))
        if pruned:
            log.info("dropped %d shipped change-feed entries older than %d h", pruned, KEEP_CHANGES_S // 3600)
        if store.stale_fingerprints:
            log.warning(
                "%d stored fingerprints were made by an older landmark format and were dropped; those videos keep "
                "their sound ids, but their sounds no longer match new uploads: re-ingest a video to fingerprint it "
                "again (its sound then gets an id of the new format)", store.stale_fingerprints
            )
        index = indexes["visual"]
        log.info("index ready: %d videos (%s), %d transcripts, %d captions, %s in %.0f ms (sound postings stay in "
                 "the store)", len(index), index.description, len(indexes["spoken"]), len(indexes["caption"]), how,
                 (time.perf_counter() - started) * 1000)
        return store, indexes, key, cursor, how
    except BaseException:
        store.close()
        raise


def _check_embedding_space(store: Catalog, models: Models) -> None:
    space, clip = store.embedding_space(), models.clip
    if space is None:
        store.set_embedding_space(clip.name, clip.dim)
    elif space != (clip.name, clip.dim):
        raise ModelLoadError(
            f"the catalog {store.description} holds embeddings from {space[0]} ({space[1]}-d) but the server "
            f"was started with {clip.name} ({clip.dim}-d); start with the same --clip-model/--clip-pretrained, "
            f"or use a new --data-dir (or --database-url)"
        )


def build_indexes(store: Catalog, indexes: dict[str, VectorIndex], directory: Path, key: snapshots.SnapshotKey
                  ) -> tuple[int, str]:
    """Fill the in-process indexes: from the snapshot plus the changes committed after it when there is a
    usable one, else from every row of the catalog. Returns the change-feed cursor they are current to, and
    how they were filled (for the log)."""
    local = {m: i for m, i in indexes.items() if not i.shared}  # a shared store keeps its own vectors
    if not local:
        return store.feed.position(), "vectors kept by the shared vector store"
    from_snapshot = {m: i for m, i in local.items() if isinstance(i, FaissIndex)}
    cursor = snapshots.load(directory, key, from_snapshot) if from_snapshot else None
    if cursor is None:
        cursor = store.feed.position()  # before reading: writes committed meanwhile come again from the feed
        for modality, index in local.items():
            for ids, vectors in store.videos.iter_embeddings(modality):
                index.add(ids, vectors)
        return cursor, "rebuilt from the catalog"
    for modality, index in local.items():
        if modality not in from_snapshot:  # e.g. torch's exact index on CUDA: not snapshotted
            for ids, vectors in store.videos.iter_embeddings(modality):
                index.add(ids, vectors)
    changes = rows = 0
    for batch, after in store.feed.pages_after(cursor):
        cursor = after
        if batch:
            touched = sorted({c.row_id for c in batch})
            refresh_rows(store, local, touched)
            changes, rows = changes + len(batch), rows + len(touched)
    return cursor, f"loaded from the snapshot + {changes} newer changes ({rows} rows) replayed"


def locked(settings: Settings, lock: DataDirLock | None) -> DataDirLock:
    """The data dir's lock: the caller's, or taken now (before touching anything another server may use)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return lock or DataDirLock(settings.data_dir).acquire()
