"""Replicas on a shared catalog: following other replicas' writes into this one's in-process indexes, and
shipping committed writes to a shared vector store (Milvus), with the change feed as the outbox."""

from __future__ import annotations

import logging
import time

import numpy as np

from coldopen.app.core import Core, refresh_rows
from coldopen.domain.errors import StorageUnavailable
from coldopen.storage.catalog import Change
from coldopen.storage.feed import Follower

log = logging.getLogger(__name__)


class Replication:
    def __init__(self, core: Core, cursor: int | None):
        self._core = core
        store = core.store
        # On a shared catalog other replicas write too: follow their writes into this replica's indexes. A
        # shared vector store gets each write from its writer, after the catalog commit; the feed is its
        # outbox, shipping what a crash left unshipped.
        if store.shared or core.ships:
            core.feed = Follower(
                store, store.feed.position() if cursor is None else cursor, self.apply_changes, core.settings.replica_poll_s,
                ship=self.ship if core.ships else None, after_poll=core.pool.sync,
            ).start()

    def apply_changes(self, changes: list[Change]) -> None:
        """Other replicas' writes, from the change feed, into this replica's in-process indexes: each changed
        row's vectors as the catalog holds them now (read under the write lock, so an older state never
        overwrites a newer local write). A shared store got them from their writer already."""
        core = self._core
        assert core.feed is not None
        with core.write_lock:
            rows = sorted({c.row_id for c in core.feed.foreign(changes)})
            local = core.local_indexes()
            if rows and local:
                refresh_rows(core.store, local, rows)
                core.dirty += 1
        # The pool needs nothing here: the writing replica republishes it when a member changes, and this
        # replica loads the new version after the poll.
        if rows:
            log.info("applied %d changes from other replicas (%d rows)", len(changes), len(rows))

    def ship_committed(self, rows: list[int], change: int, what: str) -> bool:
        """Ship a committed write to the shared vector store now; False (logged) when the store does not
        answer: the write stays in the change feed, and the outbox ships it once the store is back."""
        try:
            self.ship_rows(rows, [change])
            return True
        except StorageUnavailable as e:
            log.warning("%s is committed but not yet in the vector store (the outbox ships it when the store is "
                        "back): %s", what, e)
            return False

    def ship(self, changes: list[Change]) -> None:
        """The sweeper's shipping of changes a writer left unshipped."""
        self.ship_rows(sorted({c.row_id for c in changes}), [])

    def ship_rows(self, rows: list[int], changes: list[int], rounds: int = 5) -> None:
        """Write the rows' committed state to the shared vector store, then mark `changes` shipped.

        Idempotent, and safe against other shippers of the same rows: a row whose latest change moved while
        it was being shipped is shipped again, so the last state committed is also the last one shipped."""
        store = self._core.store
        shared = {m: i for m, i in self._core.indexes.items() if i.shared}
        pending = list(rows)
        for _ in range(rounds):
            before = store.feed.latest_changes(pending)  # then the state: it is at least as new as `before`
            current = store.videos.vectors(pending)
            for modality, index in shared.items():
                have = [r for r in pending if r in current and current[r].vectors[modality] is not None]
                gone = [r for r in pending if r not in have]
                if have:
                    vectors = np.stack([v for r in have if (v := current[r].vectors[modality]) is not None])
                    index.add(np.array(have, dtype=np.int64), vectors,
                              [current[r].attrs for r in have])
                if gone:
                    index.remove(np.array(gone, dtype=np.int64))
            after = store.feed.latest_changes(pending)
            pending = [r for r in pending if after.get(r) != before.get(r)]
            if not pending:
                break
        store.feed.mark_shipped(changes)

    def stats(self) -> dict[str, float] | None:
        """For metrics, on a shared catalog or vector store: seconds since the change feed was last read (how
        stale this replica's view may be), changes read, and changes not yet shipped to the vector store."""
        feed = self._core.feed
        if feed is None:
            return None
        return {
            "seconds_since_poll": time.monotonic() - feed.last_poll,
            "changes_read": feed.read,
            "unshipped": self._core.store.feed.unshipped_count() if self._core.ships else 0,
        }

    def close(self) -> None:
        if self._core.feed is not None:
            self._core.feed.close()
