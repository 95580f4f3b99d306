"""Hardening: what a hostile or careless caller could do to the non-upload RPCs, and that the holes are shut.

Each test names the hole it closes (see the hardening issue): uploads to SearchBySound and Route go
through the Ingest path and its limits; engagement is validated before anything is committed and no
stored row can stop a start; every stream has an idle timeout; health answers while every stream is
taken; metadata is bounded; decoding is bounded and releases its resources at the deadline.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from coldopen.api.auth import ANONYMOUS, Caller
from coldopen.api.streams import CallerStreams
from coldopen.app.service import ColdOpenService
from coldopen.config.settings import MAX_CHUNK_BYTES
from coldopen.domain.errors import DataDirLocked, DeadlineExceeded, InvalidInput, Overloaded
from coldopen.engine import media
from coldopen.engine.batching import Batcher
from coldopen.engine.decode import DecodeJob, DecodePool
from coldopen.ranking import scores as engagement
from coldopen.v1 import coldopen_pb2 as pb
from testkit import audiogen, mediagen

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hour_opus(tmp_path_factory) -> Path:
    return audiogen.one_hour_opus(tmp_path_factory.mktemp("hostile") / "hour.opus")


def sound_upload(data: bytes, limit: int = 10):
    yield pb.SoundSearchRequest(query=pb.SoundQuery(upload=pb.UploadInfo(filename="x"), limit=limit))
    for i in range(0, len(data), MAX_CHUNK_BYTES):
        yield pb.SoundSearchRequest(chunk=data[i : i + MAX_CHUNK_BYTES])


def route_upload(data: bytes, **meta):
    yield pb.RouteRequest(query=pb.RouteQuery(upload=pb.VideoMetadata(**meta), k=3))
    for i in range(0, len(data), MAX_CHUNK_BYTES):
        yield pb.RouteRequest(chunk=data[i : i + MAX_CHUNK_BYTES])


def _rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(*args, **kwargs)
    return e.value


# --- 1. one upload path -------------------------------------------------------------------------
def test_an_hour_of_opus_sent_to_search_by_sound_is_refused_by_its_header_and_memory_stays_flat(start_server, hour_opus):
    """Before: 2.6 MB of Opus holding an hour raised the server's RSS by 2.2 GB and held a core for 19 s."""
    import psutil

    server = start_server()
    proc = psutil.Process()
    before = proc.memory_info().rss
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        err = _rpc_error(server.stub.SearchBySound, sound_upload(hour_opus.read_bytes()), timeout=60)
        route_err = _rpc_error(server.stub.Route, route_upload(hour_opus.read_bytes()), timeout=60)
    finally:
        stop.set()
        sampler.join()
    took = time.perf_counter() - started
    growth_mb = (peak[0] - before) / 1e6
    print(f"\nhour of Opus ({hour_opus.stat().st_size / 1e6:.1f} MB) to SearchBySound and Route: refused in "
          f"{took:.2f} s, peak RSS growth {growth_mb:.0f} MB")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_duration_s" in err.details()
    assert route_err.code() == grpc.StatusCode.INVALID_ARGUMENT  # Route needs a video: refused before decoding
    assert growth_mb < 300


def test_audio_whose_header_hides_its_length_is_cut_off_while_decoding(tmp_path):
    """A header can lie or say nothing: decoding itself stops at max_duration_s."""
    rate = 16000
    path = mediagen.write_audio_only(tmp_path / "long.m4a", np.zeros(rate * 12, np.float32) + 0.01, rate)
    assert media.decode_audio(path, max_duration_s=20).size == pytest.approx(rate * 12, rel=0.02)
    with pytest.raises(InvalidInput, match="max_duration_s") as e:
        media.decode_audio(path, max_duration_s=5)
    assert e.value.limit == "max_duration_s"


