"""Durable file writes, shared by every file the server keeps beside its catalog (snapshots, segments,
manifests): a crash leaves the old file or the new one, never part of one; and their checksums, recorded
in the manifest that names them and checked before a file is trusted (a flipped byte, a zeroed page or a
truncation with the size kept must cost a rebuild from the catalog, never a wrong answer)."""

from __future__ import annotations

import os
import zlib
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


CHECKSUM_BLOCK = 1 << 20  # read at a time (heap it costs)


def checksum(path: Path) -> str:
    """CRC-32 of a file's bytes, as 8 hex digits (zlib's: ~1 GB/s here, and no dependency; a checksum guards
    against damage, not tampering)."""
    crc, buffer = 0, bytearray(CHECKSUM_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            crc = zlib.crc32(view[:n], crc)
    return f"{crc:08x}"


def checksums(paths: list[Path]) -> dict[str, str]:
    """name -> checksum, for a manifest."""
    return {p.name: checksum(p) for p in paths}


def damaged(directory: Path, recorded: dict[str, str]) -> str | None:
    """The first file under `directory` whose checksum differs from the one recorded (or that is missing),
    as a reason; None when all agree."""
    for name, want in recorded.items():
        path = directory / name
        if not path.exists():
            return f"{name} is missing"
        got = checksum(path)
        if got != want:
            return f"{name} has checksum {got}, {want} was recorded when it was written"
    return None


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
