"""A real PostgreSQL server for the tests: initdb in a temp dir, loopback only, stopped at the end.

initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` user (Debian's
`postgresql` package creates it; .ci/run installs the package where missing).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import sqlalchemy


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def available() -> str | None:
    """None when a server can be started here, else why not."""
    if _binary("initdb") is None or _binary("pg_ctl") is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user to run initdb as"
    return None


class PostgresServer:
    def __init__(self, root: Path):
        self.root = root
        self.user = "coldopen"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        root.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(root, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data = root / "data"

    def start(self) -> PostgresServer:
        """Create the cluster (the first time) and start the server."""
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                [*self._as, _binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user, "-E", "UTF8",
                 "--no-sync", "--no-instructions"],
                check=True, capture_output=True,
            )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=300"
        subprocess.run(
            [*self._as, _binary("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"],
            check=True, capture_output=True,
        )
        return self

    def stop(self) -> None:
        subprocess.run([*self._as, _binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database on this server; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        engine = sqlalchemy.create_engine(self.url().replace("postgresql://", "postgresql+psycopg://"),
                                          isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        engine.dispose()
        return self.url(name)
