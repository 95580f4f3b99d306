"""Durable file writes, shared by every file the server keeps beside its catalog (snapshots, segments,
manifests): a crash leaves the old file or the new one, never part of one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def replace_durably(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves the old file or the new one, never part of one:
    written beside it, fsynced, renamed over it, and the rename made durable."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pages(read_after: Callable[[int], tuple[list[Any], int]], cursor: int) -> Iterator[tuple[list[Any], int]]:
    """A feed read page by page from `cursor` to its end: (rows, cursor after them); the last page is the
    one after which nothing more was read (possibly empty). The change feed and the sound chunks are read so."""
    while True:
        batch, after = read_after(cursor)
        yield batch, after
        if not batch or after == cursor:
            return
        cursor = after
