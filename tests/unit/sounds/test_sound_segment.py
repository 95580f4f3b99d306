"""Hash-addressed postings segments (sounds/segment.py): lookups agree with a plain scan of the
postings, whatever the keys' skew or place in the hash space; writes are all-or-nothing; a damaged
segment is refused with a message that says what to do."""

import json

import numpy as np
import pytest

from coldopen.models.fingerprint import mix32
from coldopen.sounds.segment import Segment, SegmentError
from coldopen.storage.files import CHECKSUM_BLOCK


def _postings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skewed hashes (few distinct field values, mixed as the fingerprinter mixes them), with duplicates
    across sounds, and the edges of the hash space."""
    rng = np.random.default_rng(seed)
    fields = rng.zipf(1.3, size=n).astype(np.int64) % 50_000
    hashes = mix32(fields)
    hashes[:4] = [0, 1, 2**32 - 1, 2**32 - 2]
    return hashes, rng.integers(1, 5_000, size=n, dtype=np.int64), rng.integers(-200, 2_000, size=n).astype(np.int64)


def _scan(postings, keys) -> set[tuple[int, int, int]]:
    h, s, t = postings
    hit = np.isin(h, keys)
    return set(zip(h[hit].tolist(), s[hit].tolist(), t[hit].tolist()))


def test_lookups_find_exactly_the_postings_of_their_keys(tmp_path):
    postings = _postings(200_000)
    segment = Segment.write(tmp_path / "seg", *postings)
    assert len(segment) == 200_000
    rng = np.random.default_rng(1)
    present = rng.choice(postings[0], 500)
    absent = rng.integers(0, 2**32, 500, dtype=np.uint64).astype(np.uint32)
    for keys in (present, absent, np.concatenate([present, absent, present]),
                 np.array([0, 1, 2**32 - 1], np.uint32), np.zeros(0, np.uint32)):
        h, s, t = segment.lookup(keys)
        assert h.dtype == np.uint32 and s.dtype == np.int64 and t.dtype == np.int64
        got = list(zip(h.tolist(), s.tolist(), t.tolist()))
        assert set(got) == _scan(postings, keys)
        assert h.size == np.isin(postings[0], keys).sum()  # each posting once, even for a key asked twice


@pytest.mark.parametrize("memory_bytes", [1 << 30, 200_000 * 40 // 50], ids=["one-part", "fifty-parts"])
def test_a_merge_holds_every_posting_as_one_write_would_whatever_its_memory(tmp_path, memory_bytes):
    parts = [_postings(50_000, seed=2), _postings(30_000, seed=3), _postings(120_000, seed=4)]
    sources = [Segment.write(tmp_path / f"src{i}", *p) for i, p in enumerate(parts)]
    reopened = Segment(tmp_path / "src0")
    merged = Segment.merge(tmp_path / "m", [reopened, *sources[1:]], memory_bytes)
    every = tuple(np.concatenate(cols) for cols in zip(*parts))
    whole = Segment.write(tmp_path / "whole", *every)
    assert len(merged) == 200_000 and merged.bits == whole.bits
    assert np.array_equal(merged.hashes, whole.hashes) and np.array_equal(merged.offsets, whole.offsets)
    keys = np.concatenate([p[0][:300] for p in parts] + [np.array([0, 2**32 - 1], np.uint32)])
    h, s, t = merged.lookup(keys)
    assert h.size == np.isin(every[0], keys).sum()
    assert set(zip(h.tolist(), s.tolist(), t.tolist())) == _scan(every, keys)
    assert set(zip(*(c.tolist() for c in reopened.lookup(keys)))) == _scan(parts[0], keys)  # sources unchanged
    with pytest.raises(FileExistsError, match="immutable"):
        Segment.merge(tmp_path / "m", sources, memory_bytes)


def test_a_merge_stays_within_its_memory(tmp_path):
    """Heap (numpy's allocations, which tracemalloc sees) while merging 2.4 M postings in a 4 MB budget:
    the parts, not the total. Hashes spread as the fingerprinter's mixed ones do (a single hash holding more
    postings than the budget, as _postings' most skewed one does, would be read whole)."""
    import tracemalloc

    rng = np.random.default_rng(5)
    sources = [Segment.write(tmp_path / f"src{i}", rng.integers(0, 2**32, 600_000, dtype=np.uint64).astype(np.uint32),
                             rng.integers(1, 10**6, 600_000), rng.integers(0, 2_000, 600_000)) for i in range(4)]
    tracemalloc.start()
    try:
        merged = Segment.merge(tmp_path / "m", sources, 4_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(merged) == 2_400_000
    # the budget, the parts' edges (2^16 ranges) and the checksums' read buffer
    assert peak < 4_000_000 + 2**16 * 8 * (len(sources) + 3) + CHECKSUM_BLOCK, peak
    assert peak < 2_400_000 * 12 / 4  # a quarter of the columns alone


def test_an_empty_segment_answers_nothing(tmp_path):
    empty = np.zeros(0, np.int64)
    segment = Segment.write(tmp_path / "e", empty.astype(np.uint32), empty, empty)
    assert len(segment) == 0
    assert all(c.size == 0 for c in segment.lookup(np.array([5, 7], np.uint32)))


def test_writes_are_all_or_nothing_and_segments_immutable(tmp_path):
    postings = _postings(10_000)
    (tmp_path / "seg.partial").mkdir()  # as a crash during an earlier write leaves it
    (tmp_path / "seg.partial" / "hashes.npy").write_bytes(b"half")
    Segment.write(tmp_path / "seg", *postings)
    assert not (tmp_path / "seg.partial").exists()
    with pytest.raises(FileExistsError, match="immutable"):
        Segment.write(tmp_path / "seg", *postings)
    with pytest.raises(ValueError, match="sound ids"):
        Segment.write(tmp_path / "big", postings[0], postings[1] + 2**32, postings[2])
    assert not (tmp_path / "big").exists()


def test_damaged_segments_are_refused_with_what_to_do(tmp_path):
    Segment.write(tmp_path / "seg", *_postings(10_000))
    with pytest.raises(SegmentError, match="write the segment again"):
        Segment(tmp_path / "nothing-here")
    meta = json.loads((tmp_path / "seg" / "segment.json").read_text())
    (tmp_path / "seg" / "segment.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(SegmentError, match="format 99"):
        Segment(tmp_path / "seg")
    (tmp_path / "seg" / "segment.json").write_text(json.dumps({**meta, "postings": 9}))
    with pytest.raises(SegmentError, match="disagree"):
        Segment(tmp_path / "seg")
    (tmp_path / "seg" / "segment.json").write_text(json.dumps(meta))
    (tmp_path / "seg" / "times.npy").write_bytes(b"\x93NUMPY broken")
    with pytest.raises(SegmentError, match="damaged column"):
        Segment(tmp_path / "seg")
