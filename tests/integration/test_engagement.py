"""Engagement signals, performance scores and the performs-well pool, over a real gRPC server."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from coldopen.config.settings import Settings
from coldopen.domain.engagement import Counters
from coldopen.ranking import scores as engagement
from coldopen.v1 import coldopen_pb2 as pb

pytestmark = pytest.mark.slow


def test_smoothing_trusts_volume_and_weights_shares_above_likes():
    s = Settings()
    prior = 0.05
    now = datetime.now(timezone.utc)
    tiny = engagement.score(Counters(impressions=4, likes=3), s, prior, now)
    big = engagement.score(Counters(impressions=100_000, likes=30_000), s, prior, now)
    assert tiny < 0.06 < big  # 3 likes on 4 views stays near the prior; 30k on 100k is trusted
    shares = engagement.score(Counters(impressions=10_000, shares=500), s, prior, now)
    comments = engagement.score(Counters(impressions=10_000, comments=500), s, prior, now)
    likes = engagement.score(Counters(impressions=10_000, likes=500), s, prior, now)
    assert shares > comments > likes
    assert engagement.score(Counters(impressions=10_000, completions=5000), s, prior, now) > engagement.score(
        Counters(impressions=10_000), s, prior, now
    )
    old = (now - timedelta(hours=48)).isoformat()
    decayed = engagement.score(
        Counters(impressions=100_000, likes=30_000, last_event_at=old), s.replace(score_half_life_h=24), prior, now
    )
    assert decayed == pytest.approx(big / 4, rel=1e-6)


def _event(event_id, video_id, **counts):
    return pb.EngagementEvent(event_id=event_id, video_id=video_id, **counts)


def test_record_engagement_is_idempotent_durable_and_drives_the_pool(start_server, clips, tmp_path, stack):
    server = start_server(pool_min_impressions=1000, pool_percentile=50.0, **stack)
    for name in ("fox", "coffee", "rocket", "cat"):
        server.ingest(clips[name], name, creator_id=f"c-{name}")
    events = [
        _event("e1", "fox", impressions=50_000, plays=40_000, completions=20_000, likes=8_000, shares=900),
        _event("e2", "coffee", impressions=60_000, plays=30_000, completions=3_000, likes=600),
        _event("e3", "rocket", impressions=40_000, plays=30_000, completions=15_000, likes=5_000, comments=800),
        _event("e4", "cat", impressions=300, likes=200),  # great rate, too few impressions for the pool
        _event("e1", "fox", impressions=50_000, likes=8_000),  # a retry of e1: counted once
        _event("e5", "nope", impressions=10),
        _event("", "fox", impressions=10),
        _event("e6", "fox", likes=-1),
        _event("e7", "fox", impressions=1, at="yesterday"),
    ]
    r = server.stub.RecordEngagement(iter(events))
    assert (r.accepted, r.duplicates) == (4, 1)
    reasons = {x.event_id: x.reason for x in r.rejected}
    assert "not indexed" in reasons["e5"] and "event_id is missing" in reasons[""]
    assert ">= 0" in reasons["e6"] and "RFC 3339" in reasons["e7"]
    assert r.pool_size == 2  # fox and rocket: the better half of the three eligible videos

    fox = server.stub.GetVideo(pb.GetVideoRequest(video_id="fox")).performance
    assert (fox.impressions, fox.likes, fox.shares) == (50_000, 8_000, 900) and fox.in_pool
    assert fox.completion_rate == pytest.approx(0.5) and fox.score >= fox.pool_threshold > 0
    cat = server.stub.GetVideo(pb.GetVideoRequest(video_id="cat")).performance
    assert not cat.in_pool and cat.score < fox.score
    coffee = server.stub.GetVideo(pb.GetVideoRequest(video_id="coffee")).performance
    assert not coffee.in_pool

    # Performing-only search looks at the pool alone.
    reply = server.stub.Search(pb.SearchRequest(video_id="coffee", k=10, performing_only=True))
    assert {n.video_id for n in reply.neighbours} == {"fox", "rocket"} and reply.index_size == 2
    reply = server.stub.Search(pb.SearchRequest(video_id="fox", k=10, performing_only=True))
    assert [n.video_id for n in reply.neighbours] == ["rocket"]

    # Engagement moves the pool as it arrives.
    r = server.stub.RecordEngagement(iter([_event("e8", "coffee", shares=20_000, likes=30_000)]))
    assert r.accepted == 1
    assert server.stub.GetVideo(pb.GetVideoRequest(video_id="coffee")).performance.in_pool

    # Durable: a restart brings back the counters and the pool; replays stay duplicates.
    before = {n: server.stub.GetVideo(pb.GetVideoRequest(video_id=n)).performance for n in ("fox", "coffee", "rocket", "cat")}
    server.stop()
    restarted = start_server(pool_min_impressions=1000, pool_percentile=50.0, **stack)
    for name, perf in before.items():
        assert restarted.stub.GetVideo(pb.GetVideoRequest(video_id=name)).performance == perf
    r = restarted.stub.RecordEngagement(iter(events[:4]))
    assert (r.accepted, r.duplicates) == (0, 4)

    # Deleting a pool member takes it out of performing-only results.
    restarted.stub.DeleteVideo(pb.DeleteVideoRequest(video_id="fox"))
    reply = restarted.stub.Search(pb.SearchRequest(text="anything", k=10, performing_only=True))
    assert "fox" not in {n.video_id for n in reply.neighbours}

    with pytest.raises(grpc.RpcError) as e:
        restarted.stub.RecordEngagement(iter([]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cli_loads_engagement_from_jsonl(start_server, clips, tmp_path):
    from coldopen.cli.main import main

    server = start_server()
    server.ingest(clips["fox"], "fox")
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"event_id": "a", "video_id": "fox", "impressions": 1000, "likes": 50}),
                json.dumps({"event_id": "a", "video_id": "fox", "impressions": 1000, "likes": 50}),
                "not json",
                json.dumps({"event_id": "b", "video_id": "fox", "bogus_field": 1}),
                json.dumps({"event_id": "c", "video_id": "fox", "shares": 3}),
            ]
        )
        + "\n"
    )
    assert main(["engagement", "--server", server.server.address, str(path)]) == 1  # two unreadable lines
    perf = server.stub.GetVideo(pb.GetVideoRequest(video_id="fox")).performance
    assert (perf.impressions, perf.likes, perf.shares) == (1000, 50, 3)


def test_incremental_pool_equals_a_full_recompute_batch_by_batch_and_after_restart(start_server, clips):
    """One server keeps the pool incrementally (ranking/scorebook.py): after every batch, a delete and a
    re-ingest, its members equal a pool computed from scratch from the catalog's counters."""
    import numpy as np

    from coldopen.ranking.scorebook import ScoreBook
    from coldopen.storage.catalog import open_catalog

    names = ["fox", "coffee", "rocket", "cat", "hubble"]
    server = start_server(pool_min_impressions=100, pool_percentile=40.0, score_half_life_h=12.0)
    for name in names:
        server.ingest(clips[name], name, creator_id=f"c-{name}")
    settings = server.settings
    rng = np.random.default_rng(4)

    def members_now() -> set[str]:
        return {v for v in names if v in alive and server.stub.GetVideo(pb.GetVideoRequest(video_id=v)).performance.in_pool}

    def recomputed() -> set[str]:
        store = open_catalog("", settings.data_dir)
        try:
            book = ScoreBook.from_arrays(settings, *store.engagement.arrays(engagement.counter_weights(settings)))
            rows = set(book.members().tolist())
            return {v for v in alive if store.videos.row_id(v) in rows}
        finally:
            store.close()

    alive = set(names)
    n = 0
    for step in range(8):
        batch = []
        for v in rng.choice(sorted(alive), 3, replace=False):
            n += 1
            batch.append(
                _event(
                    f"b{n}",
                    str(v),
                    impressions=int(rng.integers(50, 400)),
                    likes=int(rng.integers(0, 60)),
                    shares=int(rng.integers(0, 10)),
                )
            )
        assert server.stub.RecordEngagement(iter(batch)).accepted == 3
        if step == 4:
            gone = sorted(members_now() or alive)[0]
            server.stub.DeleteVideo(pb.DeleteVideoRequest(video_id=gone))
            alive.discard(gone)
        if step == 6:
            server.ingest(clips["fox"], sorted(alive)[-1])  # a re-ingest keeps counters, changes embeddings
        assert members_now() == recomputed(), f"after batch {step}"
    before = members_now()
    assert before, "the test should leave a non-empty pool"
    pool_search = server.stub.Search(pb.SearchRequest(text="anything", k=10, performing_only=True))
    assert {x.video_id for x in pool_search.neighbours} == before
    server.stop()
    again = start_server(pool_min_impressions=100, pool_percentile=40.0, score_half_life_h=12.0)
    server = again
    assert members_now() == before


