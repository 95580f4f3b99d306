"""End to end over a real gRPC server: ingest real clips, search, get, delete, restart."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from coldopen.v1 import coldopen_pb2 as pb
from tests.conftest import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def populated(models, base_settings, clips, tmp_path_factory, module_stack):
    """One server per catalog stack with every test clip ingested (read-only tests share it)."""
    server = RunningServer(
        base_settings.replace(data_dir=tmp_path_factory.mktemp("populated"), **module_stack), models
    )
    replies = {
        name: server.ingest(path, name, creator_id=f"creator-{name}", caption=f"about {name}", hashtags=["#test", name])
        for name, path in clips.items()
    }
    yield server, replies
    server.stop()


def test_ingest_reports_what_was_extracted(populated, models):
    _, replies = populated
    r = replies["fox"]
    e = r.extraction
    assert r.video_id == "fox" and not r.replaced and r.bytes_received > 10_000
    assert e.media.duration_s == pytest.approx(5.0, abs=0.1)
    assert (e.media.width, e.media.height) == (320, 180)
    assert e.media.has_audio and e.media.video_codec == "h264" and e.media.audio_codec == "aac"
    # 1 fps over 5 s; the clip pans across a photograph, and a pan of up to a fifth of the frame since the last
    # embedded frame is undone and skipped (engine/repeats.py): the first frame and at least one more embedded
    assert 2 <= e.frames_sampled <= 5 and e.frames_sampled + e.frames_skipped == 5
    stored = populated[0].stub.GetVideo(pb.GetVideoRequest(video_id="fox")).extraction  # the same answer later
    assert (stored.frames_sampled, stored.frames_skipped, stored.sampling) == (e.frames_sampled, e.frames_skipped, e.sampling)
    assert e.sampling == "uniform"  # 12 fps with one keyframe: auto sampling decodes every frame
    assert e.embedding_dim == models.clip.dim and e.embedding_model == models.clip.name
    stages = {t.stage for t in e.timings}
    assert {"receive", "probe", "decode_frames", "embed_frames", "decode_audio", "transcribe", "store", "index"} <= stages
    assert all(t.ms >= 0 for t in e.timings)
    # Each model stage's own time (its batches), not the time since the models were queued: the quick
    # fingerprint does not repeat Whisper's time; queue waits and batch sizes are reported apart.
    ms = {t.stage: t.ms for t in e.timings}
    assert ms["fingerprint"] < ms["transcribe"] and not any(s.endswith("_batch") for s in ms)
    assert {w.stage for w in e.queue_wait} == {b.stage for b in e.batches} == {"embed_frames", "transcribe", "fingerprint"}
    assert all(b.mean >= 1 for b in e.batches) and all(w.ms >= 0 for w in e.queue_wait)
    # ... and GetVideo reads them back as stored (before the store and index stages had run).
    got = populated[0].stub.GetVideo(pb.GetVideoRequest(video_id="fox")).extraction
    assert {t.stage: t.ms for t in got.timings}.items() <= ms.items() and "transcribe" in {t.stage for t in got.timings}
    assert list(got.queue_wait) == list(e.queue_wait)
    assert list(got.batches) == list(e.batches)


def test_transcript_contains_the_spoken_words(populated):
    _, replies = populated
    t = replies["fox"].extraction.transcript
    words = t.text.lower()
    assert "fox" in words and "dog" in words and "lazy" in words
    assert t.language == "en" and t.segments
    seg = t.segments[0]
    assert 0 <= seg.start_s < seg.end_s <= 5.1
    assert seg.avg_logprob < 0 and 0 <= seg.no_speech_prob <= 1 and seg.compression_ratio > 0
    assert "coffee" in replies["coffee"].extraction.transcript.text.lower()


def test_clip_without_audio_is_valid_and_has_no_transcript(populated):
    _, replies = populated
    e = replies["cat"].extraction
    assert not e.media.has_audio and e.transcript.text == "" and not e.transcript.segments
    assert (e.media.width, e.media.height) == (240, 320)
    assert "transcribe" not in {t.stage for t in e.timings}


def test_reencoded_resized_copy_is_the_top_neighbour(populated):
    server, _ = populated
    reply = server.stub.Search(pb.SearchRequest(video_id="fox_copy", k=3))
    assert reply.neighbours[0].video_id == "fox"
    assert reply.neighbours[0].score > reply.neighbours[1].score
    reply = server.stub.Search(pb.SearchRequest(video_id="fox", k=3))
    assert reply.neighbours[0].video_id == "fox_copy"


def test_search_by_video_never_returns_itself(populated):
    server, replies = populated
    for name in replies:
        reply = server.stub.Search(pb.SearchRequest(video_id=name, k=100))
        ids = [n.video_id for n in reply.neighbours]
        assert name not in ids and len(ids) == len(replies) - 1
        scores = [n.score for n in reply.neighbours]
        assert scores == sorted(scores, reverse=True)


def test_text_search_end_to_end(populated):
    server, replies = populated
    reply = server.stub.Search(pb.SearchRequest(text="a cup of coffee on a table", k=3))
    assert len(reply.neighbours) == 3 and reply.index_size == len(replies)
    assert {n.video_id for n in reply.neighbours} <= set(replies)
    assert all(-1.0 <= n.score <= 1.0 for n in reply.neighbours)
    n = reply.neighbours[0]
    assert n.creator_id == f"creator-{n.video_id}" and n.caption == f"about {n.video_id}"


def test_get_video_returns_embeddings_and_search_by_raw_embedding(populated, models):
    server, _ = populated
    video = server.stub.GetVideo(pb.GetVideoRequest(video_id="rocket", include_embeddings=True))
    assert video.metadata.creator_id == "creator-rocket" and list(video.metadata.hashtags) == ["test", "rocket"]
    assert "rocket" in video.extraction.transcript.text.lower() and video.ingested_at.endswith("Z")
    emb = np.array(video.embedding)
    assert emb.shape == (models.clip.dim,) and np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-4)
    # 1 fps over 5 s, a slow pan's near-repeats skipped: the clip pans ~6% of the frame a second, so frames 1-3
    # are skipped and frame 4 (~20% away, at the limit: either way) may be too
    times = [f.t_s for f in video.frames]
    assert times[0] == pytest.approx(0, abs=0.1)
    assert all(any(t == pytest.approx(s, abs=0.1) for s in range(5)) for t in times)
    frames = np.array([f.values for f in video.frames])
    # each embedded frame counts for the seconds it stands for: until the next embedded one, the last until 5 s
    weights = np.diff([*times, 5.0])
    mean = (frames * weights[:, None]).sum(axis=0)
    # frames are kept as fp16 by default (--frame-embeddings; fp32 is exact, tests/test_storage.py)
    assert np.allclose(emb, mean / np.linalg.norm(mean), atol=1e-3)
    # A raw embedding query (scaled: the server normalises) finds the video it came from first.
    reply = server.stub.Search(pb.SearchRequest(embedding=pb.EmbeddingQuery(values=(emb * 3).tolist()), k=2))
    assert reply.neighbours[0].video_id == "rocket" and reply.neighbours[0].score == pytest.approx(1.0, abs=1e-4)
    plain = server.stub.GetVideo(pb.GetVideoRequest(video_id="rocket"))
    assert not plain.embedding and not plain.frames


def test_reingest_replaces_atomically(start_server, clips, stack):
    server = start_server(**stack)
    server.ingest(clips["fox"], "v1", caption="first")
    server.ingest(clips["coffee"], "other")
    r = server.ingest(clips["rocket"], "v1", caption="second")
    assert r.replaced
    video = server.stub.GetVideo(pb.GetVideoRequest(video_id="v1"))
    assert video.metadata.caption == "second" and "rocket" in video.extraction.transcript.text.lower()
    reply = server.stub.Search(pb.SearchRequest(video_id="other", k=10))
    assert [n.video_id for n in reply.neighbours] == ["v1"] and reply.index_size == 2


def test_delete_removes_everywhere_and_restart_brings_back_what_was_acknowledged(start_server, clips, tmp_path, stack):
    server = start_server(**stack)
    for name in ("fox", "coffee", "rocket", "cat"):
        server.ingest(clips[name], name)
    server.stub.DeleteVideo(pb.DeleteVideoRequest(video_id="coffee"))
    with pytest.raises(grpc.RpcError) as e:
        server.stub.GetVideo(pb.GetVideoRequest(video_id="coffee"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    for q in (pb.SearchRequest(video_id="fox", k=10), pb.SearchRequest(text="coffee", k=10)):
        assert "coffee" not in [n.video_id for n in server.stub.Search(q).neighbours]
    before = {n: server.stub.GetVideo(pb.GetVideoRequest(video_id=n, include_embeddings=True)) for n in ("fox", "rocket", "cat")}
    ranking = [(n.video_id, n.score) for n in server.stub.Search(pb.SearchRequest(video_id="fox", k=10)).neighbours]
    server.stop()

    restarted = start_server(data_dir=tmp_path / "data", **stack)
    for name, video in before.items():
        assert restarted.stub.GetVideo(pb.GetVideoRequest(video_id=name, include_embeddings=True)) == video
    again = [(n.video_id, n.score) for n in restarted.stub.Search(pb.SearchRequest(video_id="fox", k=10)).neighbours]
    assert [v for v, _ in again] == [v for v, _ in ranking]
    assert [s for _, s in again] == pytest.approx([s for _, s in ranking], abs=1e-6)
    with pytest.raises(grpc.RpcError) as e:
        restarted.stub.GetVideo(pb.GetVideoRequest(video_id="coffee"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # A deleted id can be ingested again and is then a new, searchable video.
    restarted.ingest(clips["coffee"], "coffee")
    assert "coffee" in [n.video_id for n in restarted.stub.Search(pb.SearchRequest(video_id="fox", k=10)).neighbours]


def test_health_reflection_and_not_ready(base_settings, tmp_path):
    from coldopen.api.server import create_server

    server = create_server(base_settings.replace(data_dir=tmp_path)).start()
    try:
        channel = grpc.insecure_channel(server.address)
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="")).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        from coldopen.v1 import coldopen_pb2_grpc

        stub = coldopen_pb2_grpc.ContentIndexStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            stub.Search(pb.SearchRequest(text="anything"))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "loading" in e.value.details()
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        reply = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in reply.list_services_response.service}
        assert {"coldopen.v1.ContentIndex", "grpc.health.v1.Health"} <= names
        channel.close()
    finally:
        server.stop(grace=0)


def test_health_is_serving_once_ready(start_server):
    server = start_server()
    health = health_pb2_grpc.HealthStub(server.channel)
    for name in ("", "coldopen.v1.ContentIndex"):
        assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
