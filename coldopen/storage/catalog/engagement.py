"""Engagement in the catalog: events claimed once by id, counters summed per video (on SQLite written
behind through the engagement log, storage/engagement_log.py), the stored content priors, and the arrays
scores are built from. A batch's pool moves are published in its own transaction."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sqlalchemy import Connection, func, literal, select
from sqlalchemy.dialects import sqlite

from coldopen.domain.engagement import COUNTER_NAMES, Counters, EngagementEvent
from coldopen.storage import schema as s
from coldopen.storage.catalog.codecs import counters_of
from coldopen.storage.catalog.dialect import Dialect, driver, fetch_all
from coldopen.storage.catalog.pool import PublishedPool
from coldopen.storage.catalog.records import COUNTER_CAP, EngagementWrite, PoolMoves
from coldopen.storage.database import Database
from coldopen.storage.engagement_log import EngagementLog
from coldopen.storage.engagement_log import add as add_delta


class Engagement:
    def __init__(self, db: Database, dialect: Dialect, pool: PublishedPool):
        self.db = db
        self._d = dialect
        self._pool = pool
        # Statements run once per batch, built once (building one costs ~2 ms) and executed with many
        # parameter sets (SQLAlchemy's insertmanyvalues: still one round trip per ~1000 rows).
        self._claim_events = (
            dialect.insert(s.engagement_events).on_conflict_do_nothing(index_elements=[s.engagement_events.c.event_id])
            .returning(s.engagement_events.c.event_id)
        )
        add = dialect.insert(s.engagement)
        ex, cur = add.excluded, s.engagement.c
        self._add_counters = add.on_conflict_do_update(
            index_elements=[cur.video_id],
            set_={
                **{n: dialect.least(getattr(cur, n) + getattr(ex, n), COUNTER_CAP) for n in COUNTER_NAMES},
                "last_event_at": dialect.greatest(cur.last_event_at, ex.last_event_at),
            },
        )
        if db.is_sqlite:
            self._sql_claim = str(
                dialect.insert(s.engagement_events).on_conflict_do_nothing()
                .compile(dialect=sqlite.dialect(), column_keys=["event_id", "video_id", "at"])
            )
            self._sql_seen = "SELECT event_id FROM engagement_events WHERE event_id IN ({marks})"
            self._sql_row_ids = ("SELECT video_id, row_id, prior_rate, prior_weight FROM videos INDEXED BY videos_key "
                                 "WHERE video_id IN ({marks})")
        # SQLite: counters written behind (storage/engagement_log.py); replays what a crash left
        self.log = EngagementLog(db, COUNTER_NAMES, COUNTER_CAP) if db.is_sqlite else None

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    def record(
        self, events: list[EngagementEvent],
        then: Callable[[dict[int, Counters], dict[int, tuple[float, float]]], PoolMoves | None] | None = None,
    ) -> EngagementWrite:
        """Add events' counters in one transaction. Returns accepted, duplicates, [(event_id, reason)] and
        what the batch added to each video it changed (by row id).

        Events are deduplicated by id (also across replicas: the event row is the claim), then summed per
        video, so a batch adds to each video's counters once however many of its events it carries. On
        PostgreSQL the counter rows are updated in this transaction; on SQLite the sums are logged and
        added to the table by a background fold (storage/engagement_log.py; reads include them).

        `then(the batch's per-video sums, {row: (prior rate, prior weight)} of those with a stored content
        prior)`, called inside the transaction when any counter changed, may return the pool moves those
        sums cause; they are published in the same transaction (one commit, one fsync per batch), and
        `EngagementWrite.published` is `PublishedPool.publish_moves`'s answer for them."""
        if not events:
            return EngagementWrite(0, 0, [], {})
        rejected: list[tuple[str, str]] = []
        first: dict[str, EngagementEvent] = {}
        for e in events:
            first.setdefault(e.event_id, e)
        duplicates = len(events) - len(first)
        after_commit: list = []
        with self.db.write(after_commit) as conn:
            ids = sorted({e.video_id for e in first.values()})
            known = self._row_ids(conn, ids)
            fresh = []
            for e in first.values():
                if e.video_id not in known:
                    rejected.append((e.event_id, f"video {e.video_id!r} is not indexed; ingest it before its engagement"))
                else:
                    fresh.append(e)
            claimed = self._claim(conn, fresh)
            duplicates += len(fresh) - len(claimed)
            sums: dict[str, list] = {}
            for e in fresh:
                if e.event_id in claimed:
                    c, total = e.counters, sums.get(e.video_id)
                    values = [c.impressions, c.plays, c.completions, c.watch_time_s, c.likes, c.comments, c.shares,
                              c.follows, e.at]
                    if total is None:  # most videos have one event per batch
                        sums[e.video_id] = values
                    else:
                        sums[e.video_id] = [*(a + b for a, b in zip(total[:8], values)), max(total[8], e.at)]
            for total in sums.values():
                if max(total[:8]) > COUNTER_CAP:
                    total[:8] = [min(x, COUNTER_CAP) for x in total[:8]]
            if self.log is not None:
                self.log.append(conn, sums, after_commit)  # SQLite: folded into the table later
            else:
                self._add(conn, [(video_id, *total) for video_id, total in sorted(sums.items())])  # rows locked in one order
            added = {int(known[video_id][0]): counters_of(total) for video_id, total in sums.items()}
            priors: dict[int, tuple[float, float]] = {}
            for video_id in sums:
                row, rate, weight = known[video_id]
                if rate is not None and weight is not None:
                    priors[int(row)] = (rate, weight)
            published = None
            moves = then(added, priors) if then is not None and added else None
            if moves is not None:
                published = self._pool.publish_moves_in(conn, moves)
        return EngagementWrite(len(claimed), duplicates, rejected, added, published)

    def _row_ids(self, conn: Connection, video_ids: list[str]) -> dict[str, tuple[int, float | None, float | None]]:
        """video_id -> (row id, prior rate, prior weight) for those that exist (from the covering index `videos_key`)."""
        known: dict[str, tuple] = {}
        if self.db.is_sqlite:  # the driver: SQLAlchemy compiling 1,000 bound parameters costs ~10 ms a batch
            for i in range(0, len(video_ids), 900):
                part = video_ids[i : i + 900]
                for r in driver(conn).execute(self._sql_row_ids.format(marks=",".join("?" * len(part))), part):
                    known[r[0]] = r[1:]
            return known
        v = s.videos.c
        for i in range(0, len(video_ids), 1000):
            known.update((vid, (row, rate, weight)) for vid, row, rate, weight in conn.execute(
                select(v.video_id, v.row_id, v.prior_rate, v.prior_weight).where(v.video_id.in_(video_ids[i : i + 1000]))))
        return known

    def _claim(self, conn: Connection, events: list[EngagementEvent]) -> set[str]:
        """Insert the events' ids; returns those this transaction inserted (the others were counted before)."""
        if not self.db.is_sqlite:
            claimed: set[str] = set()
            for i in range(0, len(events), 1000):
                claimed |= set(conn.execute(
                    self._claim_events, [dict(event_id=e.event_id, video_id=e.video_id, at=e.at) for e in events[i : i + 1000]]
                ).scalars())
            return claimed
        seen: set[str] = set()
        ids = [e.event_id for e in events]
        for i in range(0, len(ids), 900):
            part = ids[i : i + 900]
            seen |= {r[0] for r in driver(conn).execute(self._sql_seen.format(marks=",".join("?" * len(part))), part)}
        new = [e for e in events if e.event_id not in seen]
        driver(conn).executemany(self._sql_claim, [(e.event_id, e.video_id, e.at) for e in new])
        return {e.event_id for e in new}

    def _add(self, conn: Connection, rows: list[tuple]) -> None:
        """PostgreSQL: add the summed counters, rows of (video_id, *COUNTER_NAMES, last_event_at), to the
        counter rows (SQLite logs them instead: storage/engagement_log.py)."""
        if rows:
            names = ("video_id", *COUNTER_NAMES, "last_event_at")
            conn.execute(self._add_counters, [dict(zip(names, row)) for row in rows])

    def stored_prior(self, row: int) -> tuple[float, float, str] | None:
        """(prior rate, prior weight, prior JSON) stored with a video, or None."""
        v = s.videos.c
        with self.db.read() as conn:
            r = conn.execute(select(v.prior_rate, v.prior_weight, v.content_prior).where(v.row_id == row)).first()
        return None if r is None or r[0] is None else (float(r[0]), float(r[1]), r[2] or "")

    def all_counters(self) -> dict[int, Counters]:
        self.fold()
        e, v = s.engagement.c, s.videos.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(v.row_id, *(getattr(e, n) for n in COUNTER_NAMES), e.last_event_at)
                .select_from(s.engagement.join(s.videos, e.video_id == v.video_id))
            ).all()
        return {int(r[0]): counters_of(r[1:]) for r in rows}

    def arrays(self, weights: dict[str, float], rows: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
        """Every engaged video's (row ids, impressions, weighted engagement, last_event_at texts, prior rates and
        weights, nan where a video has no stored content prior), for
        building scores at start without a Python object per video. `weights`: counter name -> weight.
        `rows`: only these videos' (those of them that exist and have engagement).
        The weighting runs in SQL over counters cleaned as `codecs.counters_of` cleans them (NULL/NaN -> 0,
        clamped to 0..COUNTER_CAP), so 10^6 rows come back as six columns."""
        self.fold()
        e, v = s.engagement.c, s.videos.c

        def clean(column):
            return self._d.least(self._d.greatest(func.coalesce(column, 0), 0), COUNTER_CAP)

        weighted = sum((clean(getattr(e, name)) * float(w) for name, w in weights.items()), literal(0.0))
        stmt = (select(v.row_id, clean(e.impressions), weighted, e.last_event_at, v.prior_rate, v.prior_weight)
                .select_from(s.engagement.join(s.videos, e.video_id == v.video_id))
                # SQLite's planner prefers the primary key, then reads each ~6 KB video row for its row id
                .with_hint(s.videos, "INDEXED BY videos_key", dialect_name="sqlite"))
        parts = [stmt] if rows is None else [
            stmt.where(v.row_id.in_([int(r) for r in rows[i : i + 10_000]])) for i in range(0, len(rows), 10_000)]
        with self.db.read() as conn:
            found = [r for part in parts for r in fetch_all(conn, part)]
        if not found:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0), [], np.zeros(0), np.zeros(0)
        ids, imp, w, last, prior_rate, prior_weight = zip(*found)
        impressions = np.nan_to_num(np.array(imp, dtype=np.float64), nan=0.0, posinf=COUNTER_CAP)
        weighted_sums = np.nan_to_num(np.array(w, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        return (np.array(ids, dtype=np.int64), np.floor(impressions), weighted_sums, [str(t or "") for t in last],
                np.array(prior_rate, dtype=np.float64), np.array(prior_weight, dtype=np.float64))

    def counters(self, row: int) -> Counters | None:
        """A video's counters (None: never engaged), with what the engagement log has not folded yet."""
        e, v = s.engagement.c, s.videos.c
        with self.db.read() as conn:
            r = conn.execute(
                select(v.video_id, *(getattr(e, n) for n in COUNTER_NAMES), e.last_event_at)
                .select_from(s.videos.outerjoin(s.engagement, e.video_id == v.video_id)).where(v.row_id == row)
            ).first()
        if r is None:
            return None
        table = None if r[1] is None else [*r[1:9], r[9] or ""]
        total = add_delta(table, self.log.unfolded(r[0]) if self.log is not None else None)
        return None if total is None else counters_of(total)

    def fold(self) -> int:
        """Add every logged engagement delta to the counters table now (SQLite; a no-op on PostgreSQL)."""
        return self.log.fold() if self.log is not None else 0

    def generation(self) -> int | None:
        """The newest committed fold's generation (SQLite); None on PostgreSQL, which does not fold. Every
        counter change a later fold adds carries a greater one (`changed_since`)."""
        return self.log.generation if self.log is not None else None

    def changed_since(self, generation: int) -> np.ndarray:
        """Row ids of the videos whose counters a fold after `generation` added to (SQLite), after folding
        what is logged: one scan of the counters table, returning only the changed rows."""
        if self.log is None:
            raise RuntimeError("changed_since needs the SQLite catalog's engagement log")
        self.fold()
        e, v = s.engagement.c, s.videos.c
        with self.db.read() as conn:
            rows = conn.execute(select(v.row_id).select_from(s.engagement.join(s.videos, e.video_id == v.video_id))
                                .where(e.fold_gen > generation)).scalars().all()
        return np.array(rows, np.int64)
