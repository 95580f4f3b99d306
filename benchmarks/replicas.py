"""Scale-out against the embedded default, in one run on one machine: ingest and search throughput of
one `coldopen serve` on SQLite + FAISS, and of two replicas on PostgreSQL + Milvus Lite's server behind
round-robin clients; and how long an ingest acknowledged by one replica takes to be searchable on the
other.

    python -m benchmarks.replicas [--uploads 40] [--searches 400] [--clients 4] [--json out.json]

Real components, started here and stopped after: PostgreSQL 15 (initdb in a temp dir, loopback; as root
it runs as the postgres user) and `python -m milvus_lite server` (tests/pgserver.py, tests/milvusserver.py).
Workload: the committed sample clips (samples/*.mp4, 5-8 s each) uploaded under fresh ids; searches by
the embedding of a random stored video. Models: the tests' small random-init CLIP and the bundled
Whisper tiny.en and MiniLM (the stacks are what is compared, not the models). Everything, the database
servers included, shares this machine's cores: the numbers compare the stacks, they do not size a fleet.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
class Serve:
    def __init__(self, clip: tuple[Path, Path], data_dir: Path, *flags: str):
        import grpc

        from coldopen.v1 import coldopen_pb2_grpc as pb_grpc

        self.log = open(data_dir.with_suffix(".log"), "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coldopen.cli", "serve", "--json", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
             "--clip-model", str(clip[0]), "--clip-pretrained", str(clip[1]), "--device", "cpu", *flags],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"serve exited early; see {self.log.name}")
        self.channel = grpc.insecure_channel(json.loads(line)["address"])
        self.stub = pb_grpc.ContentIndexStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def upload(data: bytes, video_id: str):
    from coldopen.config.settings import MAX_CHUNK_BYTES
    from coldopen.v1 import coldopen_pb2 as pb

    yield pb.IngestRequest(metadata=pb.VideoMetadata(video_id=video_id, creator_id="bench"))
    for i in range(0, len(data), MAX_CHUNK_BYTES):
        yield pb.IngestRequest(chunk=data[i : i + MAX_CHUNK_BYTES])


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def run_stack(name: str, servers: list[Serve], clips: list[bytes], args) -> dict:
    from coldopen.v1 import coldopen_pb2 as pb

    ids = [f"{name}-{i}" for i in range(args.uploads)]
    latencies: list[float] = []

    def ingest(i: int) -> None:
        t0 = time.perf_counter()
        servers[i % len(servers)].stub.Ingest(upload(clips[i % len(clips)], ids[i]), timeout=300)
        latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(ingest, range(args.uploads)))
    ingest_s = time.perf_counter() - started

    vectors = [list(servers[0].stub.GetVideo(pb.GetVideoRequest(video_id=v, include_embeddings=True)).embedding)
               for v in ids[:50]]
    rng = random.Random(0)
    search_ms: list[float] = []

    def search(i: int) -> None:
        t0 = time.perf_counter()
        servers[i % len(servers)].stub.Search(
            pb.SearchRequest(embedding=pb.EmbeddingQuery(values=rng.choice(vectors)), k=10), timeout=60)
        search_ms.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(2 * args.clients) as pool:
        list(pool.map(search, range(args.searches)))
    search_s = time.perf_counter() - started

    visibility = []
    if len(servers) > 1:  # ingest on one replica, poll the other until Search finds it
        for i in range(args.visibility):
            vid = f"{name}-vis-{i}"
            servers[i % 2].stub.Ingest(upload(clips[i % len(clips)], vid), timeout=300)
            emb = list(servers[i % 2].stub.GetVideo(pb.GetVideoRequest(video_id=vid, include_embeddings=True)).embedding)
            t0 = time.perf_counter()
            other = servers[(i + 1) % 2]
            while vid not in [n.video_id for n in other.stub.Search(
                    pb.SearchRequest(embedding=pb.EmbeddingQuery(values=emb), k=20)).neighbours]:
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"{vid} not visible on the other replica after 10 s")
                time.sleep(0.005)
            visibility.append((time.perf_counter() - t0) * 1000)
    return {
        "stack": name, "replicas": len(servers), "uploads": args.uploads,
        "ingests_per_s": round(args.uploads / ingest_s, 2),
        "ingest_p50_ms": pct(latencies, 50), "ingest_p99_ms": pct(latencies, 99),
        "searches_per_s": round(args.searches / search_s, 1),
        "search_p50_ms": pct(search_ms, 50), "search_p99_ms": pct(search_ms, 99),
        **({"visible_p50_ms": pct(visibility, 50), "visible_max_ms": round(max(visibility), 1)} if visibility else {}),
    }


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from testkit import milvusserver, pgserver, tinyclip

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uploads", type=int, default=40)
    p.add_argument("--searches", type=int, default=400)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--visibility", type=int, default=20, help="ingest-then-poll samples across replicas")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    clips = [f.read_bytes() for f in sorted((ROOT / "samples").glob("*.mp4"))]
    results = []
    with tempfile.TemporaryDirectory(prefix="coldopen-replicas-") as tmp:
        root = Path(tmp)
        clip = tinyclip.save(root)
        common = ["--decode-workers", "1", "--max-concurrent-ingests", str(2 * args.clients)]
        embedded = Serve(clip, root / "embedded", *common)
        try:
            results.append(run_stack("embedded", [embedded], clips, args))
        finally:
            embedded.close()
        why = pgserver.available()
        if why:
            raise SystemExit(f"PostgreSQL is needed for the scale-out stack: {why}")
        pg_root = Path(tempfile.mkdtemp(prefix="coldopen-pg-"))
        pg = pgserver.PostgresServer(pg_root).start()
        milvus = milvusserver.MilvusLiteServer(root / "milvus").start()
        try:
            flags = ["--database-url", pg.new_database(), "--vector-store", milvus.uri, *common]
            replicas = [Serve(clip, root / f"replica-{i}", *flags) for i in range(2)]
            try:
                results.append(run_stack("postgresql+milvus-lite", replicas, clips, args))
            finally:
                for r in replicas:
                    r.close()
        finally:
            milvus.stop()
            pg.stop()
            subprocess.run(["rm", "-rf", str(pg_root)])
    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {__import__('os').cpu_count()} cores, {platform.system()}",
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "results": results,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
