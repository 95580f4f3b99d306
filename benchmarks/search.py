"""Search throughput and latency at 100k and 1M vectors (10M on a GPU: --sizes 100000,1000000,10000000).

    python -m benchmarks.search [--sizes 100000,1000000] [--dim 512] [--out benchmarks/out]

For each size: clustered, L2-normalised 512-d vectors (2,000 clusters, as video embeddings cluster
by topic). Measured per backend the service can use (faiss flat on CPU, faiss flat on GPU when
faiss has GPU support, torch exact on CUDA; torch exact on CPU for comparison):
  - batched: 1,024 queries per call, top-10: queries/s;
  - single query in-process: p50/p99 over 300 queries;
  - recall@10 against faiss-cpu exact search (1.0 means identical top-10 sets);
  - an approximate faiss IVF index (not used by the service) for the recall/latency trade-off.
Then over gRPC: a real server whose store holds the vectors as videos (bulk-written to SQLite, index
rebuilt from the store at start), Search by embedding from one client: p50/p99 over 300 queries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def make_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        v = centres[rng.integers(0, len(centres), m)] + 0.8 * rng.standard_normal((m, dim)).astype(np.float32)
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def queries(vectors: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = vectors[rng.integers(0, len(vectors), n)] + 0.3 * rng.standard_normal((n, vectors.shape[1])).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found.tolist(), truth.tolist())]))


def bench_index(name: str, index, qs: np.ndarray, truth: np.ndarray, k: int = 10) -> dict:
    batch = qs[:1024]
    index.search(batch[:8], k)  # warm-up
    t0 = time.perf_counter()
    reps = 0
    while True:
        _, ids = index.search(batch, k)
        reps += 1
        if time.perf_counter() - t0 > 2.0 or reps >= 20:
            break
    qps = reps * len(batch) / (time.perf_counter() - t0)
    lat = []
    for q in qs[:300]:
        t = time.perf_counter()
        index.search(q[None, :], k)
        lat.append((time.perf_counter() - t) * 1000)
    return {
        "backend": name,
        "batched_qps": round(qps),
        "single_p50_ms": round(float(np.percentile(lat, 50)), 3),
        "single_p99_ms": round(float(np.percentile(lat, 99)), 3),
        "recall_at_10": round(recall(ids, truth[: len(batch)]), 4),
    }


def bulk_store(data_dir: Path, vectors: np.ndarray, model_name: str) -> None:
    """Videos with these embeddings, written straight into the store's schema (a bulk load for benchmarks)."""
    from server.storage import open_catalog

    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_catalog("", data_dir)
    store.set_embedding_space(model_name, vectors.shape[1])
    store.close()
    conn = sqlite3.connect(data_dir / "coldopen.sqlite3")
    media = json.dumps({"duration_s": 30.0, "width": 1280, "height": 720, "fps": 30.0, "has_audio": True,
                        "container": "mp4", "video_codec": "h264", "audio_codec": "aac", "rotation": 0})
    transcript = json.dumps({"text": "", "language": "en", "language_probability": 1.0, "model": "", "segments": []})
    with conn:
        conn.executemany(
            "INSERT INTO videos (video_id, row_id, creator_id, caption, hashtags, language_hint, language, media, "
            "frames_sampled, embedding_model, embedding, transcript, timings, ingested_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ((f"bench-{i}", i + 1, f"creator-{i % 5000}", "", "[]", "", "en", media, 30, model_name, v.tobytes(),
              transcript, "{}", "2026-11-23T00:00:00.000Z") for i, v in enumerate(vectors)),
        )
        conn.execute("INSERT INTO id_counters (name, last) VALUES ('video_rows', ?)", (len(vectors),))
    conn.close()


