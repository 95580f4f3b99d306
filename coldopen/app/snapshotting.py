"""In-process FAISS indexes and the performs-well pool, snapshotted in the background (storage/snapshots.py,
storage/pool_snapshot.py), so a start loads them and replays only newer changes."""

from __future__ import annotations

import logging
import threading
from typing import Any

from coldopen.app.core import Core
from coldopen.storage import snapshots
from coldopen.storage.vectors import FaissIndex

log = logging.getLogger(__name__)


class Snapshotter:
    def __init__(self, core: Core, key: snapshots.SnapshotKey | None, due: bool):
        """`key`: what a snapshot must match (None: no snapshots); `due`: the indexes were just rebuilt, so
        the first snapshot is written at once."""
        self._core = core
        self._key = key
        self._write = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if key is not None and core.settings.snapshot_interval_s > 0 and self._faiss():
            first_now = due and len(core.indexes["visual"]) > 0  # a full rebuild: keep its result at once
            self._thread = threading.Thread(target=self._loop, args=(first_now,), name="coldopen-snapshot", daemon=True)
            self._thread.start()

    def _faiss(self) -> dict[str, FaissIndex]:
        return {m: i for m, i in self._core.indexes.items() if isinstance(i, FaissIndex)}

    def write(self) -> dict[str, Any] | None:
        """Snapshot the in-process FAISS indexes now (the snapshot thread and close() call this)."""
        local = self._faiss()
        if not local or self._key is None:
            return None
        core = self._core
        with self._write:
            with core.write_lock:  # every change up to the cursor is in the indexes; later ones may be too
                cursor = core.feed_cursor()
                core.dirty = 0
            return snapshots.write(core.settings.data_dir / "snapshots", self._key, cursor, local)

    def write_pool(self) -> float | None:
        """Snapshot the performs-well pool now (storage/pool_snapshot.py); the seconds it took, None when it is
        not snapshotted here, not loaded yet, or a re-ingest or delete is still reaching it."""
        core = self._core
        with self._write:
            with core.write_lock:  # no change commits meanwhile: the pool has applied every one up to the cursor
                if core.pool_behind:
                    return None
                snap = core.pool.snapshot(core.feed_cursor())
            return None if snap is None else core.pool.write_snapshot(snap)

    def _loop(self, first_now: bool) -> None:
        wait = 0.0 if first_now else self._core.settings.snapshot_interval_s
        while not self._stop.wait(wait):
            wait = self._core.settings.snapshot_interval_s
            if self._core.dirty or first_now:
                first_now = False
                try:
                    self.write()
                except Exception:  # e.g. the disk is full: the previous snapshot stays, starts replay more
                    log.exception("writing the index snapshot failed; retrying in %.0f s", wait)
            if self._core.pool.changes:
                try:
                    self.write_pool()
                except Exception:
                    log.exception("writing the pool snapshot failed; retrying in %.0f s", wait)

    def close(self) -> None:
        """Stop the thread and write what changed since the last snapshots."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=60)
        if self._core.dirty:
            try:
                self.write()
            except Exception:
                log.exception("writing the index snapshot at shutdown failed; the next start replays or rebuilds")
        if self._core.pool.changes:
            try:  # folded first, so the next start finds no counter changed after the snapshot
                self._core.store.engagement.fold()
                self.write_pool()
            except Exception:
                log.exception("writing the pool snapshot at shutdown failed; the next start reads more of the catalog")
