"""SQLite's engagement counters, written behind: each batch appends its deltas, a fold adds them later.

At 10^6 engaged videos a batch of 1,000 events on random videos touched ~1,000 random pages of the
`engagement` table; each was written to the write-ahead log and fsynced before the reply, and that
(plus the upsert's page reads) was about half of a ~100 ms batch. Now a batch appends its per-video
deltas as one row of `engagement_log` (a few sequential pages, fsynced with the batch's own commit, so
an acknowledged batch survives a crash as before), and this module keeps them in memory until a fold
adds them to `engagement`:

- a background thread folds every `interval_s`, or sooner once `early` videos wait; a fold applies many
  batches at once in video order, so a counter page is written once per fold instead of once per
  batch (at 10^6 videos, 40 batches of random videos hit ~18k distinct pages, not 40k);
- a fold runs in transactions of at most `chunk` videos, so it holds the write lock for tens of
  milliseconds at a time, and steps aside between them as long as the last one took (at most half the
  write lock's time goes to folding while batches arrive); `meta['engagement_fold']` records how far it got (the log rows it
covers,
  and the first video not yet added), in the same transaction as each chunk, so a crash mid-fold
  neither loses nor double-counts a delta;
- opening the catalog folds what a crash left (`replay`); closing it folds everything;
- readers see the sum: `unfolded(video)` is what the table does not hold yet (`Catalog.counters` adds
  it), and bulk readers (`all_counters`, `engagement_arrays`) fold first;
- deleting a video voids its unfolded deltas, and logs that (`[video_id, null]`), so a replay does not
  add them to a video re-ingested under the same id;
- each fold (and each replay) has a generation, one more than the last, kept in `meta` and written to
  every counter row it adds to (`engagement.fold_gen`): a snapshot of the performs-well pool records the
  generation it covers, and a start re-reads only the rows a later fold changed (ranking/pool/).

PostgreSQL does not use this: replicas share the counters, so a batch adds them in its own transaction.

Hand-written: this is the write-behind part of an LSM store, which SQLite does not offer and which
would otherwise mean a second storage engine beside the catalog.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.dialects import sqlite

from coldopen.storage import schema as s
from coldopen.storage.database import Database

log = logging.getLogger(__name__)

FOLD_INTERVAL_S = 10.0
FOLD_EARLY = 100_000  # videos waiting that start a fold before the interval is up
FOLD_CHUNK = 1_000  # videos per fold transaction (~10-20 ms at 10^6): the most a batch waits behind a fold
_MARK = "engagement_fold"
_GENERATION = "engagement_fold_generation"
# a delta: [impressions, plays, completions, watch_time_s, likes, comments, shares, follows, last_event_at]
Delta = list[Any]


def add(a: Delta | None, b: Delta | None) -> Delta | None:
    """Two deltas (or counters) as one: counts add, the last event time is the later one (None: nothing)."""
    if a is None or b is None:
        return b if a is None else a
    return plus(a, b)


def plus(a: Delta | None, b: Delta) -> Delta:
    """A delta added to another (or to nothing)."""
    return b if a is None else [*(x + y for x, y in zip(a[:8], b[:8])), max(a[8], b[8])]


class EngagementLog:
    def __init__(
        self,
        db: Database,
        counter_names: tuple[str, ...],
        cap: int,
        interval_s: float = FOLD_INTERVAL_S,
        chunk: int = FOLD_CHUNK,
        early: int = FOLD_EARLY,
    ):
        self._db = db
        self._chunk = chunk
        self._early = early
        self._interval = interval_s
        self._lock = threading.Lock()  # the in-memory state below
        self._fold_lock = threading.Lock()  # one fold at a time
        self._pending: dict[str, Delta] = {}  # deltas of batches after the current fold's freeze
        self._folding: dict[str, Delta] | None = None  # the deltas a fold is adding
        self._done_until: str | None = None  # folding: the videos before this one are in the table
        self._through = 0  # folding: the last log row it covers
        self._gen = 0  # folding: its generation, written to the rows it adds to
        self.generation = 0  # the newest fold's generation (committed)
        self.folds = 0  # folds that added something
        self.last_fold = (0, 0.0)  # (videos, seconds) of the last one
        # the fold's upsert: counters add (clamped as the batch path clamps), only for videos that exist
        names = ["video_id", *counter_names, "last_event_at", "fold_gen"]
        self._sql_fold = (
            f"INSERT INTO engagement ({', '.join(names)}) SELECT {', '.join('?' * len(names))} "
            "WHERE EXISTS (SELECT 1 FROM videos WHERE video_id = ?) ON CONFLICT (video_id) DO UPDATE SET "
            + ", ".join(f"{n} = min(engagement.{n} + excluded.{n}, {cap})" for n in names[1:-2])
            + ", last_event_at = max(engagement.last_event_at, excluded.last_event_at), fold_gen = excluded.fold_gen"
        )
        self.replayed = self._replay()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="coldopen-engagement-fold", daemon=True)
        self._thread.start()

    # --- a batch's side: inside its write transaction -----------------------------------------
    def unfolded(self, video_id: str) -> Delta | None:
        """What the table does not hold yet of this video's counters (None: nothing)."""
        return self.unfolded_many([video_id]).get(video_id)

    def unfolded_many(self, video_ids) -> dict[str, Delta]:
        with self._lock:
            pending, folding, done = self._pending, self._folding, self._done_until
            out = {v: d for v in video_ids if (d := pending.get(v)) is not None}
            if folding:
                for v in video_ids:
                    if v >= done and (d := folding.get(v)) is not None:
                        out[v] = plus(out.get(v), d)
            return out

    def append(self, conn: Connection, deltas: dict[str, Delta], after_commit: list[Callable[[], None]]) -> None:
        """Log a batch's per-video deltas; they count (in memory) once its transaction commits."""
        conn.execute(insert(s.engagement_log).values(deltas=json.dumps([[v, *d] for v, d in deltas.items()])))

        def counted() -> None:
            with self._lock:
                pending = self._pending
                for v, d in deltas.items():
                    pending[v] = plus(pending.get(v), d)
                waiting = len(pending)
            if waiting >= self._early:
                self._wake.set()

        after_commit.append(counted)

    def void(self, conn: Connection, video_id: str, after_commit: list[Callable[[], None]]) -> None:
        """The video is being deleted (its counter row goes with it): drop its unfolded deltas."""
        if self.unfolded(video_id) is None:
            return
        conn.execute(insert(s.engagement_log).values(deltas=json.dumps([[video_id, None]])))

        def dropped() -> None:
            with self._lock:
                self._pending.pop(video_id, None)
                if self._folding is not None:
                    self._folding.pop(video_id, None)

        after_commit.append(dropped)

    # --- folding ----------------------------------------------------------------------------
    def waiting(self) -> int:
        """Videos whose counters the table does not hold in full yet."""
        with self._lock:
            return len(self._pending.keys() | (self._folding or {}).keys())

    def fold(self) -> int:
        """Add every logged delta to the counters table (first finishing a fold a failure interrupted);
        returns how many videos' counters it added to."""
        with self._fold_lock:
            t = time.perf_counter()
            n = self._finish() if self._folding is not None else 0
            if self._freeze():
                n += self._finish()
            if n:
                self.folds += 1
                self.last_fold = (n, time.perf_counter() - t)
                log.info("engagement: folded %d videos' counters in %.2f s", n, self.last_fold[1])
            return n

    def _freeze(self) -> bool:
        """Take the pending deltas for a fold, with the last log row they cover (False: nothing logged)."""
        after: list[Callable[[], None]] = []
        with self._db.write(after) as conn:  # the write lock: no batch commits between the read and the swap
            through = conn.execute(select(func.max(s.engagement_log.c.seq))).scalar()
            if through is None:
                return False
            gen = _next_generation(conn)

            def freeze() -> None:
                with self._lock:
                    self._folding, self._pending = self._pending, {}
                    self._done_until, self._through, self._gen = "", int(through), gen
                    self.generation = gen

            after.append(freeze)
        return True

    def _finish(self) -> int:
        """Add the frozen deltas from `_done_until` on, `chunk` videos per transaction. A failure leaves the
        fold where its last commit got (in the mark and in memory), for the next fold to finish."""
        with self._lock:
            folding, done_until = self._folding or {}, self._done_until or ""
            keys = sorted(v for v in folding if v >= done_until)
        took = 0.0
        for i in range(0, max(len(keys), 1), self._chunk):
            if i:  # the lock is not fair: step aside as long as the last chunk took, so batches waiting get it
                time.sleep(min(took, 0.1))
            started = time.perf_counter()
            nxt = keys[i + self._chunk] if i + self._chunk < len(keys) else None
            after: list[Callable[[], None]] = []
            with self._db.write(after) as conn:
                with self._lock:  # a delete since the freeze popped its video
                    folding = self._folding or {}
                    rows = [(v, *d, self._gen, v) for v in keys[i : i + self._chunk] if (d := folding.get(v)) is not None]
                self._apply(conn, rows)
                if nxt is None:
                    conn.execute(delete(s.engagement_log).where(s.engagement_log.c.seq <= self._through))
                    conn.execute(delete(s.meta).where(s.meta.c.key == _MARK))
                else:
                    _set_meta(conn, _MARK, json.dumps({"through": self._through, "done_until": nxt}))

                def advanced(nxt=nxt) -> None:
                    with self._lock:
                        if nxt is None:
                            self._folding, self._done_until = None, None
                        else:
                            self._done_until = nxt

                after.append(advanced)
            took = time.perf_counter() - started
        return len(keys)

    def _replay(self) -> int:
        """At open: fold what the last process logged and did not fold (it crashed, or was killed)."""
        with self._db.write() as conn:
            self.generation = int(_meta(conn, _GENERATION) or 0)
            mark = _meta(conn, _MARK)
            through, done_until = -1, ""
            if mark:
                m = json.loads(mark)
                through, done_until = int(m["through"]), str(m["done_until"])
            sums: dict[str, Delta] = {}
            for seq, text in conn.execute(
                select(s.engagement_log.c.seq, s.engagement_log.c.deltas).order_by(s.engagement_log.c.seq)
            ):
                for v, *d in json.loads(text):
                    if d[0] is None:  # deleted: its earlier deltas are void
                        sums.pop(v, None)
                    elif not (seq <= through and v < done_until):  # not added by the interrupted fold
                        sums[v] = plus(sums.get(v), d)
            if sums:
                gen = self.generation = _next_generation(conn)
                self._apply(conn, [(v, *d, gen, v) for v, d in sorted(sums.items())])
            conn.execute(delete(s.engagement_log))
            conn.execute(delete(s.meta).where(s.meta.c.key == _MARK))
        if sums:
            log.info("engagement: added %d videos' counters that the last run logged and had not folded", len(sums))
        return len(sums)

    def _apply(self, conn: Connection, rows: list[tuple]) -> None:
        """Add (video_id, *counters, last_event_at, fold generation, video_id) rows to the counters table."""
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.executemany(self._sql_fold, rows)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.fold()
            except Exception as e:  # the database is unavailable: the log keeps the deltas; try again later
                log.warning("engagement fold failed: %s; the deltas stay logged and the next fold retries", e)

    def close(self) -> None:
        """Stop the thread and fold everything (the next open then has nothing to replay)."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        try:
            self.fold()
        except Exception as e:
            log.warning("engagement fold at close failed: %s; the next start adds the logged deltas", e)


def _next_generation(conn: Connection) -> int:
    """One more than the last fold's generation, stored in the caller's transaction."""
    gen = int(_meta(conn, _GENERATION) or 0) + 1
    _set_meta(conn, _GENERATION, str(gen))
    return gen


def _meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(s.meta.c.value).where(s.meta.c.key == key)).scalar()


def _set_meta(conn: Connection, key: str, value: str) -> None:
    stmt = sqlite.insert(s.meta).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=[s.meta.c.key], set_={"value": stmt.excluded.value}))
