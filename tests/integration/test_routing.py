"""Cold-start routing on a small synthetic world: the bar, the reasons, the options."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest

from coldopen.api.client import Client
from coldopen.ranking import routing
from coldopen.v1 import coldopen_pb2 as pb
from testkit import routeworld

pytestmark = pytest.mark.slow

K = 5


@pytest.fixture(scope="module")
def world(models, base_settings, tmp_path_factory):
    from tests.conftest import RunningServer

    folder = tmp_path_factory.mktemp("world")
    corpus, queries = routeworld.make_world(folder / "clips", performers=6, low=3, queries=1, seed=1)
    # Pool: at least 1,000 impressions and above the 35th percentile by score: a third of the world
    # performs badly, so the pool should be exactly the performers.
    settings = base_settings.replace(data_dir=folder / "data", pool_min_impressions=1000, pool_percentile=35.0)
    server = RunningServer(settings, models)
    client = Client(server.server.address)
    routeworld.load(client, corpus)
    yield server, client, corpus, queries
    client.close()
    server.stop()


def test_precision_bar_and_no_low_performers(world):
    _, client, corpus, queries = world
    table = routeworld.evaluate(client, corpus, queries, K)
    best = table["all modalities"]
    assert best["precision_at_k"] >= 0.8, table
    # z-scored fusion is never worse than its best single modality here
    singles = [row["precision_at_k"] for name, row in table.items() if name.endswith(" only")]
    assert best["precision_at_k"] >= max(singles), table
    assert all(row["low_performers_returned"] == 0 for row in table.values()), table


def test_route_explains_neighbours_and_gives_a_prior(world):
    server, client, corpus, queries = world
    q = next(v for v in queries if v.topic == "coffee")
    r = client.route(path=q.path, metadata={"creator_id": q.creator_id, "caption": q.caption, "hashtags": q.hashtags}, k=K)
    assert int(r["pool_size"]) == 6 * 6
    for n in r["neighbours"]:
        assert sum(n["contributions"].values()) == pytest.approx(n["score"], abs=1e-6)
        assert n["performance"] > 0
    assert any(n["contributions"]["sound"] > 0 for n in r["neighbours"])  # the coffee song is shared
    performers = [server.stub.GetVideo(pb.GetVideoRequest(video_id=n["video_id"])).performance.score for n in r["neighbours"]]
    assert min(performers) <= r["prior"] <= max(performers) and r["prior_uncertainty"] >= 0
    assert not server.stub.Search(pb.SearchRequest(text="x", k=1)).neighbours[0].video_id.startswith("coffee-new")  # not stored


def test_route_options(world):
    server, client, corpus, _ = world
    by_id = {v.video_id: v for v in corpus}
    r = client.route(video_id="cats-00", k=10, exclude_same_creator=True)
    assert "cats-00" not in [n["video_id"] for n in r["neighbours"]]
    assert all(n["creator_id"] != by_id["cats-00"].creator_id for n in r["neighbours"])
    r = client.route(video_id="cats-00", k=10, max_per_creator=1)
    creators = [n["creator_id"] for n in r["neighbours"]]
    assert len(creators) == len(set(creators))
    r = client.route(video_id="moto-01", k=10, max_per_sound=1, weights={"sound": 1.0})
    sound_ids = [n["sound_id"] for n in r["neighbours"] if n["sound_id"]]
    assert len(sound_ids) == len(set(sound_ids))
    assert client.route(video_id="cats-00", k=3, language="de")["neighbours"] == []  # every clip speaks English
    with pytest.raises(grpc.RpcError) as e:
        client.route(video_id="cats-00", weights={"visual": 0.0, "spoken": 0.0, "caption": 0.0, "sound": 0.0})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "weighted 0" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        client.route(video_id="nope")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_route_can_store_the_upload(world):
    server, client, _, queries = world
    q = queries[-1]
    r = client.route(path=q.path, metadata={"video_id": "stored-new", "creator_id": q.creator_id}, store=True, k=3)
    assert r["ingested"]["video_id"] == "stored-new" and len(r["neighbours"]) == 3
    assert server.stub.GetVideo(pb.GetVideoRequest(video_id="stored-new")).metadata.creator_id == q.creator_id


def test_text_search_can_target_spoken_or_caption_content(world):
    server, _, corpus, _ = world
    spoken = server.stub.Search(pb.SearchRequest(text="a fast motorbike on the road", k=3, target=pb.TARGET_SPOKEN))
    assert all(n.video_id.startswith("moto") for n in spoken.neighbours), spoken
    caption = server.stub.Search(pb.SearchRequest(text="kitty", k=3, target=pb.TARGET_CAPTION))
    assert all(n.video_id.startswith("cats") for n in caption.neighbours), caption
    by_video = server.stub.Search(pb.SearchRequest(video_id="lab-00", k=3, target=pb.TARGET_SPOKEN, performing_only=True))
    assert all(n.video_id.startswith("lab") for n in by_video.neighbours)


def test_prior_is_weighted_mean_with_uncertainty():
    mean, unc = routing._prior([1.0, 1.0], [0.2, 0.4])
    assert mean == pytest.approx(0.3) and unc == pytest.approx(0.1 / np.sqrt(2))
    assert routing._prior([], []) == (0.0, 0.0)


def test_cli_route_explains(world, capsys):
    from coldopen.cli.main import main

    server, _, _, queries = world
    assert main(["route", "--server", server.server.address, "--video-id", "moto-00", "-k", "3", "--weight", "sound=0.5"]) == 0
    out = capsys.readouterr().out
    assert "pool of 36 performing videos" in out and "content prior: " in out and "1. moto-" in out
    assert main(["route", "--server", server.server.address, "--file", str(queries[0].path), "--json", "-k", "2"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert len(reply["neighbours"]) == 2 and not reply.get("ingested")
    assert main(["route", "--server", server.server.address, "--video-id", "moto-00", "--weight", "loud=1"]) == 2
    assert "unknown modality 'loud'" in capsys.readouterr().err


def test_content_prior_posterior_and_rollout_over_grpc(world, capsys):
    """Route gives a content prior from every video with impressions (calibrated on held-out ones);
    GetVideo shows the prior and the posterior; Rollout widens a performer, stops a low performer and
    holds one whose audience is not spent."""
    from coldopen.cli import main as cli

    server, client, corpus, queries = world
    performer = next(v for v in corpus if v.performs)
    low = next(v for v in corpus if not v.performs)
    r = client.route(video_id=performer.video_id, k=K)
    prior = r["content_prior"]
    assert prior["calibrated"] and prior["calibration_videos"] == len(corpus) and prior["coverage"] == pytest.approx(0.8)
    assert 0 < prior["low"] < prior["mean"] < prior["high"] and prior["neighbours"] > 1

    for video in (performer, low):
        perf = server.stub.GetVideo(pb.GetVideoRequest(video_id=video.video_id)).performance
        assert perf.content_prior.calibrated and perf.content_prior.low < perf.content_prior.high
        assert perf.posterior.low <= perf.posterior.mean <= perf.posterior.high
        s = server.settings
        rate = (s.weight_like * perf.likes + s.weight_comment * perf.comments + s.weight_share * perf.shares
                + s.weight_follow * perf.follows + s.weight_completion * perf.completions) / perf.impressions
        assert perf.posterior.mean == pytest.approx(rate, rel=0.1)  # tens of thousands of impressions decide
        assert (perf.posterior.p_beats_threshold > 0.5) == perf.in_pool

    widen = server.stub.Rollout(pb.RolloutRequest(video_id=performer.video_id, audience=3000))
    assert widen.decision == pb.WIDEN and widen.next_audience == 30000 and widen.p_beats_threshold > 0.5
    assert list(widen.tiers) == [300, 3000, 30000, 300000] and widen.reason
    stop = server.stub.Rollout(pb.RolloutRequest(video_id=low.video_id, audience=3000))
    assert stop.decision == pb.STOP and stop.next_audience == 0 and stop.p_beats_threshold < 0.05
    held = server.stub.Rollout(pb.RolloutRequest(video_id=performer.video_id, audience=10**9))
    assert held.decision == pb.HOLD and held.impressions < held.audience
    with pytest.raises(grpc.RpcError) as e:
        server.stub.Rollout(pb.RolloutRequest(video_id="no-such-video"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        server.stub.Rollout(pb.RolloutRequest(video_id=performer.video_id, audience=-1))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    assert cli.main(["rollout", performer.video_id, "--audience", "3000", "--server", server.server.address]) == 0
    out = capsys.readouterr().out
    assert out.startswith("WIDEN:") and "next audience 30,000" in out and "content prior:" in out


def test_fusion_option(world):
    server, client, corpus, queries = world
    q = queries[0]
    meta = {"creator_id": q.creator_id, "caption": q.caption, "hashtags": q.hashtags}
    raw = client.route(path=q.path, metadata=meta, k=K, fusion="raw")
    for n in raw["neighbours"]:  # raw: contributions are weight x similarity
        assert n["contributions"]["visual"] == pytest.approx(raw["weights"]["visual"] * n["similarities"]["visual"], abs=1e-6)
    with pytest.raises(grpc.RpcError) as e:
        client.route(path=q.path, metadata=meta, k=K, fusion="bogus")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "zscore" in e.value.details()


def test_the_content_prior_is_stored_and_carried_into_the_score(world):
    """An upload stored through Route keeps the content prior it was given; its first engagement is
    smoothed toward that prior (the posterior mean), not toward the corpus mean; a score book rebuilt from
    the catalog (a restart) agrees. Runs last: it adds a video to the module's world."""
    from datetime import datetime, timezone

    from coldopen.ranking import scores as engagement
    from coldopen.ranking.scorebook import ScoreBook
    from coldopen.storage.catalog import open_catalog

    server, client, corpus, queries = world
    q = queries[1]
    meta = {"video_id": "carried", "creator_id": q.creator_id, "caption": q.caption, "hashtags": q.hashtags}
    r = client.route(path=q.path, metadata=meta, store=True, k=K)
    perf = server.stub.GetVideo(pb.GetVideoRequest(video_id="carried")).performance
    assert perf.content_prior.calibrated and perf.content_prior.mean == pytest.approx(r["content_prior"]["mean"])

    assert server.stub.RecordEngagement(iter([pb.EngagementEvent(
        event_id="carried-1", video_id="carried", impressions=300, likes=40, shares=5)])).accepted == 1
    perf = server.stub.GetVideo(pb.GetVideoRequest(video_id="carried")).performance
    assert perf.content_prior.mean == pytest.approx(r["content_prior"]["mean"])  # as stored, not recomputed
    weighted = 40 * server.settings.weight_like + 5 * server.settings.weight_share
    b0 = perf.posterior.prior_impressions
    assert 0 < b0 <= 10 * server.settings.prior_impressions
    assert perf.score == pytest.approx(perf.posterior.mean, rel=1e-9)
    store = open_catalog("", server.settings.data_dir)
    try:
        book = ScoreBook.from_arrays(server.settings, *store.engagement.arrays(engagement.counter_weights(server.settings)))
        assert book.score(store.videos.row_id("carried"), datetime.now(timezone.utc)) == pytest.approx(perf.score, rel=1e-9)
    finally:
        store.close()
    m = server.settings.prior_impressions  # what the score was before: smoothed toward the corpus mean
    assert abs(perf.score - (weighted + m * book.prior) / (300 + m)) > 0.01


