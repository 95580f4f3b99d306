"""Storage: the SQL catalog (the source of truth) and everything built from it.

  database.py        SQLAlchemy engines for SQLite (embedded default) and PostgreSQL; Alembic migrations
  schema.py          the catalog's tables, keyed so they can be distributed with Citus
  catalog/           reads and writes of the catalog, one module per concern behind a facade
  engagement_log.py  SQLite: engagement counters written behind (a log per batch, folded in the background)
  checkpoint.py      SQLite: write-ahead-log checkpoints in a background thread
  feed.py            following the change feed (replicas) and shipping it (the outbox)
  snapshots.py       in-process index snapshots; pool_snapshot.py the performs-well pool's
  files.py           durable file writes (fsync, atomic replace)
  datadir.py         one server per data dir
  migrations/        Alembic revisions (the server applies them at start)
  vectors/           the vector-index interface and its backends

Nothing is imported here: importing one module of the package never pulls in the others.
"""
