"""The pipeline engine: cross-request batchers, the decode process pool, sampling modes, and the
batched path agreeing with the sequential one (same embeddings, transcripts and fingerprints)."""

from __future__ import annotations

import difflib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from coldopen.domain.errors import InvalidInput, Overloaded
from coldopen.domain.videos import VideoMetadata
from coldopen.engine import media
from coldopen.engine.batching import Batcher
from coldopen.engine.decode import DecodeJob, DecodePool, decode_clip
from coldopen.engine.pipeline import Pipeline
from coldopen.v1 import coldopen_pb2 as pb
from testkit import mediagen
from tests.conftest import upload


# --- batcher --------------------------------------------------------------------------------------
def test_batcher_merges_requests_and_returns_each_its_own_results_in_order():
    seen: list[int] = []

    def double(items):
        seen.append(len(items))
        time.sleep(0.01)
        return [2 * x for x in items]

    b = Batcher("double", double, max_batch=16, max_wait_s=0.05, max_queue=256)
    try:
        def one(r):
            items = list(range(r * 100, r * 100 + 1 + r % 5))
            out, report = b.submit(items)
            return items, out, report

        with ThreadPoolExecutor(12) as ex:
            results = list(ex.map(one, range(24)))
        for items, out, report in results:
            assert out == [2 * x for x in items]
            assert report.batch_sizes and report.wait_ms >= 0
        total = sum(len(items) for items, _, _ in results)
        assert sum(seen) == total  # every item ran exactly once
        assert max(seen) > 5 and max(seen) <= 16  # items from several requests shared batches, capped
        assert b.stats().mean_batch > 1
    finally:
        b.close()


def test_batcher_error_reaches_the_requests_of_that_batch_and_the_worker_survives():
    def picky(items):
        if "bad" in items:
            raise ValueError("bad item")
        return [x.upper() for x in items]

    b = Batcher("picky", picky, max_batch=4, max_wait_s=0.0, max_queue=16)
    try:
        with pytest.raises(ValueError, match="bad item"):
            b.submit(["bad"])
        assert b.submit(["ok", "fine"])[0] == ["OK", "FINE"]
    finally:
        b.close()


def test_batcher_queue_is_bounded_and_refuses_with_a_retry_hint():
    release = threading.Event()

    def slow(items):
        release.wait(10)
        return items

    b = Batcher("slow", slow, max_batch=2, max_wait_s=0.0, max_queue=4)
    try:
        first = b.enqueue([1, 2])  # taken by the worker, which blocks
        deadline = time.time() + 5
        while b.stats().queued and time.time() < deadline:
            time.sleep(0.01)
        queued = b.enqueue([3, 4, 5, 6])  # fills the queue
        with pytest.raises(Overloaded, match="queue is full.*retry"):
            b.enqueue([7])
        release.set()
        assert first.result()[0] == [1, 2] and queued.result()[0] == [3, 4, 5, 6]
    finally:
        release.set()
        b.close()


# --- sampling modes -------------------------------------------------------------------------------
def test_keyframes_mode_matches_uniform_when_every_second_starts_a_gop(tmp_path):
    path = mediagen.make_clip(tmp_path / "gop.mp4", "astronaut", seconds=4, size=(320, 180), fps=12, gop=12)
    info = media.probe(path)
    uniform, _ = media.sample(path, info, "uniform", 1.0, 64)
    keyframes, used = media.sample(path, info, "keyframes", 1.0, 64)
    assert used == "keyframes"
    assert keyframes.times_s == uniform.times_s == [0.0, 1.0, 2.0, 3.0]
    for a, b in zip(keyframes.frames, uniform.frames):
        assert np.array_equal(a, b)
    assert media.sample(path, info, "auto", 1.0, 64)[1] == "keyframes"


def test_auto_mode_decodes_every_frame_when_keyframes_are_sparse(tmp_path):
    path = mediagen.make_clip(tmp_path / "sparse.mp4", "coffee", seconds=6, size=(320, 180), fps=12, gop=72)
    info = media.probe(path)
    sampled, used = media.sample(path, info, "auto", 1.0, 64)
    assert used == "uniform" and len(sampled.frames) == 6
    keyframes, _ = media.sample(path, info, "keyframes", 1.0, 64)
    assert len(keyframes.frames) == 1  # one GOP: the fast mode gives what the clip has


