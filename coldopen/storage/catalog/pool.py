"""The published performs-well pool (table pool_members and its head in meta): what every replica serves,
changed by what moved (ranking/pool/)."""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
from sqlalchemy import Connection, select

from coldopen.domain.timing import utc_text
from coldopen.storage import schema as s
from coldopen.storage.catalog.dialect import Dialect, fetch_all
from coldopen.storage.catalog.feed import ChangeFeed
from coldopen.storage.catalog.records import PoolMoves
from coldopen.storage.database import Database

_POOL_LOCK = 0x_C01D_9001  # pg_advisory_xact_lock key for publishing the pool


class PublishedPool:
    def __init__(self, db: Database, dialect: Dialect, feed: ChangeFeed):
        self.db = db
        self._d = dialect
        self._feed = feed

    def publish(
        self, prior: float, threshold: float, members: dict[int, float], ship: bool = False
    ) -> tuple[str, list[int], list[int]]:
        """Replace the published pool. Returns (its new version, rows that joined or left, change seqs).

        `ship`: an external vector store holds pool membership as a field, so a change is logged for each
        row that joined or left (shipped by the caller, or by the outbox sweeper after a crash)."""
        version = uuid.uuid4().hex
        with self.db.write() as conn:
            if not self.db.is_sqlite:  # replicas publish one at a time
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_POOL_LOCK})")
            before = set(conn.execute(select(s.pool_members.c.row_id)).scalars())
            moved = sorted(before.symmetric_difference(int(r) for r in members))
            conn.execute(s.pool_members.delete())
            rows = [dict(row_id=int(r), score=float(x)) for r, x in members.items()]
            for i in range(0, len(rows), 10_000):
                conn.execute(s.pool_members.insert(), rows[i : i + 10_000])
            changes = self._published_head(conn, version, prior, threshold, moved, ship)
        return version, moved, changes

    def publish_moves(
        self, prior: float, threshold: float, scores: dict[int, float], left: list[int], ship: bool = False
    ) -> tuple[str, list[int], list[int]]:
        """Change the published pool by what moved: `scores` are members that joined or whose score changed,
        `left` those that left. Returns (new version, rows that joined or left, change seqs); costs what
        moved, not the pool's size."""
        with self.db.write() as conn:
            return self.publish_moves_in(conn, PoolMoves(prior, threshold, scores, list(left), ship))

    def publish_moves_in(self, conn: Connection, m: PoolMoves) -> tuple[str, list[int], list[int]]:
        version = uuid.uuid4().hex
        pm = s.pool_members.c
        touched = sorted({int(r) for r in m.scores} | {int(r) for r in m.left})
        if not self.db.is_sqlite:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_POOL_LOCK})")
        before: set[int] = set()
        for i in range(0, len(touched), 10_000):
            before |= set(conn.execute(select(pm.row_id).where(pm.row_id.in_(touched[i : i + 10_000]))).scalars())
        gone = [int(r) for r in m.left if int(r) in before]
        for i in range(0, len(gone), 10_000):
            conn.execute(s.pool_members.delete().where(pm.row_id.in_(gone[i : i + 10_000])))
        rows = [dict(row_id=int(r), score=float(x)) for r, x in m.scores.items()]
        if rows:
            stmt = self._d.insert(s.pool_members)
            conn.execute(stmt.on_conflict_do_update(index_elements=[pm.row_id], set_={"score": stmt.excluded.score}), rows)
        moved = sorted(gone + [int(r) for r in m.scores if int(r) not in before])
        changes = self._published_head(conn, version, m.prior, m.threshold, moved, m.ship)
        return version, moved, changes

    def _published_head(
        self, conn: Connection, version: str, prior: float, threshold: float, moved: list[int], ship: bool
    ) -> list[int]:
        """The pool's new head (version, prior, threshold) and, for an external vector store, a change for
        each row that joined or left; inside the publishing transaction. Returns the change seqs."""
        threshold_text = "inf" if math.isinf(threshold) else repr(float(threshold))
        self._d.set_meta(conn, "pool", json.dumps({"version": version, "prior": prior, "threshold": threshold_text}))
        changes = []
        if ship and moved:
            v = s.videos.c
            now = utc_text()
            for i in range(0, len(moved), 10_000):
                for row, video_id in conn.execute(select(v.row_id, v.video_id).where(v.row_id.in_(moved[i : i + 10_000]))):
                    changes.append(self._feed.log(conn, int(row), video_id, now, shipped=False))
        return changes

    def version(self) -> str | None:
        with self.db.read() as conn:
            value = self._d.meta(conn, "pool")
        return None if value is None else json.loads(value)["version"]

    def members(self) -> np.ndarray:
        """The published pool's member rows (no scores: 10^5 rows in a fraction of a second)."""
        with self.db.read() as conn:
            return np.array([r[0] for r in fetch_all(conn, select(s.pool_members.c.row_id))], np.int64)

    def published(self) -> tuple[str, float, float, dict[int, float]] | None:
        """(version, prior, threshold, {row: score}) as last published, read in one transaction."""
        with self.db.snapshot() as conn:
            value = self._d.meta(conn, "pool")
            if value is None:
                return None
            members = {int(r): float(x) for r, x in conn.execute(select(s.pool_members.c.row_id, s.pool_members.c.score))}
        head = json.loads(value)
        return head["version"], float(head["prior"]), float(head["threshold"]), members
