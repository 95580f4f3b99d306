"""Storage: the SQL catalog (source of truth) and the vector indexes built from it.

  database.py   SQLAlchemy engines for SQLite (embedded default) and PostgreSQL; Alembic migrations
  schema.py     the catalog's tables, keyed so they can be distributed with Citus
  catalog.py    reads and writes of videos, frames, sounds and their postings' chunks, engagement
  engagement_log.py  SQLite: engagement counters written behind (a log per batch, folded in the background)
  checkpoint.py SQLite: write-ahead-log checkpoints in a background thread
  migrations/   Alembic revisions (the server applies them at start)
  vectors/      the vector-index interface and its backends

The service opens storage through `open_catalog` and `server.storage.vectors.build_index`; it never
imports a backend module directly.
"""

from __future__ import annotations

from pathlib import Path

from server.storage.catalog import EMBEDDING_COLUMNS, TEXT_COLUMNS, Catalog, Chunk, PoolMoves, Profile, SoundLink, pages
from server.storage.database import Database, sqlite_url

__all__ = ["Catalog", "Chunk", "Database", "EMBEDDING_COLUMNS", "TEXT_COLUMNS", "PoolMoves", "Profile", "SoundLink", "open_catalog", "pages", "sqlite_url"]

CATALOG_FILE = "coldopen.sqlite3"


def open_catalog(database_url: str, data_dir: Path) -> Catalog:
    """The catalog at `database_url`, or the SQLite file under `data_dir` when the URL is empty."""
    return Catalog(Database(database_url or sqlite_url(Path(data_dir) / CATALOG_FILE)))
