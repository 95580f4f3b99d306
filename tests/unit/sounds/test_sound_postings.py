"""A node's hash-addressed view of the sound postings (sounds/postings.py): lookups equal a plain
scan of every chunk through flushes, merges and restarts; a restart replays only what its segments do
not hold; a chunk read twice counts once; a crash or a damaged manifest loses nothing.

The chunks come from `ChunkLog`, a stand-in for the catalog's chunk reads (`Catalog.sound_chunks_after`,
exercised on SQLite and PostgreSQL in test_storage.py and test_sound_identity.py) that lets a test choose
the page size and, as the change feed may on PostgreSQL, return the last chunk of a read again in the
next one (`repeat_last`), and step in between two pages."""

import json
import math
import threading

import numpy as np
import pytest

from coldopen.models.fingerprint import mix32
from coldopen.sounds.postings import Chunk, SoundPostings


class ChunkLog:
    def __init__(self, repeat_last: bool = False, page: int = 7):
        self.chunks: list[Chunk] = []
        self.repeat_last, self.page = repeat_last, page
        self.reads: list[int] = []
        self._rng = np.random.default_rng(0)
        self._lock = threading.Lock()

    def add(self, sound: int, n: int = 300) -> Chunk:
        hashes = mix32(self._rng.zipf(1.4, size=n).astype(np.int64) % 5_000)  # skewed: shared hashes
        with self._lock:
            chunk = Chunk(len(self.chunks) + 1, sound, hashes, self._rng.integers(0, 1_875, n))
            self.chunks.append(chunk)
        return chunk

    def read_after(self, cursor: int) -> tuple[list[Chunk], int]:
        with self._lock:
            self.reads.append(cursor)
            out = self.chunks[cursor : cursor + self.page]
        if not out:
            return [], cursor
        after = out[-1].seq
        if self.repeat_last and len(out) == self.page:
            after -= 1  # resume at the last one: it comes again
        return out, after

    def scan(self, keys: np.ndarray) -> list[tuple[int, int, int]]:
        rows = [(h, c.sound, t) for c in self.chunks for h, t in zip(c.hashes.tolist(), c.times.tolist())]
        wanted = set(np.asarray(keys, np.uint32).tolist())
        return sorted(r for r in rows if r[0] in wanted)


def _got(postings: SoundPostings, keys, cap: int = 10**9) -> list[tuple[int, int, int]]:
    h, s, t, _ = postings.lookup(np.asarray(keys, np.uint32), cap)
    return sorted(zip(h.tolist(), s.tolist(), t.tolist()))


def _log_with(sounds: int, **kw) -> ChunkLog:
    log = ChunkLog(**kw)
    for sound in range(sounds):
        log.add(sound)
    return log


def _complete(postings: SoundPostings, log: ChunkLog, seed: int = 1) -> bool:
    """Every chunk's postings are found, each once."""
    keys = _keys(log, seed)
    return _got(postings, keys) == log.scan(keys) and len(postings) == sum(c.hashes.size for c in log.chunks)


