"""What a hostile or careless caller can do to a running server: one figure per hole of the hardening issue.

    python -m benchmarks.hostile [--repo PATH] [--out benchmarks/out/hostile.json]

Starts `coldopen serve` from the checkout at --repo (default: this one) as its own process, with a small
random-init CLIP, on loopback, and measures what each hole did to it. Run it once on an old checkout
(`git worktree add /tmp/old <commit>`) and once on this one to compare:

- an hour of Opus (2.6 MB) sent to SearchBySound: status, seconds, peak RSS growth of the server and its workers;
- an engagement event with a naive timestamp under a 24-h half-life: status, then whether a restart serves;
- a RecordEngagement stream and a Route-by-id stream that send one message and go quiet (client deadline 60 s);
- a 100,000-character creator_id;
- a second server on the same data dir;
- decode workers still alive 5 s after the server is killed with SIGKILL;
- health-check latency with 64 idle streams open;
- --max-frames 5000 (above the CLIP queue) with a 400-s upload.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import grpc
import numpy as np

from testkit.serveproc import ServeProcess

ROOT = Path(__file__).resolve().parents[1]


class Serve(ServeProcess):
    """`coldopen serve --json` from a checkout, on a free loopback port (`serving` False if it exited)."""

    def __init__(self, repo: Path, data: Path, clip: tuple[Path, Path], log: Path, *extra: str, env: dict | None = None):
        super().__init__(data, log, "--clip-model", str(clip[0]), "--clip-pretrained", str(clip[1]), "--device", "cpu",
                         *extra, repo=repo, env=env, required=False)

    def stop(self) -> None:
        self.close()


def _chunks(data: bytes, first):
    yield first
    for i in range(0, len(data), 1 << 20):
        yield type(first)(chunk=data[i : i + (1 << 20)])


def _status(call) -> str:
    try:
        call()
        return "OK"
    except grpc.RpcError as e:
        return f"{e.code().name}: {e.details()[:90]}"


def _quiet(first, release: threading.Event):
    yield first
    release.wait(120)


def measure(repo: Path, work: Path) -> dict:
    import psutil
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from coldopen.v1 import coldopen_pb2 as pb
    from testkit import audiogen, mediagen, tinyclip

    clip = tinyclip.save(work)
    fox = mediagen.make_clip(work / "fox.mp4", "astronaut", seconds=5, size=(320, 180), speech_name="fox").read_bytes()
    long = mediagen.write_clip(
        work / "long.mp4", [np.full((36, 64, 3), i % 255, np.uint8) for i in range(400)], fps=1, gop=1
    ).read_bytes()
    hour = audiogen.one_hour_opus(work / "hour.opus").read_bytes()
    log = work / "serve.log"
    out: dict = {}

    def ingest(stub, video_id: str, data: bytes = fox, **meta):
        return stub.Ingest(_chunks(data, pb.IngestRequest(metadata=pb.VideoMetadata(video_id=video_id, **meta))), timeout=120)

    half_life = {"COLDOPEN_SCORE_HALF_LIFE_H": "24"}
    s = Serve(repo, work / "a", clip, log, "--decode-workers", "2", env=half_life)
    ingest(s.stub, "fox")
    proc = psutil.Process(s.proc.pid)
    rss0 = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    peak, done = [rss0], threading.Event()

    def sample():
        while not done.wait(0.05):
            try:
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
            except psutil.Error:
                pass

    threading.Thread(target=sample, daemon=True).start()
    t = time.perf_counter()
    status = _status(
        lambda: s.stub.SearchBySound(
            _chunks(hour, pb.SoundSearchRequest(query=pb.SoundQuery(upload=pb.UploadInfo(filename="hour.opus")))), timeout=300
        )
    )
    done.set()
    out["hour_of_opus_to_search_by_sound"] = {
        "status": status,
        "seconds": round(time.perf_counter() - t, 2),
        "peak_rss_growth_mb": round((peak[0] - rss0) / 1e6),
    }
    naive = pb.EngagementEvent(event_id="naive", video_id="fox", impressions=10, at="2026-01-01")
    try:
        r = s.stub.RecordEngagement(iter([naive]), timeout=30)
        out["naive_timestamp"] = f"OK: accepted {r.accepted}, rejected {[x.reason[:70] for x in r.rejected]}"
    except grpc.RpcError as e:
        out["naive_timestamp"] = e.code().name
    for name, first, call in (
        (
            "idle_record_engagement_stream",
            pb.EngagementEvent(event_id="q", video_id="fox", impressions=1),
            s.stub.RecordEngagement,
        ),
        ("idle_route_by_id_stream", pb.RouteRequest(query=pb.RouteQuery(video_id="fox")), s.stub.Route),
    ):
        release = threading.Event()
        t = time.perf_counter()
        status = _status(lambda call=call, first=first, release=release: call(_quiet(first, release), timeout=60))
        release.set()
        out[name] = f"{status.split(':')[0]} after {time.perf_counter() - t:.1f} s (client deadline 60 s)"
    out["creator_id_of_100000_chars"] = _status(lambda: ingest(s.stub, "c", creator_id="c" * 100_000))
    second = Serve(repo, work / "a", clip, log)
    out["second_server_on_the_same_data_dir"] = "started and served" if second.serving else f"exit {second.exit_code()}"
    second.stop()
    workers = proc.children(recursive=True)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(30)
    time.sleep(5)
    alive = [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    out["decode_workers_alive_5s_after_sigkill"] = f"{len(alive)} of {len(workers)} child processes"
    for w in alive:
        w.kill()
    again = Serve(repo, work / "a", clip, log, env=half_life)
    out["restart_after_the_naive_timestamp"] = "serving" if again.serving else f"exit {again.exit_code()}"
    again.stop()

    many = {"COLDOPEN_MAX_STREAMS_PER_CALLER": "64", "COLDOPEN_MAX_OPEN_STREAMS": "64"}
    s = Serve(repo, work / "b", clip, log, env=many)
    ingest(s.stub, "fox")
    release = threading.Event()
    idle = [
        s.stub.RecordEngagement.future(
            _quiet(pb.EngagementEvent(event_id="i", video_id="fox", impressions=1), release), timeout=60
        )
        for _ in range(64)
    ]
    time.sleep(3)
    t = time.perf_counter()
    status = _status(lambda: health_pb2_grpc.HealthStub(s.channel).Check(health_pb2.HealthCheckRequest(), timeout=5))
    out["health_check_with_64_idle_streams"] = f"{status.split(':')[0]} in {(time.perf_counter() - t) * 1000:.1f} ms"
    release.set()
    for f in idle:
        try:
            f.result(30)
        except grpc.RpcError:
            pass
    s.stop()

    s = Serve(repo, work / "c", clip, log, "--max-frames", "5000")
    if s.serving:
        out["max_frames_5000"] = "started; a 400-s upload got " + _status(lambda: ingest(s.stub, "long", long)).split(":")[0]
    else:
        out["max_frames_5000"] = f"exit {s.exit_code()} at start"
    s.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout whose server to measure (default: this one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "hostile.json")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.repo, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="coldopen-hostile-") as tmp:
        results = measure(args.repo.resolve(), Path(tmp))
    report = {
        "repo": str(args.repo),
        "commit": commit,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