def test_a_batch_that_fails_to_commit_leaves_counters_and_pool_as_they_were(start_server, clips, monkeypatch):
    """Counters and the pool's moves are one transaction. A database failure while publishing the moves
    (injected: a stand-in for a full disk or a lost connection, which cannot be caused on demand here)
    rolls the counters back too; the pool, which had already applied the batch, is reloaded from the
    catalog, and the retried batch is then counted once."""
    from coldopen.domain.errors import StorageUnavailable
    from coldopen.storage.catalog.pool import PublishedPool

    names = ["fox", "coffee", "rocket"]
    server = start_server(pool_min_impressions=100, pool_percentile=50.0)
    for name in names:
        server.ingest(clips[name], name)
    first = [_event(f"a{i}", v, impressions=300, likes=10 * (i + 1)) for i, v in enumerate(names)]
    assert server.stub.RecordEngagement(iter(first)).accepted == 3

    def video(v):
        return server.stub.GetVideo(pb.GetVideoRequest(video_id=v)).performance

    before = {v: (video(v).impressions, video(v).in_pool) for v in names}
    publish = PublishedPool.publish_moves_in

    def failing_publish(self, conn, moves):  # injected failure inside the engagement transaction
        raise StorageUnavailable("injected: the catalog database failed mid-transaction")

    monkeypatch.setattr(PublishedPool, "publish_moves_in", failing_publish)
    second = [_event("b0", "fox", impressions=300, likes=200, shares=40)]
    with pytest.raises(grpc.RpcError) as err:
        server.stub.RecordEngagement(iter(second))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    monkeypatch.setattr(PublishedPool, "publish_moves_in", publish)
    assert {v: (video(v).impressions, video(v).in_pool) for v in names} == before  # waits for the reload
    assert server.stub.RecordEngagement(iter(second)).accepted == 1  # the retry: not a duplicate
    assert video("fox").impressions == before["fox"][0] + 300 and video("fox").in_pool
