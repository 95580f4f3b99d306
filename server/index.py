"""Vector index for video-level embeddings, behind a small interface so other backends can be added.

Vectors are L2-normalised, so inner product is cosine similarity. Ids are the store's int64
row ids; the string video_id <-> int64 mapping lives in the store. The index is an in-memory
view rebuilt from the store at start-up, so it never holds anything the store has not committed.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import faiss
import numpy as np

log = logging.getLogger(__name__)


class VectorIndex(Protocol):
    dim: int
    description: str

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k), best first; missing slots have id -1."""
        ...

    def __len__(self) -> int: ...


def faiss_gpu_count() -> int:
    """GPUs FAISS can use: 0 for faiss-cpu builds or hosts without CUDA."""
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    try:
        return int(faiss.get_num_gpus())
    except RuntimeError:
        return 0


class FaissFlatIndex:
    """Exact inner-product search (IndexIDMap2 over IndexFlatIP).

    The CPU index is authoritative (it supports removal by id); when FAISS has GPU support and a
    GPU is present, searches run on a GPU copy that is refreshed after writes.
    """

    def __init__(self, dim: int, use_gpu: bool = False):
        self.dim = dim
        self._cpu = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.Lock()
        self._gpu_res = faiss.StandardGpuResources() if use_gpu else None
        self._gpu = None
        self._gpu_stale = True
        self.description = f"faiss IndexFlatIP dim={dim} on {'gpu' if use_gpu else 'cpu'}"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            self._cpu.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
            self._gpu_stale = True

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            self._cpu.remove_ids(np.asarray(ids, dtype=np.int64))
            self._gpu_stale = True

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            index = self._cpu
            if self._gpu_res is not None:
                if self._gpu_stale:
                    self._gpu = faiss.index_cpu_to_gpu(self._gpu_res, 0, self._cpu)
                    self._gpu_stale = False
                index = self._gpu
            return index.search(queries, k)

    def __len__(self) -> int:
        return int(self._cpu.ntotal)


class TorchExactIndex:
    """Exact inner-product search as chunked matrix products + top-k in torch.

    For CUDA hosts where the installed FAISS has no GPU support (PyPI's faiss GPU wheels do not load
    on CUDA 13): rankers still get GPU latency. Vectors live in one device tensor grown by doubling;
    a removal moves the last vector into the freed slot, so the tensor stays dense. On CUDA vectors
    are fp16 (scores match fp32 FAISS to ~1e-3); on CPU fp32, where results equal FAISS exactly.
    """

    def __init__(self, dim: int, device: str = "cpu", chunk: int = 1 << 20):
        import torch

        self._torch = torch
        self.dim = dim
        self.device = device
        self._dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self._vectors = torch.zeros((1024, dim), dtype=self._dtype, device=device)
        self._ids = np.zeros(1024, dtype=np.int64)
        self._slot: dict[int, int] = {}
        self._n = 0
        self._chunk = chunk
        self._lock = threading.Lock()
        self.description = f"torch exact inner product dim={dim} on {device} ({str(self._dtype).split('.')[-1]})"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.asarray(ids, dtype=np.int64)
        with self._lock:
            for i, v in zip(ids.tolist(), vectors):
                slot = self._slot.get(i)
                if slot is None:
                    if self._n == self._vectors.shape[0]:
                        grow = self._torch.zeros_like(self._vectors)
                        self._vectors = self._torch.cat([self._vectors, grow])
                        self._ids = np.concatenate([self._ids, np.zeros_like(self._ids)])
                    slot = self._n
                    self._n += 1
                    self._slot[i] = slot
                    self._ids[slot] = i
                self._vectors[slot] = self._torch.from_numpy(v).to(self.device, self._dtype)

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            for i in np.asarray(ids, dtype=np.int64).tolist():
                slot = self._slot.pop(i, None)
                if slot is None:
                    continue
                last = self._n - 1
                if slot != last:
                    self._vectors[slot] = self._vectors[last]
                    self._ids[slot] = self._ids[last]
                    self._slot[int(self._ids[slot])] = slot
                self._n = last

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)).to(self.device, self._dtype)
        with self._lock:
            n = self._n
            best_s = torch.full((q.shape[0], 0), -torch.inf, device=self.device)
            best_i = torch.zeros((q.shape[0], 0), dtype=torch.long, device=self.device)
            for start in range(0, n, self._chunk):
                scores = (q @ self._vectors[start : min(n, start + self._chunk)].T).float()
                s, i = scores.topk(min(k, scores.shape[1]), dim=1)
                best_s, order = torch.cat([best_s, s], dim=1).topk(min(k, best_s.shape[1] + s.shape[1]), dim=1)
                best_i = torch.cat([best_i, i + start], dim=1).gather(1, order)
            slots = best_i.cpu().numpy()
            ids = self._ids[slots] if slots.size else slots
        out_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        out_i = np.full((q.shape[0], k), -1, dtype=np.int64)
        out_s[:, : slots.shape[1]] = best_s.cpu().numpy()
        out_i[:, : slots.shape[1]] = ids
        return out_s, out_i

    def __len__(self) -> int:
        return self._n


def build_index(dim: int, device: str) -> VectorIndex:
    """FAISS on GPU when it can; torch on CUDA when FAISS cannot; FAISS on CPU otherwise."""
    if device in ("auto", "cuda") and faiss_gpu_count() > 0:
        return FaissFlatIndex(dim, use_gpu=True)
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return TorchExactIndex(dim, "cuda")
    return FaissFlatIndex(dim)
