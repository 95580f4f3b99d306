"""Two replicas on one PostgreSQL catalog, in this process: what one acknowledges, the other serves
(Search, GetVideo, Route, sound matching, the performs-well pool, deletes) within the stated bound."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from coldopen.v1 import coldopen_pb2 as pb
from tests.conftest import upload
from tests.integration.support import scrape

pytestmark = pytest.mark.slow

VISIBLE_WITHIN_S = 2.0  # the README's bound for a shared catalog (replica_poll_s is 0.25 s by default)


def _until(check, within: float = VISIBLE_WITHIN_S, retry_unavailable: bool = False) -> float:
    """Seconds until check() is true; fails past `within`. `retry_unavailable`: a check answered
    UNAVAILABLE counts as not yet (a client retrying while a backing service comes back)."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except grpc.RpcError as e:
            if not retry_unavailable or e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        if time.monotonic() - started > within:
            pytest.fail(f"not visible on the other replica within {within} s")
        time.sleep(0.01)


def _searchable(server, video_id: str, embedding) -> bool:
    reply = server.stub.Search(pb.SearchRequest(embedding=pb.EmbeddingQuery(values=embedding), k=20), timeout=10)
    return video_id in [n.video_id for n in reply.neighbours]


class _OrderedLock:
    """The pool's real refresh lock, recording every acquisition made while the same thread holds the pool's
    view lock: a replica's feed thread takes refresh, then view (installing another replica's pool), so the
    other order can deadlock (a Route did: its weights read the score book under the view)."""

    def __init__(self, lock, view_lock):
        self._lock, self._view_lock, self.inverted = lock, view_lock, []

    def __enter__(self):
        if self._view_lock._is_owned():
            self.inverted.append(threading.current_thread().name)
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)


def test_a_route_never_waits_for_the_score_book_while_it_holds_the_pool_view(start_server, postgres, clips, tmp_path):
    s = start_server(data_dir=tmp_path / "a", database_url=postgres.new_database(), pool_min_impressions=100,
                     pool_percentile=50.0)
    for name in ("fox", "coffee", "rocket"):
        s.ingest(clips[name], name, creator_id=f"c-{name}")
    s.ingest(clips["fox"], "fox-copy")  # shares fox's sound: Route measures the sound's coherence too
    events = [pb.EngagementEvent(event_id=f"e-{n}", video_id=n, impressions=1000, likes=likes)
              for n, likes in (("fox", 400), ("coffee", 10), ("rocket", 300))]
    s.stub.RecordEngagement(iter(events))
    pool = s.server.service.core.pool
    checked = pool._refresh_lock = _OrderedLock(pool._refresh_lock, pool._lock)
    for _ in range(3):  # too few engaged videos to calibrate: every Route recomputes the prior inline
        reply = s.stub.Route(iter([pb.RouteRequest(query=pb.RouteQuery(video_id="fox-copy", k=10))]), timeout=60)
        assert {n.video_id for n in reply.neighbours} == {"fox", "rocket"}
    assert checked.inverted == [], checked.inverted


