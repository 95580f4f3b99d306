"""Following the catalog's change feed (table vector_changes), so replicas see each other's writes.

Every write of a video's vectors logs a change in its own transaction. A replica whose indexes live in
its own process (FAISS) polls the feed and re-reads the changed rows from the catalog, so an ingest
acknowledged by one replica is searchable on the others within about one poll interval. Applying a
change is idempotent (the row's current state wins), so a change read twice does no harm.

For a vector store shared by all replicas (Milvus) the feed is an outbox instead: the writer ships each
change right after its commit and marks it shipped; a change a crashed writer left unshipped is shipped
by any replica's sweeper once it is older than `grace_s`.

Hand-written because the two things a library would give (logical replication, a message broker) are
extra servers to run; the feed is one table in the catalog everybody already shares.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from coldopen.storage.retention import KEEP_CHANGES_S

if TYPE_CHECKING:
    from coldopen.storage.catalog import Catalog, Change
from coldopen.domain.timing import utc_text

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 600.0


class Follower:
    def __init__(
        self,
        catalog: Catalog,
        cursor: int,
        apply: Callable[[list[Change]], None],
        interval_s: float,
        ship: Callable[[list[Change]], None] | None = None,
        grace_s: float = 10.0,
        after_poll: Callable[[], object] | None = None,
    ):
        self._catalog = catalog
        self.cursor = cursor
        self._apply = apply
        self._ship = ship
        self._after_poll = after_poll
        self._interval = interval_s
        self._grace = grace_s
        self._own: set[int] = set()
        self._own_lock = threading.Lock()
        self._stop = threading.Event()
        self.read = 0               # changes read from the feed (this replica's own included)
        self.last_poll = time.monotonic()  # of the last successful poll
        self._thread = threading.Thread(target=self._run, name="coldopen-feed", daemon=True)

    def start(self) -> Follower:
        self._thread.start()
        return self

    def own(self, seq: int) -> None:
        """A change this replica wrote and already applied to its own indexes."""
        with self._own_lock:
            self._own.add(seq)

    def foreign(self, changes: list[Change]) -> list[Change]:
        """The changes not written here (forgetting the own ones as they pass)."""
        with self._own_lock:
            out = [c for c in changes if c.seq not in self._own]
            self._own.difference_update(c.seq for c in changes)
        return out

    def poll(self) -> int:
        """Read the feed once and apply what other replicas wrote; returns how many changes were applied."""
        changes, cursor = self._catalog.feed.changes_after(self.cursor)
        if changes:
            self._apply(changes)
            self.read += len(changes)
        if self._after_poll is not None:
            self._after_poll()
        self.cursor = cursor
        self.last_poll = time.monotonic()
        return len(changes)

    def sweep(self) -> int:
        """Ship changes a crashed writer left unshipped; returns how many."""
        if self._ship is None:
            return 0
        older = utc_text(datetime.now(timezone.utc) - timedelta(seconds=self._grace))
        stale = self._catalog.feed.unshipped(older)
        if stale:
            log.warning("shipping %d vector changes left unshipped (a writer crashed or stalled)", len(stale))
            self._ship(stale)
            self._catalog.feed.mark_shipped([c.seq for c in stale])
        return len(stale)

    def prune(self) -> int:
        """Drop shipped changes older than KEEP_CHANGES_S (a replica that far behind rebuilds at start)."""
        return self._catalog.feed.prune(utc_text(datetime.now(timezone.utc) - timedelta(seconds=KEEP_CHANGES_S)))

    def _run(self) -> None:
        next_sweep, next_prune = 0.0, time.monotonic() + PRUNE_EVERY_S
        while not self._stop.wait(self._interval):
            try:
                self.poll()
                if time.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = time.monotonic() + self._grace / 2
                if time.monotonic() >= next_prune:
                    self.prune()
                    next_prune = time.monotonic() + PRUNE_EVERY_S
            except Exception:  # the catalog is unreachable for a moment: keep the cursor, try again
                log.exception("reading the change feed failed; retrying in %.1f s", self._interval)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
