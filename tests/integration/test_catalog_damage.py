"""Damaged files never yield a wrong answer (issue 32). The catalog is the store of record, so its loss or
damage is never silent: a missing or empty catalog beside indexes built from one refuses to start (exit 2,
one line, how to restore or start fresh on purpose); a damaged one is found at start by PRAGMA
quick_check; damage met while serving answers DATA_LOSS, never INTERNAL, and health turns NOT_SERVING.
Every other persisted file (index snapshots, their maps, the pool's snapshot, the manifests), truncated,
zeroed or with bytes flipped and its size kept, costs a rebuild at the next start, with answers equal to
those the server gave before."""

from __future__ import annotations

import shutil
import sqlite3

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coldopen.app import startup
from coldopen.domain.errors import StartupError
from coldopen.storage.catalog import CATALOG_FILE
from coldopen.v1 import coldopen_pb2 as pb
from tests.integration.support import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(models, base_settings, tmp_path_factory, clips):
    """A data dir with three stored videos (a re-encode sharing the original's sound) and engagement, stopped cleanly (its index
    and pool snapshots written at shutdown); and the answers it gave."""
    from tests.conftest import RunningServer

    folder = tmp_path_factory.mktemp("built") / "data"
    settings = base_settings.replace(data_dir=folder, pool_min_impressions=1, pool_percentile=50.0)
    server = RunningServer(settings, models)
    for name in ("fox", "coffee", "fox_copy"):
        server.ingest(clips[name], name)
    server.stub.RecordEngagement(iter([pb.EngagementEvent(event_id=f"e-{v}", video_id=v, impressions=100 * (i + 1),
                                                          likes=10 * (i + 1)) for i, v in enumerate(("fox", "coffee"))]))
    server.answers = _answers(server)
    server.stop()
    assert (folder / "snapshots" / "manifest.json").exists() and (folder / "snapshots" / "pool.npz").exists()
    return settings.replace(), server.answers


def _answers(server) -> dict:
    out = {}
    for v in ("fox", "coffee", "fox_copy"):
        g = server.stub.GetVideo(pb.GetVideoRequest(video_id=v))
        out[v] = (g.extraction.sound_id, g.performance.impressions, g.performance.in_pool)
    out["search"] = [n.video_id for n in server.stub.Search(pb.SearchRequest(text="a fox", k=3)).neighbours]
    out["by fox"] = [n.video_id for n in server.stub.Search(pb.SearchRequest(video_id="fox", k=3)).neighbours]
    out["performing"] = sorted(n.video_id for n in server.stub.Search(
        pb.SearchRequest(video_id="fox", k=3, performing_only=True)).neighbours)
    return out


def _copy(built, tmp_path):
    settings = built[0]
    dest = tmp_path / "data"
    shutil.copytree(settings.data_dir, dest, ignore=shutil.ignore_patterns("coldopen.lock"))
    return settings.replace(data_dir=dest), dest / CATALOG_FILE


def _page_of(path, table: str) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    return size, root


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_a_lost_catalog_beside_built_indexes_refuses_to_start(built, tmp_path, damage):
    settings, path = _copy(built, tmp_path)
    for extra in path.parent.glob(CATALOG_FILE + "-*"):
        extra.unlink()
    path.unlink() if damage == "missing" else path.write_bytes(b"")
    with pytest.raises(StartupError) as e:
        startup.catalog(settings)
    said = str(e.value)
    assert ("missing" if damage == "missing" else "empty (0 bytes)") in said and "--accept-empty-catalog" in said
    assert "\n" not in said and str(tmp_path) not in said
    startup.catalog(settings.replace(accept_empty_catalog=True)).close()  # fresh on purpose


def test_a_truncated_or_overwritten_catalog_is_refused_at_start_with_what_to_do(built, tmp_path):
    settings, path = _copy(built, tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    good = path.read_bytes()
    size, root = _page_of(path, "videos")
    for name, data in (
        ("truncated to half", good[: len(good) // 2]),
        ("the videos table's root page overwritten", good[: (root - 1) * size] + b"\x5a" * size + good[root * size :]),
        ("the header overwritten", b"\x00" * 100 + good[100:]),
    ):
        path.write_bytes(data)
        with pytest.raises(StartupError) as e:
            startup.catalog(settings)
        said = str(e.value)
        assert "damaged" in said and "backup" in said and "\n" not in said and str(tmp_path) not in said, (name, said)
    path.write_bytes(good)
    startup.catalog(settings).close()


def test_damage_met_while_serving_is_data_loss_and_health_turns_not_serving(built, models, tmp_path):
    """The videos table's root page overwritten and the start-up check skipped (--catalog-check none): the
    pool cannot load, and every call that needs it says the catalog is damaged; health says NOT_SERVING."""
    from tests.conftest import RunningServer

    settings, path = _copy(built, tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size, root = _page_of(path, "videos")
    with open(path, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\x5a" * size)
    server = RunningServer(settings.replace(catalog_check="none"), models)
    try:
        codes = {}
        for name, call in (
            ("GetVideo", lambda: server.stub.GetVideo(pb.GetVideoRequest(video_id="fox"))),
            ("Search", lambda: server.stub.Search(pb.SearchRequest(text="a fox", k=2))),
        ):
            try:
                call()
                codes[name] = "OK"
            except grpc.RpcError as e:
                codes[name] = e.code().name
                assert "damaged" in e.details() or "could not be loaded" in e.details(), e.details()
        assert "INTERNAL" not in codes.values() and "DATA_LOSS" in codes.values(), codes
        health = health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        server.stop()


def test_serve_exits_2_in_one_line_before_models_load(built, tmp_path, tiny_clip):
    import subprocess
    import sys

    settings, path = _copy(built, tmp_path)
    path.write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "coldopen.cli", "serve", "--data-dir", str(settings.data_dir),
                        "--listen", "127.0.0.1:0", "--clip-model", str(tiny_clip[0]), "--clip-pretrained", "none"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and "empty (0 bytes)" in r.stderr and "Traceback" not in r.stderr, r.stderr


def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    else:  # bytes flipped in the middle, the size kept
        mid = len(data) // 2
        data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "zeroed", "flipped"])
@pytest.mark.parametrize("name", ["visual.faiss", "spoken.npz", "pool.npz", "manifest.json"])
def test_a_damaged_snapshot_file_costs_a_rebuild_with_the_same_answers(built, models, tmp_path, name, how):
    from tests.conftest import RunningServer

    settings, _ = _copy(built, tmp_path)
    snapshots = settings.data_dir / "snapshots"
    path = next(p for p in snapshots.iterdir() if p.name.endswith(name))
    _damage(path, how)
    server = RunningServer(settings, models)
    try:
        assert server.server.service.wait_ready(60)
        assert _answers(server) == built[1]
    finally:
        server.stop()
