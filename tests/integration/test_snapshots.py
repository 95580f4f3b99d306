"""Index snapshots: a start loads the last snapshot and replays only the catalog's newer changes, also
after kill -9; a damaged or mismatched snapshot costs a rebuild, never a wrong answer or a failed start."""

from __future__ import annotations

import json
import re
import signal
import time

import grpc
import pytest

from coldopen.v1 import coldopen_pb2 as pb
from tests.conftest import upload
from tests.integration.support import ServeProcess

pytestmark = pytest.mark.slow


def _wait_for_snapshot(data_dir, vectors: int, timeout: float = 60) -> dict:
    manifest = data_dir / "snapshots" / "manifest.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if manifest.exists():
            m = json.loads(manifest.read_text())
            if m["indexes"]["visual"]["vectors"] - m["indexes"]["visual"]["dead"] == vectors:
                return m
        time.sleep(0.2)
    raise AssertionError(f"no snapshot of {vectors} videos within {timeout} s")


def _answers(server, video_ids) -> dict[str, list[str]]:
    """Each video's nearest neighbours by its own stored embedding, and the index size."""
    out = {}
    for vid in video_ids:
        v = server.stub.GetVideo(pb.GetVideoRequest(video_id=vid, include_embeddings=True), timeout=30)
        hits = server.stub.Search(pb.SearchRequest(embedding=pb.EmbeddingQuery(values=v.embedding), k=10), timeout=30)
        out[vid] = [n.video_id for n in hits.neighbours]
    out["size"] = [str(server.stub.Search(pb.SearchRequest(text="anything", k=1), timeout=30).index_size)]
    return out


def _start_line(log) -> str:
    return [line for line in log.read_text().splitlines() if "index ready" in line][-1]


