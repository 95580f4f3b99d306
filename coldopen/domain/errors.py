"""Domain errors. The servicer maps each class to one gRPC status code (api/interceptors.py, STATUS_FOR).

Every message says what was wrong and what the caller can do about it.
"""

from __future__ import annotations


class ColdOpenError(Exception):
    """Base class of errors that are the caller's to fix (or to retry).

    `limit` names the setting a refusal enforced (e.g. max_duration_s); metrics count refusals by it.
    """

    def __init__(self, message: str, limit: str = ""):
        super().__init__(message)
        self.limit = limit

    def __reduce__(self) -> tuple[type[ColdOpenError], tuple[str, str]]:
        # keep `limit` when raised in a decode worker process and pickled back
        return self.__class__, (str(self), self.limit)


class InvalidInput(ColdOpenError):
    """The request or the uploaded media is unusable as sent."""


class NotFound(ColdOpenError):
    """The referenced video is not in the index."""


class TooLarge(ColdOpenError):
    """The upload exceeds a configured size limit."""


class Overloaded(ColdOpenError):
    """The server is at capacity; retry with backoff."""


class NotReady(ColdOpenError):
    """Models or index are still loading."""


class StorageUnavailable(ColdOpenError):
    """The catalog database or the vector store did not answer; retrying is safe (writes are idempotent)."""


class DiskFull(ColdOpenError):
    """A write found no room on the disk that holds the data dir (or the catalog's database). Reads keep
    serving; the same write succeeds once space is freed, with no restart."""

    MESSAGE = ("no space left on the disk that holds the server's data dir (--data-dir) or catalog database: "
               "{what} was not stored and nothing was half-applied; free space there (or grow the disk) and retry, "
               "reads keep working meanwhile")

    def __init__(self, message: str = "", limit: str = "disk_full"):
        super().__init__(message or self.MESSAGE.format(what="this write"), limit)


def disk_full(e: BaseException) -> bool:
    """An error that is, or was caused by, a full disk (ENOSPC, EDQUOT, SQLite's SQLITE_FULL)."""
    import errno

    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, DiskFull):
            return True
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


class Broken(ColdOpenError):
    """A component every call needs is damaged (the catalog's file, the pool that could not load): answered as
    DATA_LOSS, and health turns NOT_SERVING until an operator repairs it and restarts."""


class StartupError(RuntimeError):
    """The server cannot start as configured (a port in use, a database it cannot reach, ...); the message
    is one line that says what is wrong and what to do. The CLI prints it and exits with status 2."""


class ModelLoadError(RuntimeError):
    """A model could not be loaded at start-up; the message says how to fix it."""


class DataDirLocked(RuntimeError):
    """Another server holds the data dir; the message names its pid."""


class DeadlineExceeded(ColdOpenError):
    """The request ran past its deadline (the caller's or the server's rpc_deadline_s)."""

    @classmethod
    def during(cls, stage: str) -> DeadlineExceeded:
        return cls(
            f"the request's deadline passed during {stage}; retry later with a longer deadline, or ask the operator "
            f"to raise rpc_deadline_s (the server is busy or the file is unusually slow to process)",
            limit="rpc_deadline_s",
        )


class Unauthenticated(ColdOpenError):
    """No credentials, or credentials the server does not know."""


class PermissionDenied(ColdOpenError):
    """Valid credentials without the role this call needs."""