def test_route_fuses_with_the_weights_learned_from_engagement(models, base_settings, tmp_path):
    """The topic lives only in speech (each creator films in one room, captions are generic) and topics
    differ in hit rate: the content prior learns that only speech predicts engagement, and Route (the
    server's default `--route-weights learned`) fuses with those weights, so it routes as well as speech
    alone and better than the fixed defaults, which let the rooms and the boilerplate captions in."""
    from tests.conftest import RunningServer

    corpus, queries = routeworld.make_speech_world(tmp_path / "clips", performers=0, low=12, queries=1, seed=3,
                                                   hit_rates=[0.9, 0.9, 0.8, 0.1, 0.1, 0.2])
    low_share = 100 * sum(not v.performs for v in corpus) / len(corpus)
    settings = base_settings.replace(data_dir=tmp_path / "data", pool_min_impressions=1000, pool_percentile=low_share + 1)
    assert settings.route_weights == "learned"  # the default
    server = RunningServer(settings, models)
    try:
        with Client(server.server.address) as client:
            routeworld.load(client, corpus)
            q = queries[0]
            r = client.route(path=q.path, metadata={"creator_id": q.creator_id, "caption": q.caption}, k=4)
            applied = r["weights"]
            assert applied.get("visual", 0) == 0 and applied.get("caption", 0) == 0 and applied["spoken"] > 0.5, applied
            table = routeworld.evaluate(client, corpus, queries, k=4)
    finally:
        server.stop()
    fused = table["all modalities"]["precision_at_k"]
    assert fused >= table["spoken only"]["precision_at_k"] - 0.05, table
    assert fused > table["all modalities, default weights"]["precision_at_k"], table
