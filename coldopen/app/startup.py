"""Start-up checks that need no model, run before any model loads, so a server that cannot start says so
in seconds, in one line, instead of after a minute of loading and with a traceback.

Order (``app.serve``): the data dir's lock; the gRPC port and the metrics port, bound exclusively; the
catalog database (connected, migrated); the vector store. Each failure is a ``StartupError`` whose message
names what is wrong and what to do; the CLI exits with status 2.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from coldopen.config.settings import Settings
from coldopen.domain.errors import Broken, StartupError, StorageUnavailable
from coldopen.storage.datadir import DataDirLock

if TYPE_CHECKING:
    from coldopen.storage.catalog import Catalog


def preflight(settings: Settings) -> DataDirLock:
    """The checks that need neither models nor heavy imports, so a second server fails within a second: the
    data dir's lock (held from here on: the caller releases it) and both ports."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = DataDirLock(settings.data_dir).acquire()
    try:
        check_port_free(settings.listen, "--listen")
        if settings.metrics_listen:
            check_port_free(settings.metrics_listen, "--metrics-listen")
    except BaseException:
        lock.release()
        raise
    return lock


def check_port_free(address: str, flag: str) -> None:
    """Refuse an address whose port another process listens on (a second server there would silently share
    it, or fail later): bind it once, without SO_REUSEPORT, and let go. Port 0 (any free port) passes."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit():
        raise StartupError(f"{flag} {address!r} is not host:port, e.g. 127.0.0.1:50051")
    if int(port) == 0:
        return
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise StartupError(f"{flag} {address!r}: the host name {host!r} does not resolve; use an address of this "
                           f"machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: sockets in TIME_WAIT do not count
            try:
                s.bind(sockaddr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise StartupError(
                        f"port {port} ({flag} {address}) is already in use by another process (another ColdOpen "
                        f"server?); stop it, or pass another {flag}") from None
                if e.errno == errno.EADDRNOTAVAIL:
                    raise StartupError(f"{flag} {address}: {host} is not an address of this machine; use one that is, "
                                       f"e.g. 127.0.0.1 or 0.0.0.0") from None
                if e.errno == errno.EACCES:
                    raise StartupError(f"{flag} {address}: port {port} needs privileges this process lacks; use a port "
                                       f"above 1023") from None
                raise StartupError(f"{flag} {address} cannot be bound ({e.strerror}); pass another address") from None


def catalog(settings: Settings) -> Catalog:
    """The catalog, connected and migrated; a StartupError when it cannot be reached or read."""
    from sqlalchemy.exc import ArgumentError

    from coldopen.storage.catalog import open_catalog

    where = "the SQLite catalog under --data-dir" if not settings.database_url else _masked(settings.database_url)
    if not settings.database_url:
        _catalog_present(settings)
    try:
        store = open_catalog(settings.database_url, settings.data_dir)
    except Broken as e:
        raise StartupError(str(e)) from None
    except ArgumentError:
        raise StartupError(f"--database-url {where} is not a database URL; use postgresql://user:password@host/db "
                           f"(or leave it empty for SQLite under --data-dir)") from None
    except StorageUnavailable as e:
        cause = e.__cause__
        reason = str(getattr(cause, "orig", None) or cause or e).strip().splitlines()[0] if cause else str(e)
        raise StartupError(f"cannot reach the catalog database {where} ({reason}); check --database-url and that the "
                           f"database server is running and accepts connections from this host") from None
    try:
        problem = store.db.quick_check() if settings.catalog_check == "quick" else None
    except Broken as e:
        problem = str(e)
    if problem:
        store.close()
        problem = " ".join(problem.replace("*** in database main ***", "").split())[:200]
        raise StartupError(f"the SQLite catalog under --data-dir is damaged (quick_check: {problem}): stop, restore "
                           "coldopen.sqlite3 from a backup (or rebuild it with `sqlite3 coldopen.sqlite3 '.recover'`), "
                           "then start again")
    return store


def _catalog_present(settings: Settings) -> None:
    """The catalog is the store of record: a missing or empty one beside the indexes and sound postings built
    from one means it was lost, and starting would serve an empty service (every acknowledged video NOT_FOUND)."""
    from coldopen.storage.catalog import CATALOG_FILE

    path = settings.data_dir / CATALOG_FILE
    if (path.exists() and path.stat().st_size > 0) or settings.accept_empty_catalog:
        return
    built = [name for name, marker in (("index snapshots", "snapshots/manifest.json"),
                                       ("sound postings", "sound-postings/manifest.json"))
             if (settings.data_dir / marker).exists()]
    if built:
        state = "missing" if not path.exists() else "empty (0 bytes)"
        raise StartupError(f"the catalog {CATALOG_FILE} in --data-dir is {state}, but the data dir holds "
                           f"{' and '.join(built)} built from one: starting would answer NOT_FOUND for every stored video. "
                           f"Restore {CATALOG_FILE} from a backup; or, to start fresh on purpose, pass "
                           f"--accept-empty-catalog")


def index_type(settings: Settings) -> None:
    """An in-process index type FAISS can build, with search and build parameters it knows (checked by building one)."""
    if settings.vector_store or (
        settings.index_type == "flat" and not settings.index_search_params and not settings.index_build_params
    ):
        return
    from coldopen.storage.vectors.faiss_types import check_index_type

    problem = check_index_type(settings.index_type, settings.index_search_params,
                               build_params=settings.index_build_params)
    if problem:
        raise StartupError(problem)


def vector_store(settings: Settings) -> None:
    """Check that the vector store answers (Milvus), or that an embedded Milvus Lite file is free."""
    uri = settings.vector_store
    if not uri:
        return
    if not uri.startswith(("http://", "https://", "tcp://", "unix:")):
        _milvus_lite_free(Path(uri))
        return
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    try:
        client = MilvusClient(uri=uri, timeout=10)
        try:
            client.list_collections()
        finally:
            client.close()
    except MilvusException as e:
        raise StartupError(f"cannot reach the vector store at {_masked(uri)} ({e.message}); check --vector-store and "
                           f"that Milvus is running there") from None


def _milvus_lite_free(path: Path) -> None:
    """An embedded Milvus Lite file can be opened by one process at a time (it holds a lock on <path>/LOCK,
    milvus_lite.db._acquire_lock); a second process would fail inside pymilvus with a traceback."""
    lock = path / "LOCK"
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise StartupError(
            f"the Milvus Lite file --vector-store {path} is in use by another process; an embedded Milvus Lite serves "
            f"one process. Replicas that share vectors need a Milvus server: run `python -m milvus_lite server "
            f"--data-dir DIR --port 19530` (or Milvus itself) and give each replica --vector-store "
            f"http://HOST:19530") from None
    finally:
        os.close(fd)


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]
