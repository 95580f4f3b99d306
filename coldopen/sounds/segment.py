"""Hash-addressed postings: an immutable segment whose lookup cost does not grow with the corpus.

A segment holds postings (hash, sound, frame) as columns sorted by hash in memory-mapped ``.npy`` files,
plus a directory: for each value of the hash's top `bits` bits, the offset of its first posting (about 8
postings per bucket). A key costs one directory read and a short scan, whatever the segment's size:
1,396 keys take 0.24 ms at 6.7 M postings and 0.33 ms at 670 M, where a B-tree's seeks (SQLite's table
keyed by hash) take 1.9 -> 4.8 ms and a binary search over the same sorted column 0.6 -> 3.8 ms (our reading:
each comparison probe lands farther away in memory as the data grows; benchmarks/sound_layouts.py,
benchmarks/RESULTS.md). 12.8 B a posting (4 hash, 4 sound, 4 frame, the directory) on disk and in the page
cache, nothing on the heap.

A node's postings (postings.py) are such segments plus a tail in memory; the catalog keeps the store of
record (table sound_chunks).

Hand-written: no library on PyPI offers a memory-mapped, hash-addressed multimap whose files numpy reads
directly; FAISS's inverted lists are addressed by list number but hold codes for vector search, and the
embedded stores we have (SQLite, LMDB, RocksDB's default tables) find keys by comparison.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from coldopen.storage.files import fsync_dir

FORMAT = 1
POSTINGS_PER_BUCKET = 8
_COLUMNS = {"hashes": np.uint32, "sounds": np.uint32, "times": np.int32}
MAX_BITS = 28  # a directory of 1-2 GB at most; beyond ~2 G postings buckets just hold more


class SegmentError(RuntimeError):
    """A segment folder that cannot be read as one (missing, partial or of another format)."""


class Segment:
    """An immutable, memory-mapped, hash-addressed set of postings."""

    def __init__(self, folder: Path):
        self.folder = folder
        try:
            meta = json.loads((folder / "segment.json").read_text())
        except (OSError, ValueError) as e:
            raise SegmentError(f"{folder} holds no readable segment.json ({e}); write the segment again") from e
        if meta.get("format") != FORMAT:
            raise SegmentError(f"{folder} is segment format {meta.get('format')}, this server reads {FORMAT}; "
                               "write the segment again from the catalog")
        try:
            self.hashes, self.sounds, self.times = (np.load(folder / f"{c}.npy", mmap_mode="r") for c in _COLUMNS)
            self.offsets = np.load(folder / "offsets.npy", mmap_mode="r")
        except (OSError, ValueError) as e:
            raise SegmentError(f"{folder} is missing or has a damaged column ({e}); write the segment again") from e
        self.bits = int(meta["bits"])
        if not (self.hashes.size == self.sounds.size == self.times.size == int(meta["postings"])
                and self.offsets.size == 2**self.bits + 1):
            raise SegmentError(f"{folder}: columns disagree with segment.json; write the segment again")
        self._shift = np.uint32(32 - self.bits)

    def __len__(self) -> int:
        return int(self.hashes.size)

    @classmethod
    def write(cls, folder: Path, hashes: np.ndarray, sounds: np.ndarray, times: np.ndarray) -> Segment:
        """Write postings (any order) as a segment at `folder`, which must not exist yet. Files are written and
        fsynced in a sibling folder that is then renamed into place: a crash leaves no partial segment."""
        if folder.exists():
            raise FileExistsError(f"{folder} exists: segments are immutable, write a new one beside it")
        if not hashes.size == sounds.size == times.size:
            raise ValueError(f"postings columns differ in length: {hashes.size}, {sounds.size}, {times.size}")
        if sounds.size and (int(sounds.min()) < 0 or int(sounds.max()) > np.iinfo(np.uint32).max):
            raise ValueError(f"sound ids must lie in 0..{np.iinfo(np.uint32).max} for segment format {FORMAT}")
        work = folder.with_name(folder.name + ".partial")
        shutil.rmtree(work, ignore_errors=True)  # left by a crash during an earlier write
        work.mkdir(parents=True)
        order = np.argsort(hashes.astype(np.uint32, copy=False), kind="stable")
        for name, dtype in _COLUMNS.items():
            column = {"hashes": hashes, "sounds": sounds, "times": times}[name]
            _save(work / f"{name}.npy", np.asarray(column).astype(dtype, copy=False)[order])
        del order
        sorted_hashes = np.load(work / "hashes.npy", mmap_mode="r")
        bits = max(1, int(np.ceil(np.log2(max(sorted_hashes.size / POSTINGS_PER_BUCKET, 2)))))
        bits = min(bits, MAX_BITS)
        starts = np.arange(2**bits + 1, dtype=np.uint64) << np.uint64(32 - bits)
        offsets = np.searchsorted(sorted_hashes, starts)
        _save(work / "offsets.npy", offsets.astype(np.uint32 if sorted_hashes.size < 2**32 else np.int64))
        del sorted_hashes
        meta = {"format": FORMAT, "bits": bits, "postings": int(hashes.size)}
        _save_text(work / "segment.json", json.dumps(meta))
        fsync_dir(work)
        os.rename(work, folder)
        fsync_dir(folder.parent)
        return cls(folder)

    def merged(self, folder: Path, hashes: np.ndarray, sounds: np.ndarray, times: np.ndarray) -> Segment:
        """A new segment at `folder`: this one's postings and the given ones."""
        return Segment.write(  # another segment's columns join as they are (uint32 sounds stay uint32)
            folder,
            np.concatenate([self.hashes, np.asarray(hashes).astype(np.uint32, copy=False)]),
            np.concatenate([self.sounds, np.asarray(sounds)]),
            np.concatenate([self.times, np.asarray(times).astype(np.int32, copy=False)]),
        )

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Postings (uint32 hash, int64 sound, int64 frame) of the given (uint32) hashes, grouped by key."""
        keys = np.unique(keys.astype(np.uint32, copy=False))
        if keys.size == 0 or self.hashes.size == 0:
            return np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        bucket = (keys >> self._shift).astype(np.int64)
        lo, hi = self.offsets[bucket].astype(np.int64), self.offsets[bucket + 1].astype(np.int64)
        n = hi - lo
        # Every position of every key's bucket, in one vectorised pass (buckets hold ~8 postings).
        owner = np.repeat(np.arange(keys.size), n)
        pos = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        hit = pos[self.hashes[pos] == keys[owner]]
        return (np.asarray(self.hashes[hit]), np.asarray(self.sounds[hit]).astype(np.int64),
                np.asarray(self.times[hit]).astype(np.int64))


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def _save_text(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
