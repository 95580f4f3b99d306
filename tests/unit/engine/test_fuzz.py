"""Fuzzing the decode path with hypothesis: mutations of a real H.264 + AAC clip (truncations, byte
flips, inserted noise, duplicated or dropped spans) through the decode worker pool, as uploads are
decoded. Every input must end in a decoded clip or INVALID_ARGUMENT: no other exception, no hang
(each decode has a time limit), no growth in the decode workers' memory.

Bounded for CI: a fixed number of examples from a fixed seed (derandomized), so a failure reproduces;
raise COLDOPEN_FUZZ_EXAMPLES for a longer local campaign.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldopen.domain.errors import InvalidInput
from coldopen.engine.decode import DecodeJob, DecodePool
from coldopen.engine.media import Limits

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("COLDOPEN_FUZZ_EXAMPLES", "200"))  # read by the test module only, never by the server
DECODE_TIMEOUT_S = 30.0


@st.composite
def mutations(draw, size: int):
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "duplicate", "drop", "header"]))
    # Positions as a fraction of the file, so examples spread over the whole clip (mostly packet data)
    # instead of clustering at hypothesis's favourite small integers.
    pos = int(draw(st.floats(0.0, 1.0, allow_nan=False, exclude_max=True)) * size)
    if kind == "truncate":
        return kind, pos, b""
    if kind == "flip":
        return kind, pos, draw(st.binary(min_size=1, max_size=64))
    if kind == "insert":
        return kind, pos, draw(st.binary(min_size=1, max_size=4096))
    if kind == "header":  # damage the container index at the start
        return kind, draw(st.integers(0, min(size - 1, 64))), draw(st.binary(min_size=1, max_size=16))
    return kind, pos, draw(st.integers(1, 20_000)).to_bytes(4, "big")


def apply(data: bytes, mutation) -> bytes:
    kind, pos, payload = mutation
    if kind == "truncate":
        return data[:pos]
    if kind in ("flip", "header"):
        return data[:pos] + payload + data[pos + len(payload):]
    if kind == "insert":
        return data[:pos] + payload + data[pos:]
    n = int.from_bytes(payload, "big")
    if kind == "duplicate":
        return data[: pos + n] + data[pos : pos + n] + data[pos + n :]
    return data[:pos] + data[pos + n :]  # drop


@pytest.fixture(scope="module")
def pool():
    p = DecodePool(1)
    p.warm_up()
    yield p
    p.close()


def _worker_rss(pool: DecodePool) -> int:
    import psutil

    procs = getattr(pool._pool, "_processes", None) or {}
    return sum(psutil.Process(pid).memory_info().rss for pid in procs if psutil.pid_exists(pid))


def test_mutated_clips_decode_or_are_refused_never_crash_or_hang(pool, clips, tmp_path_factory):
    original = clips["fox"].read_bytes()
    work = tmp_path_factory.mktemp("fuzz")
    outcomes = {"decoded": 0, "refused": 0}
    rss_after_warmup: list[int] = []
    limits = Limits(max_duration_s=600, max_pixels=3840 * 2160, max_audio_channels=16, max_audio_sample_rate=192_000)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(mutations(len(original)), min_size=1, max_size=4))
    def run(muts):
        data = original
        for m in muts:
            if data:
                data = apply(data, (m[0], min(m[1], len(data) - 1), m[2]))
        path = work / "case.mp4"
        path.write_bytes(data)
        started = time.monotonic()
        try:
            decoded = pool.decode(DecodeJob(str(path), "auto", 1.0, 64, 112, limits), timeout=DECODE_TIMEOUT_S)
            assert decoded.frames.frames, "decoded without frames"
            outcomes["decoded"] += 1
        except InvalidInput as e:
            assert str(e), "empty message"
            outcomes["refused"] += 1
        assert time.monotonic() - started < DECODE_TIMEOUT_S
        if sum(outcomes.values()) == 10:
            rss_after_warmup.append(_worker_rss(pool))

    run()
    total = sum(outcomes.values())
    growth = (_worker_rss(pool) - rss_after_warmup[0]) / 2**20 if rss_after_warmup else 0.0
    print(f"\nfuzz: {total} mutated clips: {outcomes['decoded']} decoded, {outcomes['refused']} refused, "
          f"0 crashes or hangs, {pool.crashes} worker deaths, decode-worker RSS growth {growth:.0f} MiB")
    assert total >= min(EXAMPLES, 20) and outcomes["refused"] > 0 and outcomes["decoded"] > 0
    assert pool.crashes == 0
    assert growth < 100
