"""A full disk is a state the service leaves by itself (issue 32): the data dir on a small tmpfs, filled
while the server runs. Writes (an upload's temporary file, the catalog, engagement) answer
RESOURCE_EXHAUSTED or UNAVAILABLE saying the disk is full; reads keep serving; nothing is half-applied in
memory (an engagement batch refused after the pool applied it is put back, not reloaded from a disk that
cannot be written); once space is freed, writes succeed again with no restart, and every accepted
engagement event counts exactly once."""

from __future__ import annotations

import os
import subprocess
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coldopen.v1 import coldopen_pb2 as pb
from tests.conftest import upload

pytestmark = pytest.mark.slow

REFUSED = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MB tmpfs (mounting needs root, as CI runs; the VM's own disk cannot be filled safely)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True, text=True)
    assert r.returncode == 0, f"this test mounts a small tmpfs and needs root: {r.stderr.strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk) -> list:
    """Ballast files until the disk refuses another byte."""
    files, i = [], 0
    while True:
        path = disk / f"ballast-{i}"
        files.append(path)
        try:
            with open(path, "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
                    os.fsync(f.fileno())
        except OSError:
            pass
        try:
            with open(disk / f"ballast-{i}-tail", "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
            i += 1
        except OSError:
            return files


def _events(video_id: str, n: int, impressions: int = 100, likes: int = 10) -> list:
    return [pb.EngagementEvent(event_id=f"e-{uuid.uuid4().hex}", video_id=video_id, impressions=impressions,
                               likes=likes) for _ in range(n)]


def _record(server, events) -> grpc.StatusCode:
    try:
        server.stub.RecordEngagement(iter(events), timeout=60)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        assert e.code() in REFUSED, (e.code(), e.details())
        assert "no space left" in e.details() or "full" in e.details(), e.details()
        return e.code()


def test_a_full_disk_refuses_writes_keeps_reads_and_recovers_without_a_restart(start_server, clips, small_disk):
    server = start_server(data_dir=small_disk / "data", pool_min_impressions=1, pool_percentile=50.0,
                          snapshot_interval_s=0.0)
    server.ingest(clips["fox"], "fox")
    accepted = [_events("fox", 5)]
    assert _record(server, accepted[0]) == grpc.StatusCode.OK
    before = server.stub.GetVideo(pb.GetVideoRequest(video_id="fox"))

    ballast = _fill(small_disk)
    try:
        with pytest.raises(grpc.RpcError) as e:
            server.stub.Ingest(upload(clips["coffee"].read_bytes(), "coffee"), timeout=120)
        assert e.value.code() in REFUSED and "no space left" in e.value.details() and "--data-dir" in e.value.details()
        assert str(small_disk) not in e.value.details()
        refused = []
        for size in (3, 100, 1000):  # batches of every size; each either stored whole or refused whole
            batch = _events("fox", size)
            (accepted if _record(server, batch) == grpc.StatusCode.OK else refused).append(batch)
        assert refused, "the catalog took every batch on a full disk: the disk was not full"
        # reads keep serving, from state that was never half-applied
        got = server.stub.GetVideo(pb.GetVideoRequest(video_id="fox"))
        assert got.performance.impressions == 100 * sum(len(b) for b in accepted)
        assert [n.video_id for n in server.stub.Search(pb.SearchRequest(text="a fox", k=3)).neighbours] == ["fox"]
        health = health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for path in ballast:
            path.unlink(missing_ok=True)
        for path in small_disk.glob("ballast-*"):
            path.unlink()

    # space freed: the same writes succeed, with no restart
    assert server.stub.Ingest(upload(clips["coffee"].read_bytes(), "coffee"), timeout=120).video_id == "coffee"
    for batch in refused:
        assert _record(server, batch) == grpc.StatusCode.OK
    total = sum(len(b) for b in accepted) + sum(len(b) for b in refused)
    after = server.stub.GetVideo(pb.GetVideoRequest(video_id="fox"))
    assert after.performance.impressions == 100 * total and after.performance.likes == 10 * total
    assert before.performance.impressions == 500
