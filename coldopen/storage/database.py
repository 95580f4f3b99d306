"""Connections to the catalog's SQL engine: SQLite (a file under the data dir) or PostgreSQL.

SQLite has one writer: write transactions start with BEGIN IMMEDIATE on a single connection behind
a lock, and reads go through separate read-only connections in autocommit mode, so they run beside
the writer (WAL) instead of queueing behind it. PostgreSQL uses one pooled engine for both, and its
own row locks and ON CONFLICT clauses for concurrent writers (replicas included).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, event, exc
from sqlalchemy.engine import make_url

from coldopen.domain.errors import Broken, DiskFull, StorageUnavailable, disk_full
from coldopen.storage.checkpoint import Checkpointer

_MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: replicas starting together run migrations one at a time.
_MIGRATION_LOCK = 0x_C01D_0FE7


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3 (SQLAlchemy's own default driver is psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str, pool_size: int = 8):
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"database URL {make_url(url)!r} is neither sqlite:/// nor postgresql://; use one of those")
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        if self.dialect == "sqlite":
            self._writer = create_engine(self.url, pool_size=1, max_overflow=0)
            event.listen(self._writer, "connect", _sqlite_writer_connect)
            event.listen(self._writer, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            path = make_url(self.url).database
            # Last in, first out: the connection that just served a read serves the next, so a quiet service
            # keeps reading through a few connections with warm caches instead of cycling through all 32.
            self._reader = create_engine(
                f"sqlite:///file:{path}?mode=ro&uri=true", pool_size=32, max_overflow=32, pool_use_lifo=True,
                execution_options={"isolation_level": "AUTOCOMMIT"},
            )
            event.listen(self._reader, "connect", _sqlite_reader_connect)
            assert path is not None
            self._checkpointer: Checkpointer | None = Checkpointer(path)  # the writer's commits never checkpoint
        else:
            self._checkpointer = None
            self._writer = create_engine(self.url, pool_size=pool_size, max_overflow=4 * pool_size, pool_pre_ping=True)
            self._reader = self._writer

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def write(self, after_commit: list[Callable[[], None]] | None = None) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises. Callables the block
        appends to `after_commit` run once the commit succeeded, still holding SQLite's write lock (so
        in-memory state can follow the commit before the next writer sees it); never after a rollback."""
        with self._unavailable():
            if self._write_lock is None:
                with self._writer.begin() as conn:
                    yield conn
            else:
                with self._write_lock:
                    with self._writer.begin() as conn:
                        yield conn
                    for f in after_commit or ():
                        f()
                return
        for f in after_commit or ():
            f()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._unavailable(), self._reader.connect() as conn:
            yield conn

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        """The engine's connection failures as the one domain error the servicer maps to UNAVAILABLE."""
        try:
            yield
        except (exc.OperationalError, exc.InterfaceError) as e:
            if _damaged(e):
                raise Broken(self._damage_message(e)) from e
            if disk_full(e):
                raise DiskFull(DiskFull.MESSAGE.format(what="the catalog write")) from e
            where = self._where()
            raise StorageUnavailable(
                f"the catalog database {where} failed: {str(e.orig or e).strip().splitlines()[0]}; nothing was "
                f"half-written (each write is one transaction): retry with backoff, and check that the database is up"
            ) from e
        except exc.DatabaseError as e:
            if type(e) is not exc.DatabaseError and not _damaged(e):
                raise  # integrity, programming or data errors are the caller's to handle
            raise Broken(self._damage_message(e)) from e

    def _where(self) -> str:
        """The database as messages name it: never a server path."""
        return "(SQLite, under --data-dir)" if self.is_sqlite else make_url(self.url).render_as_string(hide_password=True)

    def _damage_message(self, e: Exception) -> str:
        first = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        fix = ("stop the server, restore coldopen.sqlite3 from a backup (or rebuild it with `sqlite3 coldopen.sqlite3 "
               "'.recover'`), then start again" if self.is_sqlite else "repair or restore the database, then restart")
        return f"the catalog database {self._where()} is damaged ({first}): answers from it cannot be trusted; {fix}"

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """Several reads that must see one state: a REPEATABLE READ transaction on PostgreSQL; on SQLite a
        write transaction (reads on SQLite's autocommit readers are one statement each)."""
        if self.is_sqlite:
            with self.write() as conn:
                yield conn
            return
        with self._reader.connect() as conn:
            with conn.execution_options(isolation_level="REPEATABLE READ").begin():
                yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (a no-op when it is there)."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self.write() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def quick_check(self) -> str | None:
        """SQLite's `PRAGMA quick_check` (every page and index entry read once, no cross-checks of index
        contents): None when the file is sound, else its first complaint. PostgreSQL checks its own pages."""
        if not self.is_sqlite:
            return None
        with self.read() as conn:
            first = conn.exec_driver_sql("PRAGMA quick_check(1)").scalar()
        return None if first == "ok" else str(first)

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.read() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()


_DAMAGE = ("malformed", "file is not a database", "disk image", "database corrupt", "data corrupted")


def _damaged(e: Exception) -> bool:
    """A driver error that says the database's file is damaged (SQLite: SQLITE_CORRUPT, SQLITE_NOTADB)."""
    return any(s in str(getattr(e, "orig", None) or e).lower() for s in _DAMAGE)


def _sqlite_writer_connect(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event emits BEGIN IMMEDIATE itself
    for pragma in (
        "journal_mode=WAL", "synchronous=FULL",  # an acknowledged write survives power loss
        "foreign_keys=ON", "busy_timeout=30000",
        "wal_autocheckpoint=0", "journal_size_limit=67108864",  # checkpoints: storage/checkpoint.py
        "cache_size=-131072",  # 128 MiB: a batch's random counter rows stay in SQLite's own cache
    ):
        dbapi_conn.execute(f"PRAGMA {pragma}")


def _sqlite_reader_connect(dbapi_conn, _record) -> None:
    # SQLite's default page cache (2 MB) is kept on purpose: a larger one made repeated benchmark queries
    # faster, but under other traffic a sound lookup's leaf pages are not in it anyway, and at 10^6 sounds
    # 2, 16 and 128 MB measured alike (benchmarks/RESULTS.md, sound identity at scale).
    dbapi_conn.execute("PRAGMA busy_timeout=30000")