def _keys(log: ChunkLog, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    present = np.concatenate([c.hashes for c in log.chunks])
    return np.concatenate([rng.choice(present, 200), rng.integers(0, 2**32, 50, dtype=np.uint64).astype(np.uint32)])


@pytest.mark.parametrize("repeat_last", [False, True], ids=["in-order", "repeats"])
def test_lookups_equal_a_scan_through_flushes_merges_and_restarts(tmp_path, repeat_last):
    log = ChunkLog(repeat_last=repeat_last)

    def open_() -> SoundPostings:
        return SoundPostings(tmp_path / "p", log.read_after, key="cat-1", tail_max=2_000, max_segments=2, compact_every_s=3600)

    postings = open_()
    for round_ in range(6):
        for i in range(9):
            log.add(sound=round_ * 10 + i)
        keys = _keys(log, seed=round_)
        assert _got(postings, keys) == log.scan(keys)
        while postings.compact():
            pass
        assert postings.segments <= 2 and _got(postings, keys) == log.scan(keys)
        assert len(postings) == sum(c.hashes.size for c in log.chunks)
    postings.close()
    log.add(sound=99)  # committed while the node was down
    reads = len(log.reads)
    again = open_()
    assert again.segments == postings.segments and again.segments >= 1
    assert min(log.reads[reads:]) >= 40  # replayed from the manifest's cursor, not from the start
    assert _complete(again, log, seed=9)
    again.close()


def test_hashes_at_the_cap_are_left_out_and_reported(tmp_path):
    log = _log_with(4)
    postings = SoundPostings(tmp_path / "p", log.read_after, compact_every_s=3600)
    counts = {}
    for c in log.chunks:
        for h in c.hashes.tolist():
            counts[h] = counts.get(h, 0) + 1
    busy = max(counts, key=counts.get)
    quiet = min(counts, key=counts.get)
    h, _, _, common = postings.lookup(np.array([busy, quiet], np.uint32), cap=counts[busy])
    assert common.tolist() == [busy] and set(h.tolist()) == {quiet} and h.size == counts[quiet]
    postings.close()


def test_a_crash_mid_compaction_and_damaged_manifests_lose_nothing(tmp_path, caplog):
    log = _log_with(20)
    folder = tmp_path / "p"
    postings = SoundPostings(folder, log.read_after, key="cat-1", tail_max=2_000, compact_every_s=3600)
    while postings.compact():
        pass
    postings.close()
    (folder / "segment-orphan").mkdir()  # a segment whose manifest was never written
    (folder / "manifest.json.tmp").write_text("{")
    again = SoundPostings(folder, log.read_after, key="cat-1", compact_every_s=3600)
    assert not (folder / "segment-orphan").exists() and _complete(again, log)
    again.close()
    for damage, said in (
        ("not json", "no usable manifest"),
        (json.dumps({"format": 1, "key": "another", "segments": [], "cursor": 5, "last_read": []}), "another"),
        (json.dumps({"format": 1, "key": "cat-1", "segments": ["segment-gone"], "cursor": 5, "last_read": []}), "segment-gone"),
    ):
        (folder / "manifest.json").write_text(damage)
        caplog.clear()
        fresh = SoundPostings(folder, log.read_after, key="cat-1", compact_every_s=3600)
        assert said in caplog.text and "reading every chunk again" in caplog.text
        assert _complete(fresh, log)
        fresh.close()


def test_concurrent_lookups_while_chunks_arrive_and_the_background_compacts(tmp_path):
    log = ChunkLog(repeat_last=True)
    postings = SoundPostings(tmp_path / "p", log.read_after, tail_max=1_500, max_segments=3, compact_every_s=0.01)
    errors, stop = [], threading.Event()

    def reader():
        rng = np.random.default_rng()
        while not stop.is_set():
            try:
                postings.lookup(rng.integers(0, 2**32, 300, dtype=np.uint64).astype(np.uint32), cap=64)
            except Exception as e:  # noqa: BLE001 - collected for the assertion
                errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for sound in range(60):
        log.add(sound)
    for _ in range(200):
        if postings.segments and len(postings) == sum(c.hashes.size for c in log.chunks):
            break
        postings.refresh()
        stop.wait(0.02)
    stop.set()
    for t in threads:
        t.join()
    postings.close()
    assert not errors
    assert _complete(postings, log) and postings.segments >= 1


def test_a_chunk_read_again_after_a_compaction_between_pages_counts_once(tmp_path):
    """The chunk a full page ends with comes again in the next page; a segment written between the two
    pages holds it already, and so does the manifest a restart starts from."""
    log = _log_with(20, repeat_last=True, page=7)
    folder = tmp_path / "p"
    holder: list[SoundPostings] = []
    read = log.read_after

    calls = []

    def read_and_compact_between_pages(cursor):
        calls.append(cursor)
        if len(calls) == 2:  # the first page is in (it ended on a chunk that comes again): compact now
            assert holder[0].compact()
        return read(cursor)

    postings = SoundPostings(folder, lambda c: read(c), tail_max=10**9, compact_every_s=3600)
    holder.append(postings)
    for sound in range(20, 40):
        log.add(sound)
    postings._tail_max = 1  # flush whatever the tail holds at the next compaction
    postings._read_after = read_and_compact_between_pages
    assert _complete(postings, log) and postings.segments == 1
    postings.close()
    again = SoundPostings(folder, log.read_after, tail_max=10**9, compact_every_s=3600)
    assert _complete(again, log)
    again.close()


def test_chunks_read_while_a_segment_is_written_survive_a_restart(tmp_path, monkeypatch):
    from coldopen.sounds import postings as module

    log = _log_with(10)
    folder = tmp_path / "p"
    postings = SoundPostings(folder, log.read_after, tail_max=10**9, compact_every_s=3600)
    postings._tail_max = 1  # flush whatever the tail holds at the next compaction
    write = module.Segment.write

    def write_while_more_arrive(*args):
        for sound in range(10, 15):
            log.add(sound)
        postings.refresh()  # read during the write: these are not in the segment being written
        return write(*args)

    monkeypatch.setattr(module.Segment, "write", staticmethod(write_while_more_arrive))
    assert postings.compact()
    monkeypatch.setattr(module.Segment, "write", write)
    postings.close()
    again = SoundPostings(folder, log.read_after, tail_max=10**9, compact_every_s=3600)
    assert _complete(again, log)
    again.close()


@pytest.mark.parametrize("repeat_last", [False, True], ids=["in-order", "repeats"])
def test_a_new_node_writes_what_the_catalog_holds_as_one_segment(tmp_path, repeat_last):
    log = _log_with(50, repeat_last=repeat_last)
    big = SoundPostings(tmp_path / "big", log.read_after, tail_max=5_000, compact_every_s=3600)
    assert big.segments == 1 and _complete(big, log)  # at once, not through the tail
    small = SoundPostings(tmp_path / "small", log.read_after, tail_max=10**9, compact_every_s=3600)
    assert small.segments == 0 and _complete(small, log)
    log.add(sound=50)
    big.close()
    again = SoundPostings(tmp_path / "big", log.read_after, tail_max=5_000, compact_every_s=3600)
    assert again.segments == 1 and _complete(again, log)
    for p in (small, again):
        p.close()


def test_a_first_start_in_little_memory_writes_runs_and_merges_them(tmp_path):
    """A new node over more postings than its memory holds: sorted runs of what fits, merged by hash
    range, with every posting found once; the runs are gone after."""
    log = _log_with(120, page=5)  # 36,000 postings
    postings = SoundPostings(tmp_path / "p", log.read_after, key="cat-1", tail_max=2_000, compact_every_s=3600,
                             memory_bytes=4_000 * 40)  # runs of 4,000 postings: ~9 of them
    assert postings.segments == 1 and _complete(postings, log)
    assert [p.name.split("-")[0] for p in (tmp_path / "p").iterdir() if p.is_dir()] == ["segment"]
    postings.close()
    again = SoundPostings(tmp_path / "p", log.read_after, key="cat-1", compact_every_s=3600)
    assert again.segments == 1 and _complete(again, log, seed=4)
    again.close()


def test_tiered_merges_rewrite_each_posting_a_logarithmic_number_of_times():
    """Tail-sized segments arriving one by one (10^4 of them), fanout 4, at most 16 segments: no posting is
    rewritten more than ~log_4(10^4) + 3 times (merging the largest segment into each new one: 10^4)."""
    from coldopen.sounds.postings import merge_plan

    sizes: list[int] = []
    rewrites: list[list[int]] = []  # per segment: how often each of its tail-sized pieces was rewritten
    for _ in range(10_000):
        sizes.append(1)
        rewrites.append([0])
        while group := merge_plan(sizes, 1, 4, 16):
            merged = [r + 1 for i in group for r in rewrites[i]]
            sizes = [n for i, n in enumerate(sizes) if i not in group] + [sum(sizes[i] for i in group)]
            rewrites = [r for i, r in enumerate(rewrites) if i not in group] + [merged]
        assert len(sizes) <= 16
    worst = max(max(r) for r in rewrites)
    assert sum(sizes) == 10_000 and worst <= math.ceil(math.log(10_000, 4)) + 3, worst


@pytest.mark.parametrize("column", ["hashes", "sounds", "times", "offsets"])
def test_a_segment_damaged_with_its_size_kept_is_rewritten_from_the_chunks(tmp_path, caplog, column):
    """Bytes of a column overwritten in place (the size kept, so only a checksum can tell): the node sets
    its segments aside at start and reads every chunk again; it never answers from the damaged column."""
    log = _log_with(20)
    folder = tmp_path / "p"
    postings = SoundPostings(folder, log.read_after, key="cat-1", tail_max=2_000, compact_every_s=3600)
    while postings.compact():
        pass
    postings.close()
    segment = next(p for p in folder.iterdir() if p.is_dir())
    path = segment / f"{column}.npy"
    data = bytearray(path.read_bytes())
    data[200:264] = bytes(64) if any(data[200:264]) else b"\xff" * 64
    path.write_bytes(bytes(data))
    caplog.clear()
    again = SoundPostings(folder, log.read_after, key="cat-1", compact_every_s=3600)
    assert f"{column}.npy has checksum" in caplog.text and "reading every chunk again" in caplog.text
    assert _complete(again, log)
    again.close()
