"""One server per data dir: an exclusive lock on ``<data-dir>/coldopen.lock``, held while the server runs.

Two servers on one data dir (a rolling deploy that starts the new process before the old one is gone)
would delete each other's in-flight uploads and diverge in memory, so the second refuses to start and
names the holder's pid. The lock is an ``fcntl.flock`` on an open file: the kernel drops it when the
holder exits, however it exits (SIGKILL included), so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from coldopen.domain.errors import DataDirLocked

LOCK_NAME = "coldopen.lock"


class DataDirLock:
    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DataDirLocked(
                f"data dir {self.path.parent} is in use by another ColdOpen server (pid {holder}); stop that server "
                f"first, or give this one its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
