"""FAISS in process: exact inner-product search, on a GPU copy where FAISS has GPU support."""

from __future__ import annotations

import threading

import faiss
import numpy as np


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

    shared = False  # an in-process view: each replica builds its own from the catalog

    def __init__(self, dim: int, use_gpu: bool = False):
        self.dim = dim
        self._cpu = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.Lock()
        self._gpu_res = faiss.StandardGpuResources() if use_gpu else None
        self._gpu = None
        self._gpu_stale = True
        self.description = f"faiss IndexFlatIP dim={dim} on {'gpu' if use_gpu else 'cpu'}"

    def add(self, ids: np.ndarray, vectors: np.ndarray, attrs: list[dict] | None = None) -> None:
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

    def close(self) -> None:
        """Nothing to release: the index lives in this process's memory."""
