"""Search throughput, latency and recall at 100k and 1M vectors, for each index type the service offers
(10M on a GPU: --sizes 100000,1000000,10000000).

    python -m benchmarks.search [--sizes 100000,1000000] [--dim 512] [--out benchmarks/out]

For each size: clustered, L2-normalised 512-d vectors (2,000 clusters, as video embeddings cluster
by topic; two members of a cluster have cosine ~0.44). Queries are "another upload like a stored
video": a stored vector plus noise, cosine ~0.9 to it. (Until 2026-12-01 the noise was 7x the vector's
norm, cosine 0.15: queries unlike anything stored, the worst case for an approximate index; recall on
such "far" queries is still reported, in its own column.) Measured per index (`--index-type`):
  - flat (exact FAISS), torch exact (CPU; CUDA when present), hnsw (HNSW32) at several efSearch,
    ivf (IVF, 4*sqrt(n) lists) at several nprobe;
  - batched: 1,024 queries per call, top-10: queries/s; single query in-process: p50/p99 over 300;
  - recall@10 against exact search, near and far queries; build seconds; bytes per vector in memory
    (the serialised index, graph included).
Then over gRPC: a real server whose store holds the vectors as videos (bulk-written to SQLite, index
rebuilt from the store at start), Search by embedding from one client: p50/p99 over 300 queries.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
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


def queries(vectors: np.ndarray, n: int, seed: int = 1, noise: float = 0.5) -> np.ndarray:
    """Stored vectors plus noise of `noise` times their norm: 0.5 gives cosine ~0.9 to the stored one."""
    rng = np.random.default_rng(seed)
    d = vectors.shape[1]
    q = vectors[rng.integers(0, len(vectors), n)] + (noise / np.sqrt(d)) * rng.standard_normal((n, d)).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def far_queries(vectors: np.ndarray, n: int) -> np.ndarray:
    """The generator used until 2026-12-01: noise 0.3 per dimension, cosine ~0.15 to the stored vector."""
    return queries(vectors, n, seed=3, noise=0.3 * np.sqrt(vectors.shape[1]))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found.tolist(), truth.tolist())]))


def single_latency(index, qs: np.ndarray, k: int = 10, callers: int = 1) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, queries/s) of one-query searches over qs[:300], from `callers` threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    def one(q: np.ndarray) -> float:
        t = time.perf_counter()
        index.search(q[None, :], k)
        return (time.perf_counter() - t) * 1000

    t0 = time.perf_counter()
    if callers == 1:
        lat = [one(q) for q in qs[:300]]
    else:
        with ThreadPoolExecutor(callers) as pool:
            lat = list(pool.map(one, qs[:300]))
    wall = time.perf_counter() - t0
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), len(lat) / wall


def by_threads(index, qs: np.ndarray, threads: list[int], callers: int) -> dict:
    """Single-query latency with FAISS's OpenMP threads set to each of `threads` (0: its default, every
    core), one caller and `callers` concurrent callers (a server's request threads)."""
    import faiss

    default = faiss.omp_get_max_threads()
    out = {}
    try:
        for t in threads:
            faiss.omp_set_num_threads(t or default)
            row = {}
            for c in sorted({1, callers}):
                p50, p99, qps = single_latency(index, qs, callers=c)
                row[f"callers_{c}"] = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "qps": round(qps)}
            out[str(t or default)] = row
    finally:
        faiss.omp_set_num_threads(default)
    return out


def bench_index(name: str, index, qs: np.ndarray, truth: np.ndarray, k: int = 10, far=None) -> dict:
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
    p50, p99, _ = single_latency(index, qs, k)
    out = {
        "backend": name,
        "batched_qps": round(qps),
        "single_p50_ms": round(p50, 3),
        "single_p99_ms": round(p99, 3),
        "recall_at_10": round(recall(ids, truth[: len(batch)]), 4),
    }
    if far is not None:  # (far queries, their exact top-k)
        out["recall_at_10_far"] = round(recall(index.search(far[0], k)[1], far[1]), 4)
    return out


def bulk_store(data_dir: Path, vectors: np.ndarray, model_name: str) -> None:
    """Videos bench-0.. with these embeddings, through the catalog's bulk loader."""
    from coldopen.storage.catalog import open_catalog
    from testkit.corpus import load_videos

    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_catalog("", data_dir)
    store.set_embedding_space(model_name, vectors.shape[1])
    try:
        for _ in load_videos(store, vectors, model_name, prefix="bench-", creators=5000):
            pass
    finally:
        store.close()