def grpc_latency(vectors: np.ndarray, qs: np.ndarray, args) -> dict:
    import grpc

    from coldopen.v1 import coldopen_pb2 as pb
    from coldopen.v1 import coldopen_pb2_grpc as pb_grpc
    from server.app import create_server
    from server.service import ColdOpenService, Models
    from server.settings import Settings

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", listen="127.0.0.1:0", clip_model=args.clip_model,
                            clip_pretrained="none", device=args.device, decode_workers=0)
        models = Models.load(settings)
        if models.clip.dim != vectors.shape[1]:
            raise SystemExit(f"--dim {vectors.shape[1]} does not match {args.clip_model}'s {models.clip.dim}")
        t = time.perf_counter()
        bulk_store(settings.data_dir, vectors, models.clip.name)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        service = ColdOpenService.open(settings, models)
        rebuild_s = time.perf_counter() - t
        server = create_server(settings).start()
        server.attach(service)
        channel = grpc.insecure_channel(server.address)
        stub = pb_grpc.ContentIndexStub(channel)
        try:
            for q in qs[:10]:
                stub.Search(pb.SearchRequest(embedding=pb.EmbeddingQuery(values=q.tolist()), k=10), timeout=30)
            lat = []
            for q in qs[:300]:
                t = time.perf_counter()
                r = stub.Search(pb.SearchRequest(embedding=pb.EmbeddingQuery(values=q.tolist()), k=10), timeout=30)
                lat.append((time.perf_counter() - t) * 1000)
            assert len(r.neighbours) == 10
        finally:
            channel.close()
            server.stop(grace=1)
        return {
            "backend": f"gRPC Search ({service.index_description})",
            "single_p50_ms": round(float(np.percentile(lat, 50)), 3),
            "single_p99_ms": round(float(np.percentile(lat, 99)), 3),
            "bulk_load_s": round(load_s, 1),
            "index_rebuild_s": round(rebuild_s, 1),
        }


def main() -> None:
    import faiss
    import torch

    from server.storage.vectors import FaissFlatIndex, TorchExactIndex, faiss_gpu_count

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--clip-model", default="ViT-B-32", help="for the gRPC server (its embedding width = --dim)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-grpc", action="store_true")
    p.add_argument("--grpc-max", type=int, default=10**9, help="measure over gRPC only up to this many vectors")
    p.add_argument("--tmp", default=None, help="where the gRPC run's store is written (needs ~2.2 GB per 1M)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = p.parse_args()
    cuda = torch.cuda.is_available() and args.device != "cpu"
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} cores={os.cpu_count()}" + (f" {torch.cuda.get_device_name(0)}" if cuda else ""),
        "faiss": faiss.__version__,
        "torch": torch.__version__,
        "sizes": {},
    }
    for n in [int(s) for s in args.sizes.split(",")]:
        t = time.perf_counter()
        vectors = make_vectors(n, args.dim)
        qs = queries(vectors, 1024)
        ids = np.arange(n, dtype=np.int64)
        exact = FaissFlatIndex(args.dim)
        exact.add(ids, vectors)
        _, truth = exact.search(qs, 10)
        print(f"\n{n:,} x {args.dim} vectors ready in {time.perf_counter() - t:.1f} s")
        rows = [bench_index("faiss flat, cpu (exact)", exact, qs, truth)]
        print(rows[-1], flush=True)
        backends = [("torch exact, cpu", lambda: TorchExactIndex(args.dim, "cpu"))]
        if cuda:
            backends.insert(0, ("torch exact fp16, cuda", lambda: TorchExactIndex(args.dim, "cuda")))
        if cuda and faiss_gpu_count():
            backends.insert(0, ("faiss flat, gpu (exact)", lambda: FaissFlatIndex(args.dim, use_gpu=True)))
        for name, make in backends:
            index = make()
            index.add(ids, vectors)
            rows.append(bench_index(name, index, qs, truth))
            print(rows[-1], flush=True)
            del index
        nlist = int(4 * np.sqrt(n))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(args.dim), args.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        ivf.train(vectors[np.random.default_rng(2).choice(n, min(n, 50 * nlist), replace=False)])
        ivf.add(vectors)
        ivf.nprobe = 32
        rows.append({**bench_index(f"faiss IVF{nlist} nprobe=32 (approximate, not used)", ivf, qs, truth),
                     "build_s": round(time.perf_counter() - t, 1)})
        print(rows[-1], flush=True)
        del ivf, exact
        if not args.no_grpc and n <= args.grpc_max:
            rows.append(grpc_latency(vectors, qs, args))
            print(rows[-1], flush=True)
        results["sizes"][str(n)] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.json").write_text(json.dumps(results, indent=2))
    print(f"\nsearch, top-10, {results['machine']}, faiss {results['faiss']}, torch {results['torch']}")
    print("| vectors | backend | batched q/s | single p50 ms | single p99 ms | recall@10 |")
    print("|---:|---|---:|---:|---:|---:|")
    for n, rows in results["sizes"].items():
        for r in rows:
            print(f"| {int(n):,} | {r['backend']} | {r.get('batched_qps', '')} | {r['single_p50_ms']} | "
                  f"{r['single_p99_ms']} | {r.get('recall_at_10', '')} |")
    print(f"\nwrote {args.out / 'search.json'}")


if __name__ == "__main__":
    main()
