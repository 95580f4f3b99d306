"""What differs between SQLite and PostgreSQL, in one place: upserts, two-argument min/max, id spaces,
transaction ids, the meta table, gap-free reads of the append-only tables, and the driver fast path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, Connection, Text, exc, func, select
from sqlalchemy.dialects import postgresql, sqlite

from coldopen.storage import schema as s
from coldopen.storage.database import Database
from coldopen.storage.files import pages

__all__ = ["PG_XMIN", "Dialect", "appended_after", "driver", "fetch_all", "fetch_sql", "inline", "pages", "position"]

PG_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


class Dialect:
    def __init__(self, db: Database):
        self.sqlite = db.is_sqlite
        self.insert = sqlite.insert if db.is_sqlite else postgresql.insert
        self.least = func.min if db.is_sqlite else func.least        # two-argument scalar forms
        self.greatest = func.max if db.is_sqlite else func.greatest

    def txid(self) -> Any:
        """What a row written now stores as its transaction id (0 on SQLite, which has one writer)."""
        return 0 if self.sqlite else select(func.pg_current_xact_id().cast(Text).cast(BigInteger)).scalar_subquery()

    def meta(self, conn: Connection, key: str) -> str | None:
        return conn.execute(select(s.meta.c.value).where(s.meta.c.key == key)).scalar()

    def set_meta(self, conn: Connection, key: str, value: str) -> None:
        stmt = self.insert(s.meta).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=[s.meta.c.key], set_={"value": stmt.excluded.value}))

    def insert_meta_if_absent(self, key: str, value: str) -> Any:
        return self.insert(s.meta).values(key=key, value=value).on_conflict_do_nothing()

    def next_id(self, conn: Connection, name: str) -> int:
        """The next value of an id space that never hands a value out twice (rolled-back ones are skipped)."""
        if not self.sqlite:
            sequence = {"video_rows": s.VIDEO_ROWS, "sound_ids": s.SOUND_IDS}[name]
            return int(conn.execute(select(sequence.next_value())).scalar_one())
        stmt = self.insert(s.id_counters).values(name=name, last=1)
        stmt = stmt.on_conflict_do_update(index_elements=[s.id_counters.c.name], set_={"last": s.id_counters.c.last + 1})
        return int(conn.execute(stmt.returning(s.id_counters.c.last)).scalar_one())

    def reserve_ids(self, conn: Connection, name: str, n: int) -> list[int]:
        """`n` values of an id space at once (a bulk load's `next_id`)."""
        if n <= 0:
            return []
        if not self.sqlite:
            sequence = {"video_rows": s.VIDEO_ROWS, "sound_ids": s.SOUND_IDS}[name]
            values = select(sequence.next_value()).select_from(func.generate_series(1, n))
            return [int(v) for v in conn.execute(values).scalars()]
        stmt = self.insert(s.id_counters).values(name=name, last=n)
        stmt = stmt.on_conflict_do_update(index_elements=[s.id_counters.c.name], set_={"last": s.id_counters.c.last + n})
        last = int(conn.execute(stmt.returning(s.id_counters.c.last)).scalar_one())
        return list(range(last - n + 1, last + 1))

    def current_txid(self, conn: Connection) -> int:
        """The id `txid()` stores for rows this transaction writes, as a value."""
        return 0 if self.sqlite else int(conn.execute(select(self.txid())).scalar_one())

    def copy_rows(self, conn: Connection, table: Any, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
        """Plain inserts of many rows inside the caller's transaction, through the driver: PostgreSQL's COPY,
        SQLite's executemany. By hand because SQLAlchemy's executemany builds a dict and a bound row per
        row (10^5 videos on SQLite, 2 cores: 13.8 s through it, 5.8 s here with their feed rows) and has no COPY."""
        names = ", ".join(columns)
        dbapi = conn.dialect.loaded_dbapi
        sql = (f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})" if self.sqlite
               else f"COPY {table.name} ({names}) FROM STDIN")
        try:
            cursor = driver(conn).cursor()
            try:
                if self.sqlite:
                    cursor.executemany(sql, rows)
                else:
                    with cursor.copy(sql) as copy:
                        for row in rows:
                            copy.write_row(row)
            finally:
                cursor.close()
        except dbapi.Error as e:  # as SQLAlchemy's own errors, so the callers' and Database's handlers apply
            raise exc.DBAPIError.instance(sql, None, e, dbapi.Error, hide_parameters=True, dialect=conn.dialect) from e


def position(db: Database, table: Any) -> int:
    """A cursor of `appended_after` before every row of an append-only table not yet committed: take it
    before reading what the rows describe."""
    with db.read() as conn:
        if db.is_sqlite:
            return int(conn.execute(select(func.coalesce(func.max(table.c.seq), 0))).scalar_one())
        return int(conn.exec_driver_sql(PG_XMIN).scalar_one())


def appended_after(db: Database, table: Any, columns: tuple[Any, ...], cursor: int, limit: int) -> tuple[list[tuple], int]:
    """Rows of an append-only table with `seq` and `txid` columns (the change feed, the sound chunks)
    committed since `cursor`, and the cursor after them; a row may come twice, none is skipped.

    SQLite has one writer, so its rows commit in seq order. On PostgreSQL sequence values commit out
    of order, so the cursor is a transaction id instead: every transaction below the snapshot's xmin
    has ended, and every later one has a larger id. A page that ends inside a transaction resumes at
    it; one transaction that fills a whole page is read whole, and the cursor moves past it."""
    c = table.c
    with db.read() as conn:
        if db.is_sqlite:
            rows = conn.execute(select(*columns).where(c.seq > cursor).order_by(c.seq).limit(limit)).all()
            return [tuple(r) for r in rows], (int(rows[-1][0]) if rows else cursor)
        xmin = int(conn.exec_driver_sql(PG_XMIN).scalar_one())
        rows = conn.execute(
            select(*columns, c.txid).where(c.txid >= cursor, c.txid < xmin).order_by(c.txid, c.seq).limit(limit)
        ).all()
        if len(rows) == limit and int(rows[-1][-1]) == cursor:
            rows = conn.execute(select(*columns).where(c.txid == cursor).order_by(c.seq)).all()
            return [tuple(r) for r in rows], cursor + 1
    if len(rows) == limit:
        return [tuple(r[:-1]) for r in rows], int(rows[-1][-1])
    return [tuple(r[:-1]) for r in rows], xmin


def driver(conn: Connection):
    """The DB-API connection under a SQLAlchemy connection, inside the same transaction."""
    return conn.connection.driver_connection


def fetch_all(conn: Connection, stmt) -> list[tuple]:
    """A statement's rows as the driver's own tuples: SQLAlchemy's row objects cost ~1 s per 10^6 rows."""
    return fetch_sql(conn, *inline(stmt, conn.dialect))


def fetch_sql(conn: Connection, sql: str, params) -> list[tuple]:
    """Rows of SQL text (in the driver's parameter style) as the driver's own tuples."""
    cursor = driver(conn).cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        cursor.close()


def inline(stmt, dialect) -> tuple:
    """(SQL text, parameters) for a driver cursor, in the driver's own parameter style."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})  # IN lists expanded
    params = compiled.construct_params()
    if compiled.positional:
        return str(compiled), tuple(params[name] for name in compiled.positiontup)
    return str(compiled), params