def served_recall(service, qs: np.ndarray, truth: np.ndarray) -> float:
    """recall@10 of the service's own search (its videos are bench-<row of the vectors>)."""
    from coldopen.domain.videos import SearchQuery

    found = [[int(h.video_id.rsplit("-", 1)[1]) for h in service.search(SearchQuery(k=10, embedding=q)).neighbours] for q in qs]
    return round(recall(np.array(found), truth), 4)


def node_client(address: str, qs: np.ndarray, node_modules: Path) -> dict:
    """Search and the health floor from Node's @grpc/grpc-js (benchmarks/grpc_client.js) on the same server."""
    import json
    import os
    import subprocess

    root = Path(__file__).resolve().parent.parent
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(qs.tolist(), f)
    try:
        done = subprocess.run(
            ["node", str(root / "benchmarks/grpc_client.js"), address, str(root / "proto"), f.name, str(len(qs))],
            capture_output=True, text=True, timeout=600, check=True,
            env={**os.environ, "NODE_PATH": str(Path(node_modules).resolve() / "node_modules")},
        )
    finally:
        os.unlink(f.name)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  Node {out['node']}, @grpc/grpc-js {out['grpc_js']}")
    return {"grpc_node": tuple(out["grpc"]), "grpc_floor_node": tuple(out["grpc_floor"])}


def grpc_latency(vectors: np.ndarray, qs: np.ndarray, args, truth: np.ndarray) -> dict:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from coldopen.api.server import create_server
    from coldopen.app.service import ColdOpenService, Models
    from coldopen.config.settings import Settings
    from coldopen.domain.videos import SearchQuery
    from coldopen.v1 import coldopen_pb2 as pb
    from coldopen.v1 import coldopen_pb2_grpc as pb_grpc

    if args.tmp:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            listen="127.0.0.1:0",
            clip_model=args.clip_model,
            clip_pretrained="none",
            whisper_model=args.whisper_model,
            text_model=args.text_model,
            device=args.device,
            decode_workers=0,
            index_type=args.index_type,
            index_recall_target=args.recall_target,
            snapshot_interval_s=0,
        )
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
        index = service.core.indexes["visual"]
        if hasattr(index, "wait_rebuilt"):
            index.wait_rebuilt()  # an IVF trains in the background after the start
        health = health_pb2_grpc.HealthStub(channel)
        calls = {  # the same 300 queries through each layer of the service's own index, innermost first
            "faiss": lambda q: getattr(index, "_index", index).search(q[None, :], 10),
            "index": lambda q: index.search(q[None, :], 10),
            "service": lambda q: service.search(SearchQuery(k=10, embedding=q)),
            "grpc": lambda q: stub.Search(pb.SearchRequest(embedding=pb.EmbeddingQuery(values=q.tolist()), k=10),
                                          timeout=30),
            "grpc_floor": lambda q: health.Check(health_pb2.HealthCheckRequest(), timeout=30),
        }
        layers = {}
        try:
            for name, call in calls.items():
                for q in qs[:10]:
                    call(q)
                lat = []
                for q in qs[:300]:
                    t = time.perf_counter()
                    call(q)
                    lat.append((time.perf_counter() - t) * 1000)
                layers[name] = (round(float(np.percentile(lat, 50)), 3), round(float(np.percentile(lat, 99)), 3))
            assert len(calls["grpc"](qs[0]).neighbours) == 10
            if args.node_modules:
                layers.update(node_client(server.address, qs[:300], args.node_modules))
        finally:
            channel.close()
            server.stop(grace=1)
        print("  single-query p50 / p99 ms per layer: " + ", ".join(f"{k} {v[0]} / {v[1]}" for k, v in layers.items()))
        return {
            "backend": f"gRPC Search ({service.index_description})",
            "single_p50_ms": layers["grpc"][0],
            "single_p99_ms": layers["grpc"][1],
            "layers_p50_p99_ms": layers,
            "grpc_over_faiss_p50": round(layers["grpc"][0] / max(layers["faiss"][0], 1e-6), 2),
            **({"grpc_node_over_faiss_p50": round(layers["grpc_node"][0] / max(layers["faiss"][0], 1e-6), 2)}
               if "grpc_node" in layers else {}),
            "recall_at_10": served_recall(service, qs[:300], truth[:300]),
            "bulk_load_s": round(load_s, 1),
            "index_rebuild_s": round(rebuild_s, 1),
        }