def test_kill_9_after_a_snapshot_restarts_from_it_and_replays_newer_changes(tiny_clip, clips, tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "serve.log"
    blobs = {n: clips[n].read_bytes() for n in ("fox", "coffee", "rocket", "cat", "hubble")}
    first = ServeProcess(tiny_clip, data_dir, log, "--snapshot-interval-s", "0.5", "--index-type", "hnsw")
    try:
        for name in ("fox", "coffee", "rocket"):
            first.stub.Ingest(upload(blobs[name], name), timeout=120)
        _wait_for_snapshot(data_dir, 3)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(30)
    finally:
        first.close()

    # Writes after the snapshot, then kill -9 again: this server never snapshots (an hour's interval).
    second = ServeProcess(tiny_clip, data_dir, log, "--snapshot-interval-s", "3600", "--index-type", "hnsw")
    try:
        assert "loaded from the snapshot + 0 newer changes" in _start_line(log)
        second.stub.Ingest(upload(blobs["cat"], "cat"), timeout=120)
        second.stub.Ingest(upload(blobs["hubble"], "hubble"), timeout=120)
        second.stub.Ingest(upload(blobs["coffee"], "fox"), timeout=120)  # re-ingest: fox's vector is replaced
        second.stub.DeleteVideo(pb.DeleteVideoRequest(video_id="coffee"), timeout=30)
        live = ["fox", "rocket", "cat", "hubble"]
        before = _answers(second, live)
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(30)
    finally:
        second.close()
    assert before["size"] == ["4"]

    third = ServeProcess(tiny_clip, data_dir, log, "--snapshot-interval-s", "3600", "--index-type", "hnsw")
    try:
        line = _start_line(log)
        assert re.search(r"loaded from the snapshot \+ 4 newer changes \(4 rows\) replayed", line), line
        after = _answers(third, live)
        with pytest.raises(grpc.RpcError) as gone:
            third.stub.GetVideo(pb.GetVideoRequest(video_id="coffee"), timeout=30)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        third.close()
    assert after == before  # the same answers as before the kill
    assert "coffee" not in sum(after.values(), [])


def test_a_damaged_or_mismatched_snapshot_costs_a_rebuild_not_a_wrong_answer(tiny_clip, clips, tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "serve.log"
    server = ServeProcess(tiny_clip, data_dir, log, "--snapshot-interval-s", "0.5")
    try:
        for name in ("fox", "coffee", "rocket"):
            server.stub.Ingest(upload(clips[name].read_bytes(), name), timeout=120)
        _wait_for_snapshot(data_dir, 3)
        want = _answers(server, ["fox", "coffee", "rocket"])
        server.proc.send_signal(signal.SIGTERM)  # a clean stop writes a snapshot too
        server.proc.wait(60)
    finally:
        server.close()
    manifest = json.loads((data_dir / "snapshots" / "manifest.json").read_text())
    index_file = data_dir / "snapshots" / f"{manifest['generation']}-visual.faiss"
    good = index_file.read_bytes()
    middle = len(good) // 2
    for damage in (good[:100],  # a torn file
                   good[:middle] + bytes(64) + good[middle + 64:]):  # vector bytes zeroed, the size kept
        index_file.write_bytes(damage)
        damaged = ServeProcess(tiny_clip, data_dir, log, "--snapshot-interval-s", "3600")
        try:
            assert "rebuilt from the catalog" in _start_line(log)
            assert "visual.faiss has checksum" in log.read_text()  # found before FAISS read it
            assert _answers(damaged, ["fox", "coffee", "rocket"]) == want
            damaged.proc.send_signal(signal.SIGTERM)  # writes a good snapshot again
            damaged.proc.wait(60)
        finally:
            damaged.close()
        manifest = json.loads((data_dir / "snapshots" / "manifest.json").read_text())
        index_file = data_dir / "snapshots" / f"{manifest['generation']}-visual.faiss"
        good = index_file.read_bytes()

    other_type = ServeProcess(tiny_clip, data_dir, log, "--snapshot-interval-s", "3600", "--index-type", "hnsw")
    try:
        assert "rebuilt from the catalog" in _start_line(log)
        assert _answers(other_type, ["fox", "coffee", "rocket"]) == want
    finally:
        other_type.close()


def _pool_line(log) -> str:
    return [line for line in log.read_text().splitlines() if "performs-well pool ready" in line][-1]


def _performance(server, video_ids) -> dict:
    out = {}
    for vid in video_ids:
        p = server.stub.GetVideo(pb.GetVideoRequest(video_id=vid), timeout=30).performance
        out[vid] = (p.impressions, p.likes, p.in_pool, round(p.score, 6), round(p.pool_threshold, 6))
    hits = server.stub.Search(pb.SearchRequest(video_id=video_ids[0], k=10, performing_only=True), timeout=30)
    out["pool"] = sorted(n.video_id for n in hits.neighbours) + [str(hits.index_size)]
    return out


def test_the_pool_restarts_from_its_snapshot_after_kill_9(tiny_clip, clips, tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "serve.log"
    names = ("fox", "coffee", "rocket", "cat", "hubble")
    flags = ("--pool-min-impressions", "100", "--pool-percentile", "50", "--prior-rate", "0.05")

    def batch(tag: str, counts: dict) -> list:
        return [pb.EngagementEvent(event_id=f"{tag}-{v}", video_id=v, impressions=i, likes=likes)
                for v, (i, likes) in counts.items()]

    first = ServeProcess(tiny_clip, data_dir, log, "--snapshot-interval-s", "0.5", *flags)
    try:
        for name in names:
            first.stub.Ingest(upload(clips[name].read_bytes(), name), timeout=120)
        first.stub.RecordEngagement(iter(batch("a", {"fox": (1000, 90), "coffee": (1000, 20), "rocket": (1000, 60),
                                                     "cat": (1000, 10)})), timeout=30)
        deadline = time.monotonic() + 60
        while not re.search(r"pool snapshot written in [\d.]+ s: 4 engaged videos", log.read_text()):
            assert time.monotonic() < deadline, "no pool snapshot of the 4 engaged videos within 60 s"
            time.sleep(0.2)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(30)
    finally:
        first.close()

    # Engagement after the snapshot (its batch logged, not folded, at the kill), a delete: kill -9 again.
    second = ServeProcess(tiny_clip, data_dir, log, "--snapshot-interval-s", "3600", *flags)
    try:
        # the batch was logged and not folded at the kill: this open folds it, so its 4 videos are re-read
        assert "loaded from the snapshot + 4 videos changed after it" in _pool_line(log)
        second.stub.RecordEngagement(iter(batch("b", {"hubble": (2000, 400), "cat": (500, 5)})), timeout=30)
        second.stub.DeleteVideo(pb.DeleteVideoRequest(video_id="rocket"), timeout=30)
        live = ["fox", "coffee", "cat", "hubble"]
        before = _performance(second, live)
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(30)
    finally:
        second.close()
    assert before["pool"] == ["coffee", "hubble", "3"]  # fox (the query), coffee, hubble: 3 of 4 eligible

    third = ServeProcess(tiny_clip, data_dir, log, "--snapshot-interval-s", "3600", *flags)
    try:
        line = _pool_line(log)
        # those 4 again (this server wrote no snapshot) and hubble: rocket's delete is among the 4
        assert "loaded from the snapshot + 5 videos changed after it" in line, line
        after = _performance(third, live)
    finally:
        third.close()
    assert after == before