def test_what_one_replica_acknowledges_the_other_serves(start_server, postgres, clips, tmp_path):
    url = postgres.new_database()
    a = start_server(data_dir=tmp_path / "a", database_url=url, pool_min_impressions=100, pool_percentile=50.0)
    b = start_server(data_dir=tmp_path / "b", database_url=url, pool_min_impressions=100, pool_percentile=50.0,
                     metrics_listen="127.0.0.1:0")
    lags = []
    for name in ("fox", "coffee", "rocket"):
        a.ingest(clips[name], name, creator_id=f"c-{name}")
        video = a.stub.GetVideo(pb.GetVideoRequest(video_id=name, include_embeddings=True))
        lags.append(_until(lambda name=name, video=video: _searchable(b, name, video.embedding)))
        assert b.stub.GetVideo(pb.GetVideoRequest(video_id=name)).metadata.creator_id == f"c-{name}"
    # B ingests A's clip again under another id: its sound is A's sound, and A finds it by sound at once.
    r = b.ingest(clips["fox"], "fox-copy")
    assert not r.new_sound and r.extraction.sound_id == a.stub.GetVideo(pb.GetVideoRequest(video_id="fox")).extraction.sound_id
    hits = a.stub.SearchBySound(iter([pb.SoundSearchRequest(query=pb.SoundQuery(video_id="fox", limit=5))]))
    assert "fox-copy" in [n.video_id for n in hits.matches]
    copy = b.stub.GetVideo(pb.GetVideoRequest(video_id="fox-copy", include_embeddings=True))
    lags.append(_until(lambda: _searchable(a, "fox-copy", copy.embedding)))

    # Engagement recorded on A moves the pool B routes to.
    events = [pb.EngagementEvent(event_id=f"e-{n}", video_id=n, impressions=1000, likes=likes)
              for n, likes in (("fox", 400), ("coffee", 10), ("rocket", 300))]
    assert a.stub.RecordEngagement(iter(events)).pool_size == 2

    def routed() -> set[str]:
        reply = b.stub.Route(iter([pb.RouteRequest(query=pb.RouteQuery(video_id="fox-copy", k=10))]), timeout=60)
        return {n.video_id for n in reply.neighbours}

    lags.append(_until(lambda: routed() == {"fox", "rocket"}))
    assert b.stub.GetVideo(pb.GetVideoRequest(video_id="fox")).performance.in_pool

    # A delete on B disappears from A.
    b.stub.DeleteVideo(pb.DeleteVideoRequest(video_id="coffee"))
    coffee_gone = lambda: "coffee" not in [  # noqa: E731
        n.video_id for n in a.stub.Search(pb.SearchRequest(text="anything", k=20)).neighbours]
    lags.append(_until(coffee_gone))
    with pytest.raises(grpc.RpcError) as e:
        a.stub.GetVideo(pb.GetVideoRequest(video_id="coffee"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    m = scrape(b.server.metrics_port)  # how far behind b may be, for alerting
    assert m[("coldopen_feed_seconds_since_poll", ())] < VISIBLE_WITHIN_S
    assert m[("coldopen_feed_changes_read_total", ())] >= 4 and m[("coldopen_vector_changes_unshipped", ())] == 0
    print(f"\nvisible on the other replica after (s): {[round(x, 3) for x in lags]}")


def test_one_video_ingested_on_both_replicas_at_once_is_one_video(start_server, postgres, clips, tmp_path):
    import threading

    url = postgres.new_database()
    servers = [start_server(data_dir=tmp_path / n, database_url=url) for n in ("a", "b")]
    data = clips["rocket"].read_bytes()
    replies: list = []
    threads = [threading.Thread(target=lambda s=s: replies.append(s.stub.Ingest(upload(data, "same"), timeout=120)))
               for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.replaced for r in replies) == [False, True]
    assert len({r.extraction.sound_id for r in replies}) == 1
    for s in servers:
        _until(lambda s=s: s.stub.Search(pb.SearchRequest(text="anything", k=5)).index_size == 1)


def test_kill_9_one_of_two_replicas_mid_ingest_loses_nothing(tiny_clip, clips, tmp_path, postgres, milvus):
    """Two `coldopen serve` processes on one PostgreSQL + one Milvus server; concurrent ingests through
    both; kill -9 one mid-ingest. The other keeps serving; after the restart every acknowledged video is
    found by Search, GetVideo and sound matching on both replicas, none is half-present, none lost."""
    import itertools
    import signal
    import threading

    from tests.integration.support import ServeProcess, stack_flags, stored_rows

    stack = {"database_url": postgres.new_database(), "vector_store": milvus.uri,
             "milvus_collection_prefix": f"kill{time.time_ns()}"}
    flags = [*stack_flags(stack), "--max-concurrent-ingests", "4"]
    replicas = {n: ServeProcess(tiny_clip, tmp_path / n, tmp_path / f"{n}.log", *flags) for n in ("a", "b")}
    names = ["fox", "coffee", "rocket", "cat", "hubble"]
    blobs = {n: clips[n].read_bytes() for n in names}
    acknowledged: dict[str, str] = {}  # video_id -> source clip
    attempted: set[str] = set()
    counter = itertools.count()
    lock = threading.Lock()
    stop = threading.Event()

    def uploader(replica: str) -> None:
        while not stop.is_set():
            i = next(counter)
            name = names[i % len(names)]
            vid = f"{replica}{i}-{name}"
            with lock:
                attempted.add(vid)
            try:
                replicas[replica].stub.Ingest(upload(blobs[name], vid), timeout=60)
            except grpc.RpcError as e:
                with lock:
                    attempted.discard(vid) if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else None
                if replica == "a" and e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return  # a is gone
                time.sleep(0.1)
                continue
            with lock:
                acknowledged[vid] = name

    threads = [threading.Thread(target=uploader, args=(r,)) for r in ("a", "a", "a", "b", "b", "b")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while sum(v.startswith("a") for v in acknowledged) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    replicas["a"].proc.send_signal(signal.SIGKILL)
    killed_at = len(acknowledged)
    # b keeps serving: ingests through it still succeed, and it serves what a acknowledged.
    while len(acknowledged) < killed_at + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(90)
    replicas["a"].close()
    in_flight = attempted - set(acknowledged)
    assert sum(v.startswith("a") for v in acknowledged) >= 6 and len(acknowledged) >= killed_at + 3
    assert any(v.startswith("a") for v in in_flight), "nothing was in flight on a at the kill; the test proved nothing"

    replicas["a"] = ServeProcess(tiny_clip, tmp_path / "a", tmp_path / "a.log", *flags)
    try:
        rows = stored_rows(stack, tmp_path)
        assert set(acknowledged) <= {r[0] for r in rows}, "an acknowledged video was lost"
        assert all(length and transcript for _, length, transcript in rows), "a stored video is half-present"
        sounds: dict[str, set[str]] = {}
        for replica in replicas.values():
            # every stored video reaches the shared index (the outbox ships what the kill cut off)
            _until(lambda replica=replica: replica.stub.Search(pb.SearchRequest(text="x", k=1)).index_size == len(rows),
                   within=30)
            for vid, name in sorted(acknowledged.items()):
                video = replica.stub.GetVideo(pb.GetVideoRequest(video_id=vid, include_embeddings=True), timeout=30)
                assert video.extraction.frames_sampled > 0
                assert _searchable(replica, vid, video.embedding), f"{vid} acknowledged but not searchable"
                if name != "cat":  # the clips with audio: one sound per source clip, whichever replica took it
                    sounds.setdefault(name, set()).add(video.extraction.sound_id)
            some = next(v for v, n in sorted(acknowledged.items()) if n == "fox")
            hits = replica.stub.SearchBySound(iter([pb.SoundSearchRequest(query=pb.SoundQuery(video_id=some, limit=100))]))
            assert {h.video_id for h in hits.matches} >= {v for v, n in acknowledged.items() if n == "fox"} - {some}
        assert all(len(ids) == 1 and "" not in ids for ids in sounds.values()), sounds
    finally:
        for replica in replicas.values():
            replica.close()
    print(f"\n2 replicas, kill -9 of one: {len(acknowledged)} acknowledged, {len(in_flight)} in flight at the kill, "
          f"{len(rows)} stored, 0 lost")


def test_an_outage_of_the_database_or_the_vector_store_is_unavailable_and_loses_nothing(start_server, clips, tmp_path):
    """Own PostgreSQL and Milvus servers, stopped and started under a running replica: calls answer
    UNAVAILABLE naming what is down; a video committed while Milvus was down is acknowledged as stored with
    its vectors pending, and reaches Milvus afterwards."""
    import shutil
    import tempfile
    from pathlib import Path

    from testkit import milvusserver, pgserver

    pg_root = Path(tempfile.mkdtemp(prefix="coldopen-pg-"))
    pg = pgserver.PostgresServer(pg_root).start()
    milvus = milvusserver.MilvusLiteServer(tmp_path / "milvus").start()
    try:
        server = start_server(database_url=pg.new_database(), vector_store=milvus.uri)
        server.ingest(clips["fox"], "fox")

        milvus.stop()
        with pytest.raises(grpc.RpcError) as e:
            server.stub.Search(pb.SearchRequest(text="a fox", k=3), timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "vector store" in e.value.details()
        # Stored in the catalog, not yet in Milvus: the reply says so, so the client knows not to re-send it.
        reply = server.ingest(clips["coffee"], "coffee")
        assert reply.vectors_pending and reply.video_id == "coffee"
        assert server.stub.GetVideo(pb.GetVideoRequest(video_id="coffee")).metadata.video_id == "coffee"
        milvus.start()
        coffee = server.stub.GetVideo(pb.GetVideoRequest(video_id="coffee", include_embeddings=True))
        # the outbox sweeper ships it once the client library has reconnected
        _until(lambda: _searchable(server, "coffee", coffee.embedding), within=60, retry_unavailable=True)

        pg.stop()
        with pytest.raises(grpc.RpcError) as e:
            server.stub.GetVideo(pb.GetVideoRequest(video_id="fox"), timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "catalog database" in e.value.details()
        pg.start()
        assert server.stub.GetVideo(pb.GetVideoRequest(video_id="fox"), timeout=30).metadata.video_id == "fox"
    finally:
        milvus.stop()
        pg.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