def save(results: dict, out: Path, n: int | None = None, rows: list | None = None) -> None:
    """search.json after every measured row, so a run stopped at its budget (the GPU suite) keeps what it has."""
    if n is not None:
        results["sizes"][str(n)] = rows
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(results, indent=2))


def main() -> None:
    import faiss
    import torch

    from coldopen.storage.vectors import FaissIndex, TorchExactIndex, build_index, cuvs_missing, faiss_gpu_count

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument(
        "--vectors",
        type=Path,
        default=None,
        help="an (n, dim) float32 .npy of your own embeddings instead of the synthetic corpus "
        "(recall depends on the data: measure on yours); --sizes takes the first n rows",
    )
    p.add_argument("--clip-model", default="ViT-B-32", help="for the gRPC server (its embedding width = --dim)")
    p.add_argument("--device", default="auto")
    p.add_argument("--whisper-model", default="bundled", help="the service's --whisper-model (a CTranslate2 dir)")
    p.add_argument("--text-model", default="bundled", help="the service's --text-model (a sentence-embedding dir)")
    p.add_argument("--ef", default="16,32,64,128", help="hnsw efSearch values to measure")
    p.add_argument("--nprobe", default="4,8,16,32", help="ivf nprobe values to measure (k_factor_rf=4)")
    p.add_argument("--itopk", default="64,128", help="cagra itopk_size values to measure (where cuVS and CUDA are)")
    p.add_argument("--no-torch", action="store_true", help="skip torch exact on the CPU")
    p.add_argument("--no-grpc", action="store_true")
    p.add_argument("--only-grpc", action="store_true", help="only the gRPC server's own index, layer by layer")
    p.add_argument("--grpc-max", type=int, default=10**9, help="measure over gRPC only up to this many vectors")
    p.add_argument("--index-type", default="flat", help="the gRPC server's --index-type")
    p.add_argument("--recall-target", type=float, default=0.95, help="hnsw and ivf are first measured calibrated to "
                   "this recall@10, as the service serves them (its --index-recall-target); 0: only the fixed settings")
    p.add_argument("--tmp", default=None, help="where the gRPC run's store is written (needs ~2.2 GB per 1M)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    p.add_argument("--omp-threads", default="", help="also measure single queries with FAISS's OpenMP threads set "
                   "to each of these (e.g. 1,0; 0: every core), from one caller and from --callers at once")
    p.add_argument("--node-modules", type=Path, default=None,
                   help="a folder whose node_modules holds @grpc/grpc-js and @grpc/proto-loader: the gRPC layers are "
                        "also measured from Node (benchmarks/grpc_client.js), a client without Python's cost per call")
    p.add_argument("--callers", type=int, default=4, help="concurrent single-query callers for --omp-threads")
    args = p.parse_args()
    threads = [int(t) for t in args.omp_threads.split(",") if t.strip()]
    cuda = torch.cuda.is_available() and args.device != "cpu"
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} cores={os.cpu_count()}" + (f" {torch.cuda.get_device_name(0)}" if cuda else ""),
        "faiss": faiss.__version__,
        "torch": torch.__version__,
        "sizes": {},
    }
    no_cagra = "device is cpu" if args.device == "cpu" else cuvs_missing()
    if no_cagra:
        results["cagra"] = f"not measured: {no_cagra}"
        print(f"cagra not measured: {no_cagra}")
    for n in [int(s) for s in args.sizes.split(",")]:
        t = time.perf_counter()
        if args.vectors is not None:
            vectors = np.load(args.vectors, mmap_mode="r")[:n].astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            n, args.dim = len(vectors), vectors.shape[1]
        else:
            vectors = make_vectors(n, args.dim)
        qs = queries(vectors, 1024)
        far = far_queries(vectors, 1024)
        ids = np.arange(n, dtype=np.int64)
        exact = FaissIndex(args.dim)
        exact.add(ids, vectors)
        _, truth = exact.search(qs, 10)
        far_truth = (far, exact.search(far, 10)[1])
        print(f"\n{n:,} x {args.dim} vectors ready in {time.perf_counter() - t:.1f} s")
        if args.only_grpc:
            results["sizes"][str(n)] = [grpc_latency(vectors, qs, args, truth)]
            print(results["sizes"][str(n)][-1], flush=True)
            continue
        rows = [bench_index("flat (exact), faiss cpu", exact, qs, truth, far=far_truth)]
        rows[-1]["bytes_per_vector"] = round(len(faiss.serialize_index(exact._index)) / n)
        if threads and n <= 200_000:  # exact search at 10^6: 0.3 s a query, minutes per setting
            rows[-1]["single_by_omp_threads"] = by_threads(exact, qs, threads, args.callers)
        print(rows[-1], flush=True)
        save(results, args.out, n, rows)
        backends = [] if args.no_torch else [("torch exact, cpu", lambda: TorchExactIndex(args.dim, "cpu"))]
        if cuda:
            backends.insert(0, ("torch exact fp16, cuda", lambda: TorchExactIndex(args.dim, "cuda")))
        if cuda and faiss_gpu_count():
            backends.insert(0, ("flat (exact), faiss gpu", lambda: FaissIndex(args.dim, use_gpu=True)))
        for name, make in backends:
            index = make()
            index.add(ids, vectors)
            rows.append(bench_index(name, index, qs, truth, far=far_truth))
            print(rows[-1], flush=True)
            del index
            save(results, args.out, n, rows)
        del exact
        if not args.no_grpc and n <= args.grpc_max:
            rows.append(grpc_latency(vectors, qs, args, truth))
            print(rows[-1], flush=True)
            save(results, args.out, n, rows)
        for kind, knob, values in (("hnsw", "efSearch", args.ef), ("ivf", "nprobe", args.nprobe)):
            if not values and not args.recall_target:
                continue
            t = time.perf_counter()
            index = FaissIndex(args.dim, kind, recall_target=args.recall_target)
            index.add(ids, vectors)
            index.wait_rebuilt()  # ivf trains in the background once 10k vectors are in; then both calibrate
            build_s = round(time.perf_counter() - t, 1)
            size = round(len(faiss.serialize_index(index._index)) / n)
            # First as the service serves it (calibrated to --recall-target), then at each fixed setting.
            for value in ([None] if args.recall_target else []) + [v for v in values.split(",") if v]:
                if value is not None:
                    index.set_search_params(f"{knob}={value}" + (",k_factor_rf=4" if kind == "ivf" else ""))
                rows.append(
                    {
                        **bench_index(f"{kind} ({index.description.split(' inner')[0][6:]})", index, qs, truth, far=far_truth),
                        "build_s": build_s,
                        "bytes_per_vector": size,
                    }
                )
                if value is None and index.calibration is not None:
                    rows[-1]["calibration"] = dataclasses.asdict(index.calibration)
                if threads:
                    rows[-1]["single_by_omp_threads"] = by_threads(index, qs, threads, args.callers)
                print(rows[-1], flush=True)
                save(results, args.out, n, rows)
            del index
        if not no_cagra and args.itopk:
            t = time.perf_counter()
            index = build_index(args.dim, "cuda", "cagra")
            index.add(ids, vectors)
            build_s = round(time.perf_counter() - t, 1)
            for value in args.itopk.split(","):
                index._gpu.itopk_size = int(value)
                rows.append({**bench_index(f"cagra (cuVS, itopk_size={value})", index, qs, truth, far=far_truth),
                             "build_s": build_s})
                print(rows[-1], flush=True)
                save(results, args.out, n, rows)
            del index
        save(results, args.out, n, rows)
    save(results, args.out)  # --only-grpc's sizes too
    print(f"\nsearch, top-10, {results['machine']}, faiss {results['faiss']}, torch {results['torch']}")
    print(
        "| vectors | index | batched q/s | single p50 ms | single p99 ms | recall@10 | recall@10, far queries | build s "
        "| bytes/vector |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, rows in results["sizes"].items():
        for r in rows:
            print(
                f"| {int(n):,} | {r['backend']} | {r.get('batched_qps', '')} | {r['single_p50_ms']} | "
                f"{r['single_p99_ms']} | {r.get('recall_at_10', '')} | {r.get('recall_at_10_far', '')} | "
                f"{r.get('build_s', '')} | {r.get('bytes_per_vector', '')} |"
            )
    if threads:
        print("\n| vectors | index | OpenMP threads | callers | single p50 ms | p99 ms | queries/s |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for n, rows in results["sizes"].items():
            for r in rows:
                for t, row in r.get("single_by_omp_threads", {}).items():
                    for c, m in row.items():
                        print(f"| {int(n):,} | {r['backend']} | {t} | {c.split('_')[1]} | {m['p50_ms']} | {m['p99_ms']} "
                              f"| {m['qps']} |")
    print(f"\nwrote {args.out / 'search.json'}")


if __name__ == "__main__":
    main()
