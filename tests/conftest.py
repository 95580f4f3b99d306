"""Shared fixtures: real clips, a random-init open_clip saved to disk and loaded through the
production path, the bundled Whisper, and real gRPC servers on port 0."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import grpc
import pytest

from coldopen.api.server import create_server
from coldopen.app.service import ColdOpenService, Models
from coldopen.config.settings import MAX_CHUNK_BYTES, Settings
from coldopen.v1 import coldopen_pb2 as pb
from coldopen.v1 import coldopen_pb2_grpc as pb_grpc
from testkit import mediagen, milvusserver, pgserver, tinyclip

# Every process this test session starts inherits this mark, so the session can check at its end that it
# left none behind (servers killed with SIGKILL included: their decode workers must exit by themselves).
_SESSION_MARK = f"coldopen-tests-{os.getpid()}"
os.environ["COLDOPEN_TEST_SESSION"] = _SESSION_MARK


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    yield
    import psutil

    mine = []
    for p in psutil.process_iter():
        try:
            if p.pid == os.getpid() or p.environ().get("COLDOPEN_TEST_SESSION") != _SESSION_MARK:
                continue
            if p.ppid() == os.getpid() and "resource_tracker" in " ".join(p.cmdline()):
                continue  # this process's own multiprocessing helper: it exits with this process
        except psutil.Error:
            continue
        mine.append(p)
    _, alive = psutil.wait_procs(mine, timeout=15)
    if alive:
        described = [(p.pid, " ".join(p.cmdline())[:200]) for p in alive if p.is_running()]
        for p in alive:
            p.kill()
        pytest.fail(f"the test session left {len(described)} processes running: {described}")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> tuple[Path, Path]:
    """(model config JSON, checkpoint): a seeded random-init open_clip written to disk."""
    return tinyclip.save(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def base_settings(tiny_clip, tmp_path_factory) -> Settings:
    config, checkpoint = tiny_clip
    return Settings(
        data_dir=tmp_path_factory.mktemp("unused"),
        listen="127.0.0.1:0",
        clip_model=str(config),
        clip_pretrained=str(checkpoint),
        device="cpu",
        max_concurrent_ingests=2,
        grpc_workers=8,
        # Servers in tests decode in the request thread (no process start-up per server) with exact
        # uniform sampling; tests/test_pipeline.py covers the process pool and the other modes.
        decode_workers=0,
        sampling="uniform",
    )


@pytest.fixture(scope="session")
def models(base_settings) -> Models:
    return Models.load(base_settings)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Real H.264 + AAC clips from photographs and speech."""
    d = tmp_path_factory.mktemp("clips")
    out = {
        "fox": mediagen.make_clip(d / "fox.mp4", "astronaut", seconds=5, size=(320, 180), speech_name="fox"),
        "coffee": mediagen.make_clip(d / "coffee.mp4", "coffee", seconds=5, size=(320, 180), speech_name="coffee"),
        "rocket": mediagen.make_clip(d / "rocket.mp4", "rocket", seconds=5, size=(320, 180), speech_name="rocket"),
        "cat": mediagen.make_clip(d / "cat.mp4", "chelsea", seconds=4, size=(240, 320)),  # portrait, no audio
        "hubble": mediagen.make_clip(d / "hubble.mp4", "hubble_deep_field", seconds=4, size=(320, 180), speech_name="weather"),
    }
    out["fox_copy"] = mediagen.reencode(out["fox"], d / "fox_copy.mp4", size=(256, 144), crf=32)
    return out


# The stacks the API and reliability tests run on (parametrised): the embedded default (SQLite + FAISS in
# process) and the scale-out stack (a real PostgreSQL server + Milvus Lite's server), both started by the tests.
STACKS = ("embedded", "scale-out")


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session (each test that uses it gets its own database)."""
    import shutil
    import tempfile

    why = pgserver.available()
    if why is not None:
        pytest.fail(f"the PostgreSQL stack cannot run here: {why}")
    root = Path(tempfile.mkdtemp(prefix="coldopen-pg-"))  # not under pytest's 0700 basetemp: postgres must enter it
    server = pgserver.PostgresServer(root).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def milvus(tmp_path_factory):
    """One Milvus Lite server process for the session (each test that uses it gets its own collections)."""
    server = milvusserver.MilvusLiteServer(tmp_path_factory.mktemp("milvus")).start()
    yield server
    server.stop()


def _stack(name: str, request) -> dict:
    """Settings overrides for a stack: none for the embedded default, else a fresh PostgreSQL database and
    fresh Milvus collections."""
    if name == "embedded":
        return {}
    return {
        "database_url": request.getfixturevalue("postgres").new_database(),
        "vector_store": request.getfixturevalue("milvus").uri,
        "milvus_collection_prefix": f"t{uuid.uuid4().hex[:12]}",
    }


@pytest.fixture(params=STACKS)
def stack(request) -> dict:
    return _stack(request.param, request)


@pytest.fixture(scope="module", params=STACKS)
def module_stack(request) -> dict:
    return _stack(request.param, request)


class RunningServer:
    def __init__(self, settings: Settings, models: Models):
        self.settings = settings
        self.server = create_server(settings).start()
        self.server.attach(ColdOpenService.open(settings, models))
        self.channel = grpc.insecure_channel(self.server.address)
        self.stub = pb_grpc.ContentIndexStub(self.channel)

    def ingest(self, path: Path, video_id: str, **meta) -> pb.IngestResponse:
        return self.stub.Ingest(upload(path.read_bytes(), video_id, **meta), timeout=120)

    def stop(self) -> None:
        self.channel.close()
        self.server.stop(grace=1)


def upload(data: bytes, video_id: str, **meta):
    yield pb.IngestRequest(metadata=pb.VideoMetadata(video_id=video_id, **meta))
    for i in range(0, len(data), MAX_CHUNK_BYTES):
        yield pb.IngestRequest(chunk=data[i : i + MAX_CHUNK_BYTES])


@pytest.fixture
def start_server(models, base_settings, tmp_path):
    """Factory: start a real server on port 0 (default data dir: this test's tmp dir)."""
    running: list[RunningServer] = []

    def start(**overrides) -> RunningServer:
        settings = base_settings.replace(**{"data_dir": tmp_path / "data", **overrides})
        server = RunningServer(settings, models)
        running.append(server)
        return server

    yield start
    for s in running:
        s.stop()
