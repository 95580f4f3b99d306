"""Every bad input gets a precise status and message; the server keeps serving and stored data is untouched."""

from __future__ import annotations

import contextlib
import threading
import time

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coldopen.config.settings import MAX_CHUNK_BYTES
from coldopen.v1 import coldopen_pb2 as pb
from testkit import mediagen
from tests.conftest import upload

pytestmark = pytest.mark.slow

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _code_and_details(call):
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details()


@pytest.fixture
def server_with_video(start_server, clips):
    server = start_server(max_upload_bytes=1_000_000)
    server.ingest(clips["fox"], "fox", caption="keep me")
    before = server.stub.GetVideo(pb.GetVideoRequest(video_id="fox", include_embeddings=True))
    yield server, before
    # Whatever was thrown at it, the server still serves and the stored video is unchanged.
    health = health_pb2_grpc.HealthStub(server.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    assert server.stub.GetVideo(pb.GetVideoRequest(video_id="fox", include_embeddings=True)) == before
    reply = server.stub.Search(pb.SearchRequest(text="anything", k=10))
    assert [n.video_id for n in reply.neighbours] == ["fox"] and reply.index_size == 1


def _first_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _png_bytes() -> bytes:
    ok, buf = cv2.imencode(".png", mediagen.photo("astronaut"))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    "name, make, expected",
    [
        ("empty upload", lambda clips, tmp: b"", "is empty (0 bytes)"),
        ("random bytes", lambda clips, tmp: np.random.default_rng(0).bytes(50_000), "not a readable media file"),
        ("png renamed .mp4", lambda clips, tmp: _png_bytes(), "still image"),
        (
            "truncated mp4",
            lambda clips, tmp: clips["fox"].read_bytes()[: clips["fox"].stat().st_size * 6 // 10],
            "not a readable media file",
        ),
        (
            "truncated faststart mp4",
            lambda clips, tmp: _first_half(mediagen.make_clip(tmp / "fs.mp4", "rocket", seconds=8, faststart=True).read_bytes()),
            "truncated",
        ),
        (
            "audio only",
            lambda clips, tmp: mediagen.write_audio_only(tmp / "a.m4a", mediagen.speech("fox")[0], 16000).read_bytes(),
            "audio-only",
        ),
        ("text file", lambda clips, tmp: b"hello, this is not a video\n" * 100, "not a readable media file"),
    ],
)
def test_bad_files_are_rejected_with_invalid_argument(server_with_video, clips, tmp_path, name, make, expected):
    server, _ = server_with_video
    data = make(clips, tmp_path)
    code, details = _code_and_details(lambda: server.stub.Ingest(upload(data, "fox")))
    assert code == INVALID, (name, details)
    assert expected in details, (name, details)


def test_protocol_errors(server_with_video, clips):
    server, _ = server_with_video
    data = clips["coffee"].read_bytes()
    cases = {
        "no messages at all": (iter([]), "stream is empty"),
        "missing video_id": (upload(data, ""), "video_id is missing"),
        "whitespace in video_id": (upload(data, "a b"), "is invalid"),
        "chunk before metadata": (iter([pb.IngestRequest(chunk=data[:1000])]), "chunk arrived before it"),
        "metadata twice": (
            iter([pb.IngestRequest(metadata=pb.VideoMetadata(video_id="x"))] * 2),
            "metadata may be sent only once",
        ),
        "chunk over 1 MiB": (
            iter(
                [pb.IngestRequest(metadata=pb.VideoMetadata(video_id="x")), pb.IngestRequest(chunk=b"0" * (MAX_CHUNK_BYTES + 1))]
            ),
            "1 MiB chunk limit",
        ),
        "bad language hint": (upload(data, "x", language_hint="english please"), "not an ISO 639-1 code"),
    }
    for name, (requests, expected) in cases.items():
        code, details = _code_and_details(lambda requests=requests: server.stub.Ingest(requests))
        assert code == INVALID and expected in details, (name, code, details)


def test_oversized_upload_is_resource_exhausted(server_with_video, clips):
    server, _ = server_with_video
    big = clips["fox"].read_bytes() * 15  # over the 1 MB limit of this server
    code, details = _code_and_details(lambda: server.stub.Ingest(upload(big, "fox")))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max upload size of 1.0 MB" in details


def test_unknown_ids_are_not_found(server_with_video):
    server, _ = server_with_video
    for call in (
        lambda: server.stub.GetVideo(pb.GetVideoRequest(video_id="nope")),
        lambda: server.stub.DeleteVideo(pb.DeleteVideoRequest(video_id="nope")),
        lambda: server.stub.Search(pb.SearchRequest(video_id="nope")),
    ):
        code, details = _code_and_details(call)
        assert code == grpc.StatusCode.NOT_FOUND and "'nope'" in details


def test_bad_queries_are_invalid_argument(server_with_video, models):
    server, _ = server_with_video
    cases = {
        "no query": (pb.SearchRequest(k=3), "exactly one of"),
        "k too large": (pb.SearchRequest(text="x", k=5000), "out of range"),
        "negative k": (pb.SearchRequest(text="x", k=-1), "out of range"),
        "empty text": (pb.SearchRequest(text="   "), "empty"),
        "wrong dimension": (pb.SearchRequest(embedding=pb.EmbeddingQuery(values=[0.1] * 7)), "has 7 values"),
        "zero vector": (pb.SearchRequest(embedding=pb.EmbeddingQuery(values=[0.0] * models.clip.dim)), "non-zero"),
        "empty id": (pb.SearchRequest(video_id=""), "video_id is missing"),
    }
    for name, (request, expected) in cases.items():
        code, details = _code_and_details(lambda request=request: server.stub.Search(request))
        assert code == INVALID and expected in details, (name, code, details)
    code, details = _code_and_details(lambda: server.stub.GetVideo(pb.GetVideoRequest(video_id="")))
    assert code == INVALID


@contextlib.contextmanager
def _slow_upload_in_flight(server, data: bytes, video_id: str = "slow"):
    """An upload that holds its ingest slot (and stream) until the block ends; yields its future."""
    release = threading.Event()

    def slow_upload():
        yield pb.IngestRequest(metadata=pb.VideoMetadata(video_id=video_id))
        yield pb.IngestRequest(chunk=data[:1000])
        release.wait(120)
        yield pb.IngestRequest(chunk=data[1000:])

    first = server.stub.Ingest.future(slow_upload(), timeout=180)
    try:
        deadline = time.monotonic() + 60
        while server.server.service.ingests_in_flight == 0 and time.monotonic() < deadline and not first.done():
            time.sleep(0.02)
        assert server.server.service.ingests_in_flight == 1, first.exception() if first.done() else "never started"
        yield first
    finally:
        release.set()
    assert first.result().video_id == video_id


def test_too_many_concurrent_uploads_is_resource_exhausted(start_server, clips):
    server = start_server(max_concurrent_ingests=1)
    data = clips["coffee"].read_bytes()
    with _slow_upload_in_flight(server, data):
        # The first stream holds the only slot, so a second upload is turned away.
        code, details = _code_and_details(lambda: server.stub.Ingest(upload(data, "second")))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry" in details, (code, details)
    assert server.ingest(clips["coffee"], "second").video_id == "second"


def _corrupt_middle(data: bytes) -> bytes:
    """Overwrite 2% of the bytes in the middle half of the file (audio and video packets) with noise."""
    rng = np.random.default_rng(3)
    out = bytearray(data)
    idx = rng.integers(len(data) // 4, 3 * len(data) // 4, len(data) // 50)
    out_idx = np.asarray(idx)
    for i, v in zip(out_idx, rng.integers(0, 256, len(out_idx))):
        out[int(i)] = int(v)
    return bytes(out)


@pytest.mark.parametrize(
    "name, make, codes, expected",
    [
        (
            "8K frames (decode bomb)",
            lambda clips, tmp: mediagen.write_clip(tmp / "8k.mp4", [np.full((4320, 7680, 3), 128, np.uint8)], fps=1),
            {INVALID},
            "max_pixels",
        ),
        (
            "2-hour duration in a 2 KB file",
            lambda clips, tmp: mediagen.write_clip(
                tmp / "long.mp4", [np.zeros((64, 64, 3), np.uint8)] * 2, fps=1, frame_times=[0.0, 7200.0]
            ),
            {INVALID},
            "max_duration_s",
        ),
        (
            "1 MHz audio sample rate",
            lambda clips, tmp: mediagen.weird_audio_clip(tmp / "rate.mkv", 1_000_000, 1),
            {INVALID},
            "max_audio_sample_rate",
        ),
        (
            "24 audio channels",
            lambda clips, tmp: mediagen.weird_audio_clip(tmp / "ch.mkv", 16000, 24),
            {INVALID},
            "max_audio_channels",
        ),
        (
            "one frame, no audio",
            lambda clips, tmp: mediagen.write_clip(tmp / "one.mp4", [mediagen.photo("coffee")[:240, :320]], fps=1),
            {grpc.StatusCode.OK},
            "",
        ),
        (
            "zip archive named .mp4",
            lambda clips, tmp: b"PK\x03\x04" + np.random.default_rng(1).bytes(20_000),
            {INVALID},
            "not a readable media file",
        ),
        # Damaged packets may still decode (decoders conceal errors) or be refused; either is fine, a crash is not.
        (
            "corrupt audio and video packets",
            lambda clips, tmp: _corrupt_middle(clips["fox"].read_bytes()),
            {INVALID, grpc.StatusCode.OK},
            "",
        ),
    ],
)
def test_hostile_media_is_refused_before_decoding_and_names_the_limit(
    server_with_video, clips, tmp_path, name, make, codes, expected
):
    server, _ = server_with_video
    made = make(clips, tmp_path)
    data = made.read_bytes() if hasattr(made, "read_bytes") else made
    try:
        server.stub.Ingest(upload(data, "hostile"), timeout=120)
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        code, details = e.code(), e.details()
    assert code in codes and expected in details, (name, code, details)
    if code == grpc.StatusCode.OK:
        server.stub.DeleteVideo(pb.DeleteVideoRequest(video_id="hostile"))


def test_client_that_stops_sending_mid_upload_gets_deadline_exceeded(start_server, clips):
    server = start_server(upload_idle_timeout_s=1.0)
    data = clips["coffee"].read_bytes()
    stalled = threading.Event()

    def stalling():
        yield pb.IngestRequest(metadata=pb.VideoMetadata(video_id="stall"))
        yield pb.IngestRequest(chunk=data[:1000])
        stalled.wait(30)  # the client goes quiet without closing the stream

    try:
        code, details = _code_and_details(lambda: server.stub.Ingest(stalling(), timeout=60))
    finally:
        stalled.set()
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "upload_idle_timeout_s" in details, details
    # the slot was given back and nothing was stored
    assert server.server.service.ingests_in_flight == 0
    code, _ = _code_and_details(lambda: server.stub.GetVideo(pb.GetVideoRequest(video_id="stall")))
    assert code == grpc.StatusCode.NOT_FOUND
    assert server.ingest(clips["coffee"], "after").video_id == "after"


def test_processing_past_the_server_deadline_is_deadline_exceeded(start_server, clips):
    server = start_server(rpc_deadline_s=0.05)
    code, details = _code_and_details(lambda: server.ingest(clips["fox"], "late"))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "rpc_deadline_s" in details, details
    code, _ = _code_and_details(lambda: server.stub.GetVideo(pb.GetVideoRequest(video_id="late")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_concurrent_streams_per_caller_are_limited_with_a_retry_pushback(start_server, clips):
    server = start_server(max_streams_per_caller=1, max_concurrent_ingests=2)
    data = clips["coffee"].read_bytes()
    with _slow_upload_in_flight(server, data):
        with pytest.raises(grpc.RpcError) as e:
            server.stub.Ingest(upload(data, "second"), timeout=60)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_streams_per_caller" in e.value.details()
        assert ("grpc-retry-pushback-ms", "1000") in tuple(e.value.trailing_metadata())


def test_odd_route_weights_and_sound_ids_are_invalid_argument(server_with_video):
    """Weights must be finite and non-negative (+inf once answered OK with NaN scores, NaN was read as 0);
    sound ids parse strictly (ASCII digits, bounded length: 'snd-²' and 'snd-١' are not ids, 20 digits
    overflowed into INTERNAL)."""
    server, _ = server_with_video
    video_id = "fox"
    for weights, expected in (
        (pb.RouteWeights(sound=float("inf")), "finite"),
        (pb.RouteWeights(visual=float("nan")), "finite"),
        (pb.RouteWeights(caption=-0.5), "at least 0"),
        (pb.RouteWeights(visual=0, spoken=0, caption=0, sound=0), "weighted 0"),
    ):
        request = pb.RouteRequest(query=pb.RouteQuery(video_id=video_id, k=3, weights=weights))
        code, details = _code_and_details(lambda request=request: server.stub.Route(iter([request])))
        assert code == INVALID and expected in details, (weights, code, details)
    for sound_id in ("snd-99999999999999999999999", "snd-" + "9" * 5000, "snd-\u00b2", "snd-\u0661", "snd-", "42", ""):
        code, details = _code_and_details(lambda s=sound_id: server.stub.GetSound(pb.GetSoundRequest(sound_id=s)))
        assert code == INVALID and "snd-42" in details and "9" * 100 not in details, (sound_id, code, details)
