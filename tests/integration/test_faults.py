"""Faults and load: kill -9 during concurrent ingests loses nothing acknowledged; SIGTERM drains and
exits cleanly; 64 uploading clients plus searchers see only explicit backpressure, bounded memory."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from coldopen.v1 import coldopen_pb2 as pb
from tests.conftest import upload
from tests.integration.support import ROOT, ServeProcess, stack_flags, stored_rows

pytestmark = pytest.mark.slow



def test_kill_9_during_concurrent_ingests_loses_nothing_acknowledged(tiny_clip, clips, tmp_path, stack):
    data_dir = tmp_path / "data"
    flags = stack_flags(stack)
    server = ServeProcess(tiny_clip, data_dir, tmp_path / "serve.log", "--max-concurrent-ingests", "4", *flags)
    names = ["fox", "coffee", "rocket", "cat", "hubble"]
    blobs = {n: clips[n].read_bytes() for n in names}
    acknowledged: set[str] = set()
    attempted: set[str] = set()
    counter = itertools.count()
    lock = threading.Lock()
    stop = threading.Event()

    def uploader():
        while not stop.is_set():
            i = next(counter)
            name = names[i % len(names)]
            vid = f"v{i}-{name}"
            with lock:
                attempted.add(vid)
            try:
                server.stub.Ingest(upload(blobs[name], vid), timeout=60)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    with lock:
                        attempted.discard(vid)  # refused up front: never in flight
                    time.sleep(0.1)
                    continue
                return  # the server is gone
            with lock:
                acknowledged.add(vid)

    threads = [threading.Thread(target=uploader) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 90
    while len(acknowledged) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGKILL)  # mid-flight: other uploads are being received and processed
    stop.set()
    for t in threads:
        t.join(60)
    server.close()
    assert len(acknowledged) >= 8, "too few ingests before the kill"
    in_flight = attempted - acknowledged
    assert in_flight, "nothing was in flight at the kill; the test proved nothing"

    restarted = ServeProcess(tiny_clip, data_dir, tmp_path / "serve.log", *flags)
    try:
        for vid in sorted(acknowledged):
            video = restarted.stub.GetVideo(pb.GetVideoRequest(video_id=vid, include_embeddings=True), timeout=30)
            assert len(video.embedding) > 0 and video.extraction.frames_sampled > 0
            hits = restarted.stub.Search(pb.SearchRequest(embedding=pb.EmbeddingQuery(values=video.embedding), k=50),
                                         timeout=30)
            assert vid in [n.video_id for n in hits.neighbours], f"{vid} acknowledged but not searchable"
        # nothing half-present: every stored video is whole and in the index (a shared vector store gets a
        # write the kill cut off from the outbox sweeper, within its grace period)
        rows = stored_rows(stack, data_dir)
        deadline = time.monotonic() + 30
        while True:
            index_size = restarted.stub.Search(pb.SearchRequest(text="anything", k=1), timeout=30).index_size
            if index_size == len(rows) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        restarted.close()
    assert index_size == len(rows)
    assert all(length and json.loads(transcript) is not None for _, length, transcript in rows)
    assert acknowledged <= {r[0] for r in rows}
    print(f"\nkill -9: {len(acknowledged)} acknowledged, {len(in_flight)} in flight at the kill, "
          f"{len(rows)} stored after restart, 0 acknowledged lost")


def test_sigterm_drains_in_flight_uploads_and_exits_cleanly(tiny_clip, clips, tmp_path, stack):
    server = ServeProcess(tiny_clip, tmp_path / "data", tmp_path / "serve.log", *stack_flags(stack))
    data = clips["fox"].read_bytes()
    sent_first = threading.Event()

    def slow_upload():
        yield pb.IngestRequest(metadata=pb.VideoMetadata(video_id="in-flight"))
        yield pb.IngestRequest(chunk=data[:1000])
        sent_first.set()
        time.sleep(2.0)  # SIGTERM arrives while this upload is still being received
        yield pb.IngestRequest(chunk=data[1000:])

    try:
        future = server.stub.Ingest.future(slow_upload(), timeout=120)
        assert sent_first.wait(30)
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(grpc.RpcError) as e:  # no new RPCs once draining
            server.stub.Ingest(upload(data, "too-late"), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert future.result().video_id == "in-flight"  # the in-flight upload finished
        assert server.proc.wait(60) == 0
    finally:
        server.close()
    log = server.log.read_text()
    assert "draining: health NOT_SERVING" in log and "stopped cleanly" in log
    # what was acknowledged during the drain is there after a restart
    again = ServeProcess(tiny_clip, tmp_path / "data", tmp_path / "serve2.log", *stack_flags(stack))
    try:
        assert again.stub.GetVideo(pb.GetVideoRequest(video_id="in-flight"), timeout=30).metadata.video_id == "in-flight"
    finally:
        again.close()


def test_load_64_uploaders_and_searchers_see_only_backpressure_and_memory_stays_bounded(start_server, clips, stack):
    import psutil

    server = start_server(max_concurrent_ingests=4, grpc_workers=80, max_streams_per_caller=64, **stack)
    names = ["fox", "coffee", "rocket", "cat", "hubble"]
    blobs = {n: clips[n].read_bytes() for n in names}
    for n in names:  # warm-up, and something to search
        server.ingest(clips[n], f"seed-{n}")
    proc = psutil.Process()
    rss_start = proc.memory_info().rss
    stop = threading.Event()
    errors: list[str] = []
    ingest_lat: list[float] = []
    search_lat: list[float] = []
    refused = [0]
    counter = itertools.count()
    lock = threading.Lock()
    rss_peak = [rss_start]

    def uploader():
        rng = np.random.default_rng(threading.get_ident() % 2**32)
        while not stop.is_set():
            i = next(counter)
            name = names[i % len(names)]
            t = time.perf_counter()
            try:
                server.stub.Ingest(upload(blobs[name], f"load-{i % 40}"), timeout=120)  # re-ingests replace
                with lock:
                    ingest_lat.append(time.perf_counter() - t)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    with lock:
                        refused[0] += 1
                    time.sleep(0.2 + 0.3 * rng.random())  # back off, as the message says
                else:
                    with lock:
                        errors.append(f"{e.code().name}: {e.details()}")

    def searcher():
        while not stop.is_set():
            t = time.perf_counter()
            try:
                server.stub.Search(pb.SearchRequest(video_id="seed-fox", k=10), timeout=30)
                with lock:
                    search_lat.append(time.perf_counter() - t)
            except grpc.RpcError as e:
                with lock:
                    errors.append(f"search {e.code().name}: {e.details()}")
            time.sleep(0.01)

    def sampler():
        while not stop.wait(0.5):
            rss_peak[0] = max(rss_peak[0], proc.memory_info().rss)

    threads = [threading.Thread(target=uploader) for _ in range(64)]
    threads += [threading.Thread(target=searcher) for _ in range(8)]
    threads.append(threading.Thread(target=sampler))
    for t in threads:
        t.start()
    time.sleep(30)
    stop.set()
    for t in threads:
        t.join(180)
    rss_end = proc.memory_info().rss
    growth_mib = (rss_end - rss_start) / 2**20
    p99_ingest = float(np.percentile(ingest_lat, 99)) if ingest_lat else 0.0
    p99_search = float(np.percentile(search_lat, 99)) * 1000 if search_lat else 0.0
    print(f"\nload 30 s: 64 uploaders + 8 searchers: {len(ingest_lat)} ingests OK (p50 "
          f"{np.percentile(ingest_lat, 50):.2f} s, p99 {p99_ingest:.2f} s), {refused[0]} refused with "
          f"RESOURCE_EXHAUSTED, {len(search_lat)} searches (p50 {np.percentile(search_lat, 50) * 1000:.1f} ms, "
          f"p99 {p99_search:.1f} ms), errors {len(errors)}, RSS growth {growth_mib:.0f} MiB "
          f"(peak +{(rss_peak[0] - rss_start) / 2**20:.0f} MiB)")
    assert not errors, errors[:5]
    assert len(ingest_lat) >= 10 and len(search_lat) >= 100
    assert growth_mib < 400, f"RSS grew by {growth_mib:.0f} MiB"
    assert server.server.service.ingests_in_flight == 0


def test_sigkill_leaves_no_decode_worker_behind_and_logs_are_json(tiny_clip, clips, tmp_path):
    """Before: after `make test`, pairs of orphaned spawn workers and resource trackers ran on for 50 minutes."""
    import psutil

    server = ServeProcess(tiny_clip, tmp_path / "data", tmp_path / "serve.log", "--decode-workers", "2")
    try:
        server.stub.Ingest(upload(clips["fox"].read_bytes(), "fox"), timeout=60, metadata=(("x-request-id", "kill-1"),))
        children = psutil.Process(server.proc.pid).children(recursive=True)
        assert len(children) >= 2, children  # the decode workers (and spawn's resource tracker)
        time.sleep(0.5)
        logged = server.log.read_text()  # what the server wrote (after the kill, the resource tracker warns about leaks)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(30)
        gone, alive = psutil.wait_procs(children, timeout=15)
    finally:
        server.close()
    assert not alive, f"left behind: {[(p.pid, p.cmdline()) for p in alive]}"
    lines = [line for line in logged.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # --json: every line is one JSON object
    assert any(e.get("request_id") == "kill-1" and "video_id=fox" in e["msg"] for e in entries)


def test_a_second_server_on_the_same_data_dir_exits_2_naming_the_first(tiny_clip, tmp_path):
    """Before: two servers on one data dir deleted each other's in-flight uploads and diverged."""
    first = ServeProcess(tiny_clip, tmp_path / "data", tmp_path / "serve.log")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "coldopen.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
             "--clip-model", str(tiny_clip[0]), "--clip-pretrained", str(tiny_clip[1]), "--device", "cpu"],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
        )
        assert second.returncode == 2
        assert f"pid {first.proc.pid}" in second.stderr and "--data-dir" in second.stderr
        assert first.stub.Search(pb.SearchRequest(text="still serving", k=1), timeout=10).index_size == 0
        bad = subprocess.run(
            [sys.executable, "-m", "coldopen.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "other"),
             "--clip-model", str(tiny_clip[0]), "--clip-pretrained", str(tiny_clip[1]), "--device", "cpu",
             "--max-frames", "5000"],
            capture_output=True, text=True, timeout=180, cwd=ROOT,
        )
        assert bad.returncode == 2 and "max_frames=5000" in bad.stderr  # before: INTERNAL on every upload
    finally:
        first.close()