def test_sound_search_uploads_use_the_decode_pool_limits_and_the_ingest_slots(start_server, clips, tmp_path):
    server = start_server(max_audio_channels=2, max_concurrent_ingests=1)
    wide = mediagen.weird_audio_clip(tmp_path / "wide.mp4", 48000, 24)
    err = _rpc_error(server.stub.SearchBySound, sound_upload(wide.read_bytes()), timeout=60)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_audio_channels" in err.details()
    # an audio-only file is a fine sound query
    voice, rate = mediagen.speech("fox")
    m4a = mediagen.write_audio_only(tmp_path / "fox.m4a", voice, rate)
    server.ingest(clips["fox"], "fox")
    reply = server.stub.SearchBySound(sound_upload(m4a.read_bytes()), timeout=60)
    assert [m.video_id for m in reply.matches][:1] == ["fox"]
    # the same ingest slots: with the only slot held by a stalled upload, a sound upload is refused
    held = threading.Event()

    def stalled():
        yield pb.IngestRequest(metadata=pb.VideoMetadata(video_id="stalled"))
        yield pb.IngestRequest(chunk=b"\0" * 1000)
        held.set()
        time.sleep(3)

    future = server.stub.Ingest.future(stalled(), timeout=30)
    assert held.wait(10)
    time.sleep(0.3)
    err = _rpc_error(server.stub.SearchBySound, sound_upload(m4a.read_bytes()), timeout=30)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_concurrent_ingests" in err.details()
    with pytest.raises(grpc.RpcError):
        future.result()


