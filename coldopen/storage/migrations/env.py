"""Alembic environment. The server migrates itself at start (storage/migrate.py hands over its
connection, inside its transaction and, on PostgreSQL, under an advisory lock, so replicas starting
together migrate once). From the command line, pass the database with `-x url=...`."""

from alembic import context
from sqlalchemy import create_engine

from coldopen.storage.schema import metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database to migrate: alembic -c storage/alembic.ini -x url=... <command>")
    with create_engine(url).begin() as conn:
        _run(conn)