def test_keyframes_mode_turns_phone_videos_upright(tmp_path):
    stored = mediagen.pan_frames(mediagen.photo("chelsea"), 24, (320, 180))
    path = mediagen.write_clip(tmp_path / "rot.mp4", stored, fps=12, gop=12, display_rotation=90, crf=14)
    info = media.probe(path)
    uniform, _ = media.sample(path, info, "uniform", 1.0, 64)
    keyframes, _ = media.sample(path, info, "keyframes", 1.0, 64)
    assert (keyframes.width, keyframes.height) == (uniform.width, uniform.height) == (180, 320)
    assert keyframes.rotation == uniform.rotation
    assert np.array_equal(keyframes.frames[0], uniform.frames[0])


# --- decode pool ----------------------------------------------------------------------------------
def crash_on_marked_files(job: DecodeJob):
    """FAKE decoder crash, for the containment test only: a real decoder segfault cannot be provoked
    on demand, so the worker process dies the same way (no Python exception, no reply) on a marked file."""
    if "CRASH" in Path(job.path).name:
        os._exit(139)
    return decode_clip(job)


def test_a_worker_that_dies_is_contained_and_the_pool_keeps_serving(clips, tmp_path):
    crash = tmp_path / "CRASH.mp4"
    crash.write_bytes(clips["fox"].read_bytes())
    pool = DecodePool(2, fn=crash_on_marked_files)
    try:
        job = lambda p: DecodeJob(str(p), "uniform", 1.0, 64, 0)  # noqa: E731
        with pytest.raises(InvalidInput, match="decoder crashed"):
            pool.decode(job(crash))
        assert pool.crashes >= 1
        decoded = pool.decode(job(clips["fox"]))
        assert len(decoded.frames.frames) == 5 and decoded.audio is not None
    finally:
        pool.close()


# --- batched path == sequential path --------------------------------------------------------------
def _sequential(models, path: Path):
    """The per-clip path: full-resolution frames, per-clip transcribe() and fingerprint."""
    info = media.probe(path)
    sampled = media.sample_frames(path, info, 1.0, 64)
    frames = models.clip.embed_frames(sampled.frames)
    audio = media.decode_audio(path) if info.has_audio else None
    text = models.whisper.transcribe(audio).text if audio is not None else ""
    fp = models.fingerprinter.fingerprint([audio])[0] if audio is not None else None
    return frames, text, fp


def _similar(a: str, b: str) -> float:
    norm = lambda s: "".join(c for c in s.lower() if c.isalnum() or c == " ").split()  # noqa: E731
    return difflib.SequenceMatcher(None, norm(a), norm(b)).ratio()


@pytest.fixture(scope="module")
def pooled_pipeline(models, base_settings):
    # Every sampled frame embedded: whether a frame of a pan is a near-repeat can be decided either way at the
    # threshold when frames are shrunk in the worker or not (test_media.py tests the skipping itself).
    p = Pipeline(base_settings.replace(decode_workers=2, batch_max_wait_ms=20.0, frame_skip_threshold=0.0), models)
    yield p
    p.close()


