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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coldopen.storage.files import checksums, damaged, fsync_dir

FORMAT = 2  # 2: segment.json records each column file's checksum (storage/files.py), checked when it is opened
POSTINGS_PER_BUCKET = 8
_COLUMNS = {"hashes": np.uint32, "sounds": np.uint32, "times": np.int32}
MAX_BITS = 28  # a directory of 1-2 GB at most; beyond ~2 G postings buckets just hold more
# Heap a posting costs while a part of a merge is sorted: its 12 B of columns read from the sources, the
# 8 B of its sort index and its 12 B of sorted columns (plus slack for numpy's temporaries).
MERGE_BYTES_PER_POSTING = 40
_RANGES_BITS = 16  # hash ranges the merge's parts are made of (counted in every source before it starts)


class SegmentError(RuntimeError):
    """A segment folder that cannot be read as one (missing, partial or of another format)."""


class Segment:
    """An immutable, memory-mapped, hash-addressed set of postings."""

    def __init__(self, folder: Path, verify: bool = False):
        """`verify`: check every file against its recorded checksum first (a node does at start; a segment
        it has just written is known)."""
        self.folder = folder
        try:
            meta = json.loads((folder / "segment.json").read_text())
        except (OSError, ValueError) as e:
            raise SegmentError(f"{folder} holds no readable segment.json ({e}); write the segment again") from e
        if meta.get("format") != FORMAT:
            raise SegmentError(f"{folder} is segment format {meta.get('format')}, this server reads {FORMAT}; "
                               "write the segment again from the catalog")
        if verify and (bad := damaged(folder, meta.get("checksums", {}))):
            raise SegmentError(f"{folder} is damaged: {bad}; write the segment again from the catalog")
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
        bits = _bits(sorted_hashes.size)
        starts = (np.arange(2**bits, dtype=np.uint64) << np.uint64(32 - bits)).astype(np.uint32)  # all < 2^32
        offsets = np.append(np.searchsorted(sorted_hashes, starts), sorted_hashes.size)  # uint32 keys: no copy
        _save(work / "offsets.npy", offsets.astype(_offset_dtype(sorted_hashes.size)))
        del sorted_hashes
        return cls._commit(work, folder, bits, int(hashes.size))

    @classmethod
    def merge(cls, folder: Path, sources: Sequence[Segment], memory_bytes: int) -> Segment:
        """One segment at `folder` holding every posting of `sources`, built in heap bounded by `memory_bytes`
        whatever their total: the sources are sorted already, so the output is written hash range by hash
        range, each range's postings read from every source (a binary search in each), sorted and appended
        (a k-way merge by partitions rather than by a heap of cursors, so each step is a numpy sort). Only
        a single hash with more postings than the budget holds would exceed it."""
        if folder.exists():
            raise FileExistsError(f"{folder} exists: segments are immutable, write a new one beside it")
        work = folder.with_name(folder.name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        total = sum(len(s) for s in sources)
        bits = _bits(total)
        shift = np.uint64(32 - bits)
        files = {name: _NpyWriter(work / f"{name}.npy", dtype, total) for name, dtype in _COLUMNS.items()}
        files["offsets"] = _NpyWriter(work / "offsets.npy", np.dtype(_offset_dtype(total)), 2**bits + 1)
        written = 0
        try:
            for lo, hi, spans in _parts(sources, max(1, memory_bytes // MERGE_BYTES_PER_POSTING)):
                h = np.concatenate([_read(s.hashes, a, b) for s, (a, b) in zip(sources, spans)])
                order = np.argsort(h, kind="stable")
                h = h[order]
                files["hashes"].append(h)
                for name in ("sounds", "times"):
                    column = [_read(getattr(s, name), a, b) for s, (a, b) in zip(sources, spans)]
                    files[name].append(np.concatenate(column)[order])
                del order
                # the directory's entries for the buckets that start in [lo, hi)
                first, last = -(-lo >> int(shift)), min(2**bits, -(-hi >> int(shift)))
                starts = (np.arange(first, last, dtype=np.uint64) << shift).astype(np.uint32)  # all < 2^32
                files["offsets"].append((np.searchsorted(h, starts) + written).astype(files["offsets"].dtype))
                written += h.size
            files["offsets"].append(np.array([written], files["offsets"].dtype))
        finally:
            for f in files.values():
                f.close()
        if written != total:
            raise SegmentError(f"merge into {folder} wrote {written} postings of {total}; the sources changed")
        return cls._commit(work, folder, bits, total)

    @classmethod
    def _commit(cls, work: Path, folder: Path, bits: int, postings: int) -> Segment:
        sums = checksums([work / f"{name}.npy" for name in (*_COLUMNS, "offsets")])  # read back from the page cache
        _save_text(work / "segment.json", json.dumps({"format": FORMAT, "bits": bits, "postings": postings,
                                                      "checksums": sums}))
        fsync_dir(work)
        os.rename(work, folder)
        fsync_dir(folder.parent)
        return cls(folder)

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


def _bits(postings: int) -> int:
    return min(MAX_BITS, max(1, int(np.ceil(np.log2(max(postings / POSTINGS_PER_BUCKET, 2))))))


def _offset_dtype(postings: int) -> type:
    return np.uint32 if postings < 2**32 else np.int64


def _parts(sources: Sequence[Segment], budget: int) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """Hash ranges [lo, hi) covering the 32-bit space, with each source's positions [a, b) of them, each
    holding at most `budget` postings over all sources where one of the 2^_RANGES_BITS equal ranges does
    not hold more by itself."""
    edges = [_edges(s) for s in sources]  # per source: position of each range's first posting, and its end
    counts = np.zeros(2**_RANGES_BITS, np.int64)
    for e in edges:
        counts += np.diff(e)
    step = 1 << (32 - _RANGES_BITS)
    parts, lo, held = [], 0, 0
    for i, n in enumerate(counts.tolist()):
        if held and held + n > budget:
            parts.append((lo * step, i * step, [(int(e[lo]), int(e[i])) for e in edges]))
            lo, held = i, 0
        held += n
    parts.append((lo * step, 2**32, [(int(e[lo]), int(e[-1])) for e in edges]))
    return parts


def _edges(segment: Segment) -> np.ndarray:
    """Where each of the 2^_RANGES_BITS equal hash ranges starts in the segment, and its length: from the
    segment's own directory when it is that fine, read in pieces rather than mapped (mapped pages read
    count in the process's memory until the kernel drops them)."""
    n = 2**_RANGES_BITS
    if segment.bits < _RANGES_BITS:
        keys = (np.arange(n, dtype=np.uint64) << np.uint64(32 - _RANGES_BITS)).astype(np.uint32)
        return np.append(np.searchsorted(segment.hashes, keys), len(segment)).astype(np.int64)
    stride = 1 << (segment.bits - _RANGES_BITS)
    piece = max(stride, (1 << 22) // stride * stride)  # entries read at once (a multiple of the stride)
    out = [_read(segment.offsets, a, min(a + piece, segment.offsets.size - 1))[::stride].astype(np.int64)
           for a in range(0, segment.offsets.size - 1, piece)]
    return np.append(np.concatenate(out), len(segment))


def _read(column: np.ndarray, a: int, b: int) -> np.ndarray:
    """column[a:b] of a memory-mapped .npy column, read into the heap (see _edges)."""
    if not isinstance(column, np.memmap) or column.filename is None:
        return np.asarray(column[a:b])
    return np.fromfile(column.filename, dtype=column.dtype, count=max(0, b - a), offset=column.offset + a * column.itemsize)


class _NpyWriter:
    """A 1-D .npy file written front to back in pieces (np.save wants the whole array in memory)."""

    def __init__(self, path: Path, dtype: np.dtype | type, size: int):
        self.dtype = np.dtype(dtype)
        self.size, self.written = size, 0
        self._f = open(path, "wb")
        np.lib.format.write_array_header_1_0(
            self._f, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (size,)})

    def append(self, values: np.ndarray) -> None:
        self._f.write(np.ascontiguousarray(values, self.dtype).tobytes())
        self.written += values.size

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()


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
