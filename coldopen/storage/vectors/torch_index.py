"""Exact inner-product search in torch, for CUDA hosts whose FAISS has no GPU support."""

from __future__ import annotations

import threading

import numpy as np


class TorchExactIndex:
    """Exact inner-product search as chunked matrix products + top-k in torch.

    For CUDA hosts where the installed FAISS has no GPU support (PyPI's faiss GPU wheels do not load
    on CUDA 13): rankers still get GPU latency. Vectors live in one device tensor grown by doubling;
    a removal moves the last vector into the freed slot, so the tensor stays dense. On CUDA vectors
    are fp16 (scores match fp32 FAISS to ~1e-3); on CPU fp32, where results equal FAISS exactly.
    """

    shared = False  # an in-process view: each replica builds its own from the catalog

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

    def add(self, ids: np.ndarray, vectors: np.ndarray, attrs: list[dict] | None = None) -> None:
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

    def close(self) -> None:
        """Nothing to release: the index lives in this process's memory."""
