"""SQLite WAL checkpoints off the commit path, in a background thread.

By default SQLite checkpoints inside whichever commit pushes the write-ahead log past 1,000 pages. At
10^6 videos an engagement batch of 1,000 events dirtied about 2,000 pages (random counter rows and
event ids; now the engagement log's folds write the counter pages, storage/engagement_log.py),
so every batch's commit also copied the log into the database file and fsynced that too: ~30 ms of a
~100 ms batch, and a few hundred ms now and then. The writer connection turns automatic
checkpoints off (`wal_autocheckpoint=0`) and this thread runs a PASSIVE checkpoint every second, which
waits for no writer or reader (https://www.sqlite.org/wal.html#application_initiated_checkpoints).
Durability is unchanged: a commit is still fsynced in the log (synchronous=FULL) before it returns, and
a log left by a crash is replayed by the next open.

Should readers keep a checkpoint from ever finishing, the log grows; past `truncate_over_bytes` the
thread runs a TRUNCATE checkpoint, which waits (up to the busy timeout) for them. At close a last
TRUNCATE checkpoint leaves the file compact.

Hand-written because no library schedules SQLite checkpoints; it is a loop around one PRAGMA.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, path: str, interval_s: float = 1.0, truncate_over_bytes: int = 1 << 30):
        self._path = path
        self._interval = interval_s
        self._truncate_over = truncate_over_bytes
        self._stop = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self.checkpoints = 0
        self._thread = threading.Thread(target=self._run, name="coldopen-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None:
            try:  # mode=rw: never create the file (the writer does, with the right pragmas)
                self._conn = sqlite3.connect(f"file:{self._path}?mode=rw", uri=True, isolation_level=None,
                                             check_same_thread=False)
                self._conn.execute("PRAGMA busy_timeout=5000")
            except sqlite3.Error:
                return None
        return self._conn

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(self._path + "-wal")
        except OSError:
            return 0

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        conn = self._connect()
        if conn is None:
            return
        try:
            conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            self.checkpoints += 1
        except sqlite3.Error as e:  # busy or an I/O error: the next tick tries again; commits are unaffected
            log.warning("SQLite checkpoint (%s) of %s failed: %s; retrying in %.0f s", mode, self._path, e, self._interval)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.checkpoint("TRUNCATE" if self._wal_bytes() > self._truncate_over else "PASSIVE")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.checkpoint("TRUNCATE")
        if self._conn is not None:
            self._conn.close()
            self._conn = None
