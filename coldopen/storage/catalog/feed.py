"""The change feed and outbox (table vector_changes): one row per committed write of a video's vectors.
Replicas follow it (storage/feed.py), and an external vector store is shipped from it."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, false, func, select, true, update

from coldopen.storage import schema as s
from coldopen.storage.catalog.dialect import Dialect, appended_after, pages, position
from coldopen.storage.catalog.records import Change
from coldopen.storage.database import Database


class ChangeFeed:
    def __init__(self, db: Database, dialect: Dialect):
        self.db = db
        self._d = dialect

    def log(self, conn: Connection, row: int, video_id: str, now: str, shipped: bool) -> int:
        """Log a change of a row's vectors inside the caller's transaction; its seq."""
        stmt = s.vector_changes.insert().values(txid=self._d.txid(), row_id=row, video_id=video_id, at=now, shipped=shipped)
        return int(conn.execute(stmt.returning(s.vector_changes.c.seq)).scalar_one())

    def position(self) -> int:
        """A cursor before every change not yet committed: take it before reading the vectors to index."""
        return position(self.db, s.vector_changes)

    def pages_after(self, cursor: int) -> Iterator[tuple[list[Change], int]]:
        """`changes_after` page by page from `cursor` to the end of the feed (see `pages`)."""
        return pages(self.changes_after, cursor)

    def changes_after(self, cursor: int, limit: int = 50_000) -> tuple[list[Change], int]:
        """Changes committed since `cursor`, and the cursor after them. A change may come twice (applying
        one is idempotent), none is skipped (`_appended_after`)."""
        c = s.vector_changes.c
        rows, after = appended_after(self.db, s.vector_changes, (c.seq, c.row_id, c.video_id), cursor, limit)
        return [Change(*r) for r in rows], after

    def latest_changes(self, row_ids: list[int]) -> dict[int, int]:
        """row id -> seq of its latest change."""
        c = s.vector_changes.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(c.row_id, func.max(c.seq)).where(c.row_id.in_([int(r) for r in row_ids])).group_by(c.row_id)
            ).all()
        return {int(r): int(seq) for r, seq in rows}

    def prune(self, before: str) -> int:
        """Drop shipped changes written before `before` (UTC ISO time); a replica further behind rebuilds.
        The newest change always stays: on SQLite `seq` is the rowid, handed out as max(seq) + 1, so an
        emptied feed would number its next changes from 1 again, behind every follower's cursor and every
        snapshot's (those changes would be skipped, and the snapshots refused as from the future)."""
        c = s.vector_changes.c
        newest = select(func.max(c.seq)).scalar_subquery()
        with self.db.write() as conn:
            return conn.execute(
                s.vector_changes.delete().where(c.shipped == true(), c.at < before, c.seq < newest)
            ).rowcount

    def unshipped(self, older_than: str, limit: int = 1000) -> list[Change]:
        """Changes not yet marked shipped, written before `older_than` (UTC ISO time): their writer
        crashed, or is still shipping them."""
        c = s.vector_changes.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(c.seq, c.row_id, c.video_id).where(c.shipped == false(), c.at < older_than).order_by(c.seq).limit(limit)
            ).all()
        return [Change(*r) for r in rows]

    def unshipped_count(self) -> int:
        c = s.vector_changes.c
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(s.vector_changes).where(c.shipped == false())).scalar_one())

    def mark_shipped(self, seqs: list[int]) -> None:
        if not seqs:
            return
        c = s.vector_changes.c
        with self.db.write() as conn:
            conn.execute(update(s.vector_changes).where(c.seq.in_([int(x) for x in seqs])).values(shipped=True))
