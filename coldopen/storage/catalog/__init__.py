"""The catalog: the source of truth every vector index, segment and snapshot is rebuilt from. SQL through
SQLAlchemy Core, the same code on SQLite and PostgreSQL (storage/schema.py).

`Catalog` is a thin facade: what the catalog is (its id, the embedding space, the dialect) and one part
per concern, each in its own module:

  videos      a video and everything extracted from it, written in one transaction; every read of them
  feed        the change feed and outbox of the videos' vectors
  engagement  engagement events and counters, stored content priors
  pool        the published performs-well pool
  sounds      sounds, their postings' chunks, every video's uses of sounds
  bulk        many new videos, counters or sounds in a few transactions (benchmarks, imports)
  dialect.py  what differs between SQLite and PostgreSQL; codecs.py how values are stored in columns
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from coldopen.storage.catalog.bulk import BulkLoader
from coldopen.storage.catalog.dialect import Dialect, pages
from coldopen.storage.catalog.engagement import Engagement
from coldopen.storage.catalog.feed import ChangeFeed
from coldopen.storage.catalog.pool import PublishedPool
from coldopen.storage.catalog.records import (
    COUNTER_CAP,
    EMBEDDING_COLUMNS,
    TEXT_COLUMNS,
    Change,
    EngagementWrite,
    PoolMoves,
    Profile,
    RowVectors,
    Written,
)
from coldopen.storage.catalog.sounds import Sounds
from coldopen.storage.catalog.videos import Videos
from coldopen.storage.database import Database, sqlite_url

__all__ = [
    "CATALOG_FILE", "COUNTER_CAP", "EMBEDDING_COLUMNS", "TEXT_COLUMNS", "Catalog", "Change", "EngagementWrite",
    "PoolMoves", "Profile", "RowVectors", "Written", "open_catalog", "pages",
]

CATALOG_FILE = "coldopen.sqlite3"


def open_catalog(database_url: str, data_dir: Path) -> Catalog:
    """The catalog at `database_url`, or the SQLite file under `data_dir` when the URL is empty."""
    return Catalog(Database(database_url or sqlite_url(Path(data_dir) / CATALOG_FILE)))


class Catalog:
    def __init__(self, db: Database):
        self.db = db
        db.migrate()
        self._d = Dialect(db)
        self.feed = ChangeFeed(db, self._d)
        self.sounds = Sounds(db, self._d)
        self.pool = PublishedPool(db, self._d, self.feed)
        self.engagement = Engagement(db, self._d, self.pool)
        self.videos = Videos(db, self._d, self.feed, self.sounds, self.engagement.log)
        self.bulk = BulkLoader(db, self._d)
        self.stale_fingerprints = self.videos.retire_old_fingerprints()

    @property
    def shared(self) -> bool:
        """Other replicas may write to this catalog (PostgreSQL); a SQLite file has one server."""
        return not self.db.is_sqlite

    @property
    def description(self) -> str:
        url = self.db.url.split("@")[-1] if not self.db.is_sqlite else self.db.url
        return f"{self.db.dialect} ({url})"

    def close(self) -> None:
        self.engagement.close()
        self.db.dispose()

    def catalog_id(self) -> str:
        """A random id given to this catalog the first time it is asked for, so a snapshot of in-process
        indexes is never loaded against another database than the one it was taken from."""
        with self.db.write() as conn:
            value = self._d.meta(conn, "catalog_id")
            if value is None:
                stmt = self._d.insert_meta_if_absent("catalog_id", uuid.uuid4().hex)
                conn.execute(stmt)
                value = self._d.meta(conn, "catalog_id")
        assert value is not None
        return value

    def embedding_space(self) -> tuple[str, int] | None:
        """(model name, dim) the stored embeddings were made with, or None for an empty catalog."""
        with self.db.read() as conn:
            value = self._d.meta(conn, "embedding_space")
        if value is None:
            return None
        space = json.loads(value)
        return space["model"], int(space["dim"])

    def set_embedding_space(self, model: str, dim: int) -> None:
        with self.db.write() as conn:
            self._d.set_meta(conn, "embedding_space", json.dumps({"model": model, "dim": dim}))