def test_long_audio_is_fingerprinted_in_bounded_windows_that_match_the_whole(models):
    """Windows of ~30 s (plus context) cover a long clip: the fingerprint of a 95-s clip equals, in
    substance, the one computed over it whole, and a 12-s excerpt deep inside it is still found."""
    fp = models.fingerprinter
    audio = audiogen.resample(audiogen.music(11, 95.0), audiogen.RATE, 16000)
    windows = fp.split(audio)
    assert len(windows) == 4 and max(w.samples.size for w in windows) <= 33 * 16000
    windowed = fp.fingerprint([audio])[0]
    whole = fp.merge(fp.fingerprint_windows([type(windows[0])(audio, 0, 0, audio.size // fp.params.hop + 1)]), 95.0)
    pairs = lambda f: set(zip(f.hashes.tolist(), f.times.tolist()))  # noqa: E731
    shared = len(pairs(windowed) & pairs(whole)) / len(pairs(whole))
    assert shared > 0.9, shared
    assert windowed.times.max() > 90 / fp.params.frame_seconds  # anchor times are the clip's, not the window's
    excerpt = fp.fingerprint([audio[70 * 16000 : 82 * 16000]])[0]
    offsets = np.array([t_ref - t_q for h, t_q in zip(excerpt.hashes, excerpt.times)
                        for t_ref in windowed.times[windowed.hashes == h]])
    values, counts = np.unique(offsets, return_counts=True)
    assert abs(values[counts.argmax()] * fp.params.frame_seconds - 70) < 0.1


# --- 2. engagement validation -----------------------------------------------------------------
def test_bad_engagement_is_rejected_before_commit_and_cannot_stop_a_restart(start_server, clips, stack):
    """Before: a naive `at` under a half-life was committed, answered INTERNAL, and the server then
    could not start (TypeError in engagement.score)."""
    server = start_server(score_half_life_h=24, pool_min_impressions=1, max_event_count=10**9, **stack)
    server.ingest(clips["fox"], "fox")
    future = (datetime.now(timezone.utc) + timedelta(days=3)).isoformat()
    events = [
        pb.EngagementEvent(event_id="naive", video_id="fox", impressions=10, at="2026-01-01"),
        pb.EngagementEvent(event_id="naive-time", video_id="fox", impressions=10, at="2026-01-01T10:00:00"),
        pb.EngagementEvent(event_id="nan", video_id="fox", impressions=10, watch_time_s=float("nan")),
        pb.EngagementEvent(event_id="inf", video_id="fox", impressions=10, watch_time_s=float("inf")),
        pb.EngagementEvent(event_id="huge", video_id="fox", impressions=2**63 - 1),
        pb.EngagementEvent(event_id="future", video_id="fox", impressions=10, at=future),
        pb.EngagementEvent(event_id="ok", video_id="fox", impressions=100, likes=5, at="2026-11-20T12:00:00+02:00"),
    ]
    r = server.stub.RecordEngagement(iter(events), timeout=30)
    reasons = {x.event_id: x.reason for x in r.rejected}
    assert r.accepted == 1 and set(reasons) == {"naive", "naive-time", "nan", "inf", "huge", "future"}
    assert "RFC 3339" in reasons["naive"] and "zone" in reasons["naive-time"]
    assert "finite" in reasons["nan"] and "finite" in reasons["inf"]
    assert "max_event_count" in reasons["huge"] and "max_event_future_s" in reasons["future"]
    perf = server.stub.GetVideo(pb.GetVideoRequest(video_id="fox"), timeout=10).performance
    assert perf.impressions == 100 and perf.last_event_at == "2026-11-20T10:00:00.000Z"  # normalised to UTC
    retry = server.stub.RecordEngagement(iter(events[:1]), timeout=30)  # a retry of a rejected event: rejected again
    assert (retry.accepted, retry.duplicates, len(retry.rejected)) == (0, 0, 1)
    settings = server.settings
    server.stop()
    again = start_server(**{k: getattr(settings, k) for k in ("score_half_life_h", "pool_min_impressions", "data_dir")},
                         **stack)
    assert again.stub.GetVideo(pb.GetVideoRequest(video_id="fox"), timeout=10).performance.impressions == 100


def test_a_store_holding_odd_but_valid_rows_still_starts(start_server, clips):
    """Rows an older version could have written: naive and unreadable times, counters that overflowed into
    floats, a huge watch time. The server starts on them with a half-life set, and scores stay finite."""
    server = start_server()
    for name in ("fox", "coffee", "rocket"):
        server.ingest(clips[name], name)
    data_dir = server.settings.data_dir
    server.stop()
    conn = sqlite3.connect(data_dir / "coldopen.sqlite3")
    rows = [r[0] for r in conn.execute("SELECT video_id FROM videos")]
    conn.executemany(
        "INSERT INTO engagement (video_id, impressions, likes, shares, watch_time_s, last_event_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            ("fox", 1000, 50, 0, 0.0, "2026-01-01T00:00:00"),        # no zone
            ("coffee", 9.3e18, 1e300, 0, 1e308, "yesterday"),        # overflowed counters, unreadable time
            ("rocket", 2000, 10, 5, 1e9, ""),                        # never-set time
        ],
    )
    conn.execute("INSERT INTO engagement_events (event_id, video_id, at) VALUES ('old', 'fox', '2026-01-01')")
    conn.commit()
    conn.close()
    again = start_server(score_half_life_h=24, pool_min_impressions=1)
    perf = {v: again.stub.GetVideo(pb.GetVideoRequest(video_id=v), timeout=10).performance for v in rows}
    assert all(np.isfinite(p.score) for p in perf.values())
    r = again.stub.RecordEngagement(iter([pb.EngagementEvent(event_id="new", video_id="rocket", impressions=1)]), timeout=30)
    assert r.accepted == 1


def test_stored_times_are_read_leniently():
    assert engagement.stored_time("2026-01-01T00:00:00").tzinfo is not None
    assert engagement.stored_time("yesterday") is None


# --- 3. streams and threads ---------------------------------------------------------------------
@pytest.mark.parametrize("rpc", ["RecordEngagement", "RouteById", "SoundById"])
def test_every_stream_has_the_idle_timeout(start_server, clips, rpc):
    """Before: RecordEngagement and Route/SearchBySound by video_id held a stream until the client's own deadline."""
    server = start_server(upload_idle_timeout_s=1.0)
    server.ingest(clips["fox"], "fox")
    first = {
        "RecordEngagement": pb.EngagementEvent(event_id="e", video_id="fox", impressions=1),
        "RouteById": pb.RouteRequest(query=pb.RouteQuery(video_id="fox")),
        "SoundById": pb.SoundSearchRequest(query=pb.SoundQuery(video_id="fox")),
    }[rpc]
    call = {"RecordEngagement": server.stub.RecordEngagement, "RouteById": server.stub.Route,
            "SoundById": server.stub.SearchBySound}[rpc]
    release = threading.Event()

    def quiet():
        yield first
        release.wait(30)  # sends one message, then goes quiet without closing the stream

    started = time.monotonic()
    err = _rpc_error(call, quiet(), timeout=30)
    release.set()
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "upload_idle_timeout_s" in err.details()
    assert time.monotonic() - started < 10


def test_health_and_searches_answer_while_64_idle_streams_hold_their_threads(start_server, clips):
    """Before: health shared the one worker pool with every stream, so idle streams could starve it."""
    server = start_server(max_open_streams=64, max_streams_per_caller=64, max_concurrent_ingests=2, grpc_workers=4)
    server.ingest(clips["fox"], "fox")
    health = health_pb2_grpc.HealthStub(server.channel)
    release = threading.Event()
    opened = threading.Semaphore(0)

    def idle():
        yield pb.EngagementEvent(event_id="idle", video_id="fox", impressions=1)
        opened.release()
        release.wait(60)

    futures = [server.stub.RecordEngagement.future(idle(), timeout=60) for _ in range(64)]
    try:
        for _ in range(64):
            assert opened.acquire(timeout=30)
        time.sleep(0.5)
        refused = _rpc_error(server.stub.RecordEngagement, iter([pb.EngagementEvent(event_id="x", video_id="fox",
                                                                                     impressions=1)]), timeout=10)
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_open_streams" in refused.details()
        t = time.perf_counter()
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        health_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        hits = server.stub.Search(pb.SearchRequest(text="anything", k=1), timeout=5)
        search_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        services = ProtoReflectionDescriptorDatabase(server.channel).get_services()
        reflection_ms = (time.perf_counter() - t) * 1000
    finally:
        release.set()
    for f in futures:
        f.result(timeout=30)
    print(f"\n64 idle streams open: health answered in {health_ms:.1f} ms, a search in {search_ms:.1f} ms, "
          f"reflection in {reflection_ms:.1f} ms")
    assert status == health_pb2.HealthCheckResponse.SERVING and health_ms < 1000
    assert "coldopen.v1.ContentIndex" in services and reflection_ms < 1000
    assert hits.index_size == 1 and search_ms < 1000


def test_caller_key_is_the_token_name_or_a_trusted_proxy_header():
    streams = CallerStreams(total=10, per_caller=1, key_header="x-forwarded-for")
    behind_proxy = "ipv4:10.0.0.1:5555"
    a = (("x-forwarded-for", "203.0.113.7, 10.0.0.1"),)
    b = (("x-forwarded-for", "198.51.100.2"),)
    with streams.hold(ANONYMOUS, behind_proxy, a), streams.hold(ANONYMOUS, behind_proxy, b):
        with pytest.raises(Overloaded, match="max_streams_per_caller"):
            with streams.hold(ANONYMOUS, behind_proxy, a):
                pass
    ranker = Caller("ranker-1", frozenset({"reader"}))
    assert streams.key(ranker, behind_proxy, a) == "token:ranker-1"
    assert CallerStreams(10, 1).key(ANONYMOUS, behind_proxy, a) == "peer:ipv4:10.0.0.1"  # header off by default
    few = CallerStreams(total=1, per_caller=1)
    with few.hold(ANONYMOUS, "ipv4:1.1.1.1:1"):
        with pytest.raises(Overloaded, match="max_open_streams"):
            with few.hold(ANONYMOUS, "ipv4:2.2.2.2:1"):
                pass


def test_engagement_streams_are_applied_in_batches_up_to_a_cap(start_server, clips, stack):
    server = start_server(max_events_per_stream=5, **stack)
    server.ingest(clips["fox"], "fox")
    events = [pb.EngagementEvent(event_id=f"e{i}", video_id="fox", impressions=1) for i in range(7)]
    err = _rpc_error(server.stub.RecordEngagement, iter(events), timeout=30)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_events_per_stream" in err.details()
    assert server.stub.GetVideo(pb.GetVideoRequest(video_id="fox"), timeout=10).performance.impressions == 5
    r = server.stub.RecordEngagement(iter(events[3:]), timeout=30)  # the rest, re-sending two: counted once
    assert (r.accepted, r.duplicates) == (2, 2)


# --- 4. bounded metadata ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "meta, setting",
    [
        ({"creator_id": "c" * 257}, "max_creator_id_chars"),
        ({"hashtags": [f"t{i}" for i in range(31)]}, "max_hashtags"),
        ({"hashtags": ["x" * 101]}, "max_hashtag_chars"),
        ({"caption": "y" * 5001}, "max_caption_chars"),
    ],
)
def test_metadata_is_bounded_and_each_refusal_names_its_limit(start_server, clips, meta, setting):
    server = start_server()
    err = _rpc_error(server.ingest, clips["fox"], "fox", **meta)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and setting in err.details()
    err = _rpc_error(server.stub.Route, route_upload(clips["fox"].read_bytes(), **meta), timeout=30)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and setting in err.details()


# --- 5. bounded decode --------------------------------------------------------------------------
def test_frames_are_shrunk_as_they_are_decoded(clips):
    info = media.probe(clips["fox"])
    for mode in ("uniform", "keyframes"):
        sampled, _ = media.sample(clips["fox"], info, mode, 1.0, 64, short_side=90)
        assert {min(f.shape[:2]) for f in sampled.frames} == {90}
        assert (sampled.width, sampled.height) == (320, 180)  # the clip's own size is still reported


def test_auto_sampling_never_decodes_more_than_max_decoded_frames(tmp_path):
    path = mediagen.make_clip(tmp_path / "sparse.mp4", "coffee", seconds=6, size=(320, 180), fps=12, gop=72)
    info = media.probe(path)
    assert media.sample(path, info, "auto", 1.0, 64)[1] == "uniform"  # 72 frames: within the default budget
    frames, used = media.sample(path, info, "auto", 1.0, 64, max_decoded=50)
    assert used == "keyframes" and len(frames.frames) >= 1


def test_a_decode_past_its_deadline_frees_its_worker(clips):
    pool = DecodePool(1)
    try:
        pool.warm_up()
        job = DecodeJob(str(clips["fox"]), "uniform", 30.0, 1000, 0, deadline=time.monotonic() - 1)
        with pytest.raises(DeadlineExceeded, match="rpc_deadline_s"):
            pool.decode(job, timeout=30)  # the worker gives up on its own at its first deadline check
        fine = DecodeJob(str(clips["fox"]), "uniform", 1.0, 64, 0)
        assert len(pool.decode(fine, timeout=30).frames.frames) == 5  # and is free for the next upload
    finally:
        pool.close()


def test_batched_work_of_a_request_past_its_deadline_is_dropped():
    seen: list[str] = []
    gate = threading.Event()

    def model(items):
        gate.wait(10)
        seen.extend(items)
        return items

    b = Batcher("slow", model, max_batch=2, max_wait_s=0.0, max_queue=16)
    try:
        first = b.enqueue(["a1", "a2"])  # occupies the worker
        time.sleep(0.2)
        late = b.enqueue(["b1", "b2", "b3"])
        with pytest.raises(TimeoutError):
            late.result(timeout=0.1)
        gate.set()
        assert first.result(5)[0] == ["a1", "a2"]
        time.sleep(0.3)
        assert seen == ["a1", "a2"] and b.stats().queued == 0 and b.dropped == 1
    finally:
        gate.set()
        b.close()


# --- 6. data-dir lock and settings checked at start ------------------------------------------------
def test_a_second_service_on_the_same_data_dir_is_refused_with_the_holders_pid(start_server, models):
    import os

    server = start_server()
    with pytest.raises(DataDirLocked, match=f"pid {os.getpid()}"):
        ColdOpenService.open(server.settings, models)
    assert server.stub.Search(pb.SearchRequest(text="still fine", k=1), timeout=10).index_size == 0


def test_max_frames_beyond_the_clip_queue_fails_at_start(models, base_settings, tmp_path):
    settings = base_settings.replace(data_dir=tmp_path / "d", max_frames=10_000)
    with pytest.raises(ValueError, match="max_frames=10000 needs 10000 clip items"):
        ColdOpenService.open(settings, models)
    service = ColdOpenService.open(settings.replace(max_frames=64), models)  # the lock was released
    service.close()
