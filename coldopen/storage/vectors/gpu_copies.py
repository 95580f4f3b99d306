"""GPU search copies of an in-process FAISS index: FAISS's own GPU index, or a CAGRA graph through cuVS.

The FAISS index on the CPU stays the source of truth (positions, tombstones, snapshots, rebuilds: see
faiss_index.py); a copy only answers searches. A copy is anything with
    add(vectors)                  append rows at the next positions
    search(queries, k)            -> (scores, positions), inner product, best first, -1 where none
and, optionally, `tail` (rows it searches by brute force; faiss_index.py rebuilds it when that grows).

Why CAGRA through cuVS and not FAISS's GpuIndexCagra: the FAISS GPU wheels on PyPI are built for
CUDA 12 and do not load on CUDA 13, while cuVS publishes CUDA 13 wheels (cuvs-cu13). Why cuVS's tiered
index around CAGRA: a CAGRA graph is built in one batch; the tiered index searches rows added since the
build by brute force and merges both, with the same row numbers as our positions, so a new upload is
searchable at once. Its twin on the CPU is HNSW32, so a host without cuVS, a snapshot read on a CPU host
and a background rebuild all keep working with the same positions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

CAGRA_TWIN = "HNSW32"   # the CPU index a `cagra` index keeps (and searches where cuVS cannot run)
CAGRA_MIN_ROWS = 4_096   # below this the tiered index only brute-forces (a graph of 64 edges needs more rows)
TAIL_REBUILD_MIN = 100_000  # rows searched by brute force before the graph is rebuilt in the background


class SearchCopy(Protocol):
    def add(self, vectors: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


Copier = Callable[[Any], "SearchCopy | None"]  # the CPU FAISS index -> its GPU copy, or None to search on the CPU


def cuvs_missing() -> str | None:
    """None when cuVS and a CUDA device can be used here; else why not, in words for a log line."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "torch sees no CUDA device"
    except ImportError:
        return "torch is not installed"
    try:
        from cuvs.neighbors import cagra, tiered_index  # noqa: F401
    except Exception as e:  # noqa: BLE001 - an ImportError, or a CUDA library that fails to load
        return f"cuVS is not importable ({type(e).__name__}: {str(e)[:120]}); install cuvs-cu13 for CUDA 13"
    return None


def faiss_gpu_copier() -> Copier:
    """FAISS's own GPU index (faiss-gpu builds), for the types FAISS can move; None for the others."""
    import faiss

    resources = faiss.StandardGpuResources()
    failed: list[str] = []  # once a type cannot move, its rebuilds stay on the CPU without trying again

    def copy(index: Any) -> SearchCopy | None:
        if failed:
            return None
        try:
            return faiss.index_cpu_to_gpu(resources, 0, index)
        except RuntimeError as e:  # e.g. HNSW has no GPU version: search it on the CPU
            failed.append(str(e).strip()[-200:])
            log.warning("this index has no FAISS GPU version (%s); searching it on the CPU", failed[0])
            return None

    return copy


def cagra_copier(device: str = "cuda", itopk_size: int = 64) -> Copier:
    """A CAGRA copy of each (re)built twin, its vectors read back from the twin."""

    def copy(index: Any) -> SearchCopy | None:
        vectors = index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
        return CagraCopy(index.d, vectors, device, itopk_size)

    return copy


class CagraCopy:
    """The rows of one index as a cuVS tiered index (CAGRA + brute force for rows added since the build).

    Built with the squared-L2 metric, CAGRA's first-supported one: for unit-length rows
    |q - x|^2 = |q|^2 + 1 - 2 q.x, so the order equals the inner product's for any query and the score
    is recovered exactly as q.x = (|q|^2 + 1 - d) / 2. Arrays cross to the device as torch tensors
    (cuVS reads any __cuda_array_interface__), so neither CuPy nor a second CUDA runtime is needed.
    """

    def __init__(self, dim: int, vectors: np.ndarray, device: str = "cuda", itopk_size: int = 64):
        import torch
        from cuvs.neighbors import cagra, tiered_index

        self._torch, self._cagra, self._tiered = torch, cagra, tiered_index
        self.dim, self.device, self.itopk_size = dim, device, itopk_size
        self._params = tiered_index.IndexParams(
            metric="sqeuclidean", algo="cagra", min_ann_rows=CAGRA_MIN_ROWS, create_ann_index_on_extend=False,
            upstream_params=cagra.IndexParams(metric="sqeuclidean"),
        )
        self._index = None
        self.rows = 0
        self._tail = 0  # rows the tiered index searches by brute force
        if len(vectors):
            self._index = tiered_index.build(self._params, self._on_device(vectors))
            self.rows = len(vectors)
            self._tail = 0 if len(vectors) >= CAGRA_MIN_ROWS else len(vectors)

    @property
    def tail(self) -> int:
        """Rows searched by brute force that a rebuild would put into the graph (0 while too few for one)."""
        return self._tail if self.rows >= CAGRA_MIN_ROWS else 0

    def _on_device(self, array: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    def add(self, vectors: np.ndarray) -> None:
        if not len(vectors):
            return
        if self._index is None:
            self._index = self._tiered.build(self._params, self._on_device(vectors))
        else:
            self._index = self._tiered.extend(self._index, self._on_device(vectors))
        self.rows += len(vectors)
        self._tail += len(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        if self._index is None or not len(queries):
            return scores, positions
        width = min(k, self.rows)
        params = self._cagra.SearchParams(itopk_size=max(self.itopk_size, 32 * -(-width // 32)))
        distances, neighbours = self._tiered.search(params, self._index, self._on_device(queries), width)
        d = self._torch.as_tensor(distances, device=self.device).cpu().numpy()
        found = self._torch.as_tensor(neighbours, device=self.device).cpu().numpy().astype(np.int64)
        norms = np.einsum("ij,ij->i", queries, queries)[:, None]
        ok = (found >= 0) & (found < self.rows)
        scores[:, :width] = np.where(ok, (norms + 1.0 - d) / 2.0, -np.inf)
        positions[:, :width] = np.where(ok, found, -1)
        return scores, positions
