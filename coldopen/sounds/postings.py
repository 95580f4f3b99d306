"""A node's hash-addressed view of the sound postings: immutable segments on disk plus a tail in memory.

The catalog keeps postings as chunks (one per link write: a sound, its new hashes and frames), numbered
in commit order. This follows them, as replicas follow the change feed, and answers lookups at a cost set
by the query: each segment is hash-addressed (sounds/segment.py) and the tail is a dict.

* `lookup` first reads the chunks committed since the last read (`read_after(cursor)`; on PostgreSQL a
  chunk may come twice, so chunks are kept once by their `seq`), then asks every segment and the tail.
* Once the tail holds `tail_max` postings, a background thread writes it as a new segment. Segments are
  merged by size tiers (a segment's tier: how many times `fanout` its postings are the tail's): once a
  tier holds `fanout` segments they become one of the next tier, so a posting is rewritten at most
  ~log_fanout(postings / tail_max) times, never once per merge as when the largest segment absorbed each
  new one. Beyond `max_segments` in all, the smallest are merged too. Either way it then replaces
  `manifest.json` (written aside, fsynced, renamed): the segments in force and the cursor they cover. A
  crash leaves the previous manifest in force; segment folders it does not list are removed at the next
  start.
* A start maps the manifest's segments and replays only the chunks after its cursor. Without one (a new
  node; or a manifest that cannot be read, names a damaged segment or another catalog: set aside and
  logged) it reads every chunk and writes them as one segment (or keeps them in the tail, if fewer).
* Memory: a new segment is written from sorted runs of at most `memory_bytes` worth of postings, and
  merges stream hash range by hash range (segment.py, Segment.merge), so a node's first start and every
  merge stay within `memory_bytes` of heap whatever the corpus size (the segments themselves are
  memory-mapped files: the page cache holds what it can).

The service reads sound postings only through this (sounds/identity.py); the catalog's
`sound_chunks` table is their store of record (`Catalog.sounds.chunks_after` is `read_after`).
Hand-written for the reason segment.py gives.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from coldopen.domain.sounds import Chunk
from coldopen.sounds.segment import Segment, SegmentError
from coldopen.storage.files import pages, replace_durably

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
TAIL_MAX = 256_000   # postings held in memory before they become a segment (~60 MB of dict)
MAX_SEGMENTS = 16    # a lookup asks each (~0.1-0.3 ms apiece); beyond, the smallest are merged
FANOUT = 4           # segments of one size tier merged into one of the next
MEMORY_BYTES = 1 << 30  # heap a segment write or merge may use (settings: sound_build_memory_mb)
RUN_BYTES_PER_POSTING = 40  # a run's chunks (12 B), its columns (12 B), their sort (8 B + 4 B) and slack

_EMPTY = (np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.int64))


# cursor -> (chunks committed since, the cursor after them). A read may return chunks of the read just before
# it again (as the catalog's change feed does on PostgreSQL, where a page can end inside a transaction).
ReadAfter = Callable[[int], tuple[list[Chunk], int]]


class SoundPostings:
    def __init__(self, folder: Path, read_after: ReadAfter, key: str = "", tail_max: int = TAIL_MAX,
                 max_segments: int = MAX_SEGMENTS, compact_every_s: float = 1.0, memory_bytes: int = MEMORY_BYTES,
                 fanout: int = FANOUT):
        """`key` names the catalog the chunks come from: segments written for another are not used."""
        self._memory = memory_bytes
        self._fanout = max(2, fanout)
        self._folder = folder
        self._key = key
        self._read_after = read_after
        self._tail_max = tail_max
        self._max_segments = max_segments
        self._lock = threading.Lock()          # guards the state below (short sections only)
        self._reading = threading.Lock()       # one catalog read at a time
        self._compacting = threading.Lock()    # one segment write at a time
        self._segments: list[Segment] = []
        self._cursor = 0
        self._last_read: set[int] = set()      # seqs of the latest read: the next one may return them again
        self._tail: dict[int, list[tuple[int, int]]] = {}
        self._tail_chunks: dict[int, Chunk] = {}
        self._tail_postings = 0
        self._covered: tuple[int, set[int]] = (0, set())  # (cursor, last_read) of the manifest in force
        folder.mkdir(parents=True, exist_ok=True)
        if self._load():
            self.refresh()
        else:
            self._bootstrap()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(compact_every_s,), name="sound-postings", daemon=True)
        self._thread.start()

    # --- reading ------------------------------------------------------------
    def refresh(self) -> None:
        """Take in the chunks committed since the last read."""
        with self._reading:  # only this (and the start) moves the cursor
            for chunks, after in pages(self._read_after, self._cursor):
                with self._lock:
                    for chunk in chunks:
                        if chunk.seq in self._last_read or chunk.seq in self._tail_chunks:
                            continue  # read before (on PostgreSQL a read may repeat the previous one's last)
                        self._take(chunk)
                    if chunks or after != self._cursor:
                        self._last_read = {c.seq for c in chunks}
                    self._cursor = after

    def lookup(self, keys: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Postings (uint32 hash, sound, frame) of the given hashes, after taking in new chunks. Hashes with
        `cap` or more postings are left out (a hash that many sounds share identifies none of them) and are
        returned as the fourth value."""
        self.refresh()
        keys = np.unique(keys.astype(np.uint32, copy=False))
        with self._lock:
            segments = list(self._segments)
            hits = [(k, list(self._tail[k])) for k in keys.tolist() if k in self._tail]  # copies: refresh appends
        parts = [segment.lookup(keys) for segment in segments]
        if hits:
            parts.append((
                np.array([k for k, posts in hits for _ in posts], np.uint32),
                np.array([p[0] for _, posts in hits for p in posts], np.int64),
                np.array([p[1] for _, posts in hits for p in posts], np.int64),
            ))
        h, s, t = (np.concatenate([p[i] for p in parts]) if parts else _EMPTY[i] for i in range(3))
        values, counts = np.unique(h, return_counts=True)
        common = values[counts >= cap]
        if common.size:
            keep = ~np.isin(h, common)
            h, s, t = h[keep], s[keep], t[keep]
        return h, s, t, common

    @property
    def cursor(self) -> int:
        """Every chunk committed before this cursor (in `read_after`'s terms) has been taken in."""
        with self._lock:
            return self._cursor

    @property
    def segments(self) -> int:
        with self._lock:
            return len(self._segments)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._segments) + self._tail_postings

    # --- compaction ---------------------------------------------------------
    def compact(self) -> bool:
        """Write the tail as a segment once it is full, or merge the two smallest segments while there are
        too many. Returns whether it changed anything (the background thread calls this; tests may too)."""
        with self._compacting:
            with self._lock:
                full = self._tail_postings >= self._tail_max
                chunks = list(self._tail_chunks.values()) if full else []
                cursor, last_read = self._cursor, set(self._last_read)
                segments = list(self._segments)
            if full:
                new = Segment.write(self._new_folder(), *_columns(chunks))
                with self._lock:
                    self._segments.append(new)
                    for c in chunks:
                        del self._tail_chunks[c.seq]
                    self._rebuild_tail()
                    self._covered = (cursor, last_read)  # every chunk read by then is in a segment now
                    self._write_manifest()
                return True
            group = merge_plan([len(x) for x in segments], self._tail_max, self._fanout, self._max_segments)
            if group:
                sources = [segments[i] for i in group]
                merged = Segment.merge(self._new_folder(), sources, self._memory)
                with self._lock:
                    self._segments = [x for x in self._segments if all(x is not y for y in sources)] + [merged]
                    self._write_manifest()
                for old in sources:
                    shutil.rmtree(old.folder, ignore_errors=True)  # still mapped by a lookup in flight: harmless
                return True
            return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                while self.compact() and not self._stop.is_set():
                    pass
            except Exception:  # noqa: BLE001 - logged; the tail keeps serving and the next round retries
                log.exception("sound postings: compaction failed; lookups go on from memory, retrying")

    def _take(self, chunk: Chunk) -> None:
        """Under the lock: a chunk into the tail."""
        self._tail_chunks[chunk.seq] = chunk
        for h, t in zip(chunk.hashes.tolist(), chunk.times.tolist()):
            self._tail.setdefault(h, []).append((chunk.sound, t))
        self._tail_postings += int(chunk.hashes.size)

    def _rebuild_tail(self) -> None:
        chunks, self._tail, self._tail_chunks, self._tail_postings = list(self._tail_chunks.values()), {}, {}, 0
        for chunk in chunks:
            self._take(chunk)

    def _bootstrap(self) -> None:
        """No manifest in force (a new node, or one set aside): read every chunk and, when they fill more
        than a tail, write them as one segment straight away rather than through the tail's dict: sorted
        runs of at most `memory_bytes` worth each, then merged (Segment.merge), so the heap this takes does
        not grow with the corpus."""
        run_max = max(self._tail_max, self._memory // RUN_BYTES_PER_POSTING)
        held: dict[int, Chunk] = {}
        held_postings = 0
        runs: list[Segment] = []
        cursor, last_read = 0, set()
        for page, after in pages(self._read_after, 0):
            for chunk in page:
                if chunk.seq in last_read or chunk.seq in held:
                    continue  # read before (on PostgreSQL a read may repeat the previous one's last)
                held[chunk.seq] = chunk
                held_postings += int(chunk.hashes.size)
            if page or after != cursor:
                last_read = {c.seq for c in page}
            cursor = after
            if held_postings >= run_max:
                runs.append(self._write_run(held, "run"))
                held, held_postings = {}, 0
        self._cursor, self._last_read = cursor, last_read
        if not runs and held_postings < self._tail_max:
            for chunk in held.values():
                self._take(chunk)
            return
        if held:
            runs.append(self._write_run(held, "run"))
        if len(runs) == 1:
            self._segments = runs
        else:
            self._segments = [Segment.merge(self._new_folder(), runs, self._memory)]
            for run in runs:
                shutil.rmtree(run.folder, ignore_errors=True)
        self._covered = (cursor, set(last_read))
        self._write_manifest()

    def _write_run(self, chunks: dict[int, Chunk], prefix: str) -> Segment:
        columns = _columns(list(chunks.values()))
        chunks.clear()  # the columns hold them now: the chunks' own arrays can go before the sort
        return Segment.write(self._new_folder(prefix), *columns)

    def _new_folder(self, prefix: str = "segment") -> Path:
        return self._folder / f"{prefix}-{time.time_ns():x}"

    # --- the manifest -------------------------------------------------------
    def _write_manifest(self) -> None:
        """Under the lock: the segments in force and the read they cover (`self._covered`). Replaying from
        its cursor returns every chunk that is in no listed segment (and perhaps those of `last_read`,
        which are in one and are skipped)."""
        write_manifest(self._folder, self._segments, *self._covered, key=self._key)

    def _load(self) -> bool:
        """The manifest's segments and cursor, if one is in force (else False, and nothing is loaded)."""
        try:
            try:
                manifest = json.loads((self._folder / MANIFEST).read_text())
            except FileNotFoundError:
                manifest = {}
            if manifest and manifest.get("format") != FORMAT:
                raise SegmentError(f"manifest format {manifest.get('format')}, this server reads {FORMAT}")
            if manifest and manifest.get("key") != self._key:
                raise SegmentError(f"it was written for {manifest.get('key')!r}, this server reads {self._key!r}")
            segments = [Segment(self._folder / name, verify=True) for name in manifest.get("segments", [])]
        except (ValueError, SegmentError) as e:
            log.warning("sound postings: %s holds no usable manifest (%s); reading every chunk again", self._folder, e)
            manifest, segments = {}, []
            (self._folder / MANIFEST).unlink(missing_ok=True)
        self._segments = segments
        self._cursor = int(manifest.get("cursor", 0))
        self._last_read = set(manifest.get("last_read", []))
        self._covered = (self._cursor, set(self._last_read))
        listed = {s.folder.name for s in segments}
        for path in self._folder.iterdir():
            if path.is_dir() and path.name not in listed:
                shutil.rmtree(path, ignore_errors=True)  # written by a compaction that did not commit
        return bool(manifest)


def write_manifest(folder: Path, segments: list[Segment], cursor: int, last_read: set[int], key: str) -> None:
    """Put `segments` (folders under `folder`) in force as covering every chunk read up to `cursor`. The
    node writes it after each compaction; a bulk loader (benchmarks/sound_scale.py) after writing a
    segment of every chunk itself, so the next start maps it and reads no chunk."""
    replace_durably(folder / MANIFEST, json.dumps({
        "format": FORMAT, "key": key, "segments": [s.folder.name for s in segments],
        "cursor": int(cursor), "last_read": sorted(last_read)}))


def merge_plan(sizes: list[int], tail_max: int, fanout: int, max_segments: int) -> list[int]:
    """Which segments (indexes into `sizes`) to merge next, if any: the `fanout` smallest of the lowest
    size tier that holds that many, else, beyond `max_segments`, every segment of the lowest tiers (at
    least two). A segment's tier is floor(log_fanout(size / tail_max))."""
    tiers: dict[int, list[int]] = {}
    for i, n in enumerate(sizes):
        tier = int(math.floor(math.log(max(n, 1) / tail_max, fanout))) if n > tail_max else 0
        tiers.setdefault(tier, []).append(i)
    for tier in sorted(tiers):
        if len(tiers[tier]) >= fanout:
            return sorted(tiers[tier], key=lambda i: sizes[i])[:fanout]
    if len(sizes) > max_segments:  # every segment of the lowest tiers, so what they merge into moves up
        group: list[int] = []
        for tier in sorted(tiers):
            group += tiers[tier]
            if len(group) >= 2:
                return group
    return []


def _columns(chunks: list[Chunk]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chunks as segment columns (uint32 hash, uint32 sound, int32 frame): 12 B a posting."""
    ids = np.array([c.sound for c in chunks], np.int64)
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.uint32).max):
        raise ValueError(f"sound ids must lie in 0..{np.iinfo(np.uint32).max} for a segment; found {ids.max()}")
    return (
        np.concatenate([c.hashes.astype(np.uint32, copy=False) for c in chunks] or [np.zeros(0, np.uint32)]),
        np.repeat(ids.astype(np.uint32), [c.hashes.size for c in chunks]),
        np.concatenate([c.times.astype(np.int32, copy=False) for c in chunks] or [np.zeros(0, np.int32)]),
    )