def test_concurrent_uploads_get_their_own_results_matching_the_sequential_path(pooled_pipeline, models, clips):
    names = ["fox", "coffee", "rocket", "cat", "hubble", "fox_copy"]
    expected = {n: _sequential(models, clips[n]) for n in names}
    work = [n for n in names for _ in range(2)]

    def run(name):
        timings: dict[str, float] = {}
        a = pooled_pipeline.analyse(VideoMetadata(video_id=name, caption=f"clip {name}"), clips[name], timings)
        return name, a, timings

    with ThreadPoolExecutor(len(work)) as ex:
        results = list(ex.map(run, work))
    assert [n for n, _, _ in results] == work  # every request answered once, with its own clip
    batched_any = False
    for name, a, timings in results:
        frames, text, fp = expected[name]
        assert a.frame_embeddings.shape == frames.shape
        cos = (a.frame_embeddings * frames).sum(axis=1)
        assert cos.min() > 0.98, (name, cos)  # frames shrunk in the worker vs resized on the model side
        if text:
            assert _similar(a.transcript.text, text) >= 0.85, (name, a.transcript.text, text)
        else:
            assert a.transcript.text == ""
        if fp is None:
            assert a.fingerprint is None
        else:
            shared = len(np.intersect1d(a.fingerprint.hashes, fp.hashes)) / max(1, len(np.unique(fp.hashes)))
            assert shared > 0.95, (name, shared)
        assert {"decode", "embed_frames", "embed_text"} <= set(timings)
        batched_any |= a.batch_sizes.get("embed_frames", 0) > len(frames)
    assert batched_any, "no upload shared a CLIP batch with another"
    stats = {s.name: s for s in pooled_pipeline.stats()}
    assert stats["clip"].items >= sum(len(expected[n][0]) for n in work)


def test_ingest_over_grpc_with_the_decode_pool_answers_every_upload_once(start_server, clips):
    server = start_server(decode_workers=2, sampling="auto", max_concurrent_ingests=6, grpc_workers=12)
    names = ["fox", "coffee", "rocket", "cat", "hubble", "fox_copy"]

    def send(name):
        return server.stub.Ingest(upload(clips[name].read_bytes(), f"vid-{name}"), timeout=120)

    with ThreadPoolExecutor(len(names)) as ex:
        replies = list(ex.map(send, names))
    assert [r.video_id for r in replies] == [f"vid-{n}" for n in names]
    assert all(r.extraction.sampling in ("uniform", "keyframes") for r in replies)
    stages = {t.stage for t in replies[0].extraction.timings}
    assert {"decode", "embed_frames", "transcribe", "store", "index"} <= stages
    hits = server.stub.Search(pb.SearchRequest(video_id="vid-fox", k=10), timeout=30).neighbours
    assert len(hits) == len(names) - 1 and hits[0].video_id == "vid-fox_copy"
    with pytest.raises(grpc.RpcError) as e:
        server.stub.GetVideo(pb.GetVideoRequest(video_id="vid-missing"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_batched_whisper_reads_every_window_of_long_clips_and_drops_silence(models):
    """Windows of 30 s from several clips share one generate call; speech in the second window of a
    36-s clip is kept, and a silent clip gets no text (no-speech guard) instead of a hallucination."""
    fox, rate = mediagen.speech("fox")
    coffee, _ = mediagen.speech("coffee")
    long_clip = np.concatenate([fox, np.zeros(int(31 * rate) - len(fox), np.float32), coffee])
    silent = np.zeros(3 * rate, np.float32)
    (long_t, silent_t, fox_t), stats = models.whisper.transcribe_batch([(long_clip, ""), (silent, ""), (fox, "")])
    assert stats.windows == 4 and stats.silent == 1  # Silero VAD: the silent clip never reaches the decoder
    # Batched decoding with timestamps reads exactly what faster-whisper's own sequential transcribe() reads.
    for batched, audio in ((fox_t, fox), (long_t, long_clip)):
        sequential = models.whisper.transcribe(audio)
        assert _similar(batched.text, sequential.text) >= 0.95, (batched.text, sequential.text)
    assert "quick" in fox_t.text.lower() and "lazy dog" in fox_t.text.lower(), fox_t.text
    words = long_t.text.lower()
    assert "fox" in words and "coffee" in words, long_t.text
    # Whisper's own segments, each with its start and end, in the clip's time: the sentence in the first
    # window ends by 4 s; the one in the second window starts at or after 30 s.
    first, second = long_t.segments
    assert first.start_s < 1.0 and 1.5 < first.end_s < 4.5 and "fox" in first.text.lower()
    assert 30.0 <= second.start_s < 32.0 < second.end_s <= 36.0 and "coffee" in second.text.lower()
    assert silent_t.text == "" and silent_t.segments == []
