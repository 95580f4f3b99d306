"""Vector indexes for video-level embeddings, behind one interface with interchangeable backends.

Vectors are L2-normalised, so inner product is cosine similarity. Ids are the catalog's int64 row ids;
the string video_id <-> int64 mapping lives in the catalog. An index is a view built from the catalog,
so it never holds anything the catalog has not committed.

  faiss_index.py   FAISS in process (the default): flat (exact), HNSW, IVF or any index_factory string,
                   on GPU where the FAISS build supports it; tombstone deletes, background rebuilds
  gpu_copies.py    the GPU copies a FAISS index searches through: FAISS GPU, or CAGRA through cuVS (`cagra`)
  torch_index.py   exact search in torch, for CUDA hosts whose FAISS has no GPU support (flat only)
  milvus_index.py  Milvus, shared by all replicas (`--vector-store http://host:19530` or a Milvus Lite `*.db`)
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Protocol

import numpy as np

from coldopen.config.settings import Settings
from coldopen.storage.vectors.faiss_index import FaissIndex
from coldopen.storage.vectors.faiss_types import DEFAULT_BUILD_PARAMS, check_index_type, faiss_gpu_count
from coldopen.storage.vectors.gpu_copies import cagra_copier, cuvs_missing
from coldopen.storage.vectors.torch_index import TorchExactIndex

log = logging.getLogger(__name__)

__all__ = [
    "VectorIndex",
    "FaissIndex",
    "TorchExactIndex",
    "build_index",
    "check_index_type",
    "cuvs_missing",
    "faiss_gpu_count",
    "open_indexes",
]


class VectorIndex(Protocol):
    dim: int
    shared: bool  # True: one store for every replica (written once, by the writer); False: a per-process view

    @property
    def description(self) -> str: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray, attrs: list[dict] | None = None) -> None:
        """Insert or replace (shared stores) vectors; `attrs` are per-row filter fields (creator, language, sound)."""
        ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k), best first; missing slots have id -1."""
        ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


def build_index(
    dim: int, device: str, index_type: str = "flat", search_params: str = "", recall_target: float = 0.0,
    build_params: str = "",
) -> VectorIndex:
    """FAISS on GPU when it can; for exact search, torch on CUDA when FAISS cannot; FAISS on CPU otherwise.
    `cagra`: CAGRA on the GPU through cuVS over an HNSW32 twin, or the twin alone on the CPU (logged, and
    said in the description) where cuVS or CUDA is missing or device is cpu."""
    if index_type == "cagra":
        missing = "device is cpu" if device == "cpu" else cuvs_missing()
        if missing is None:
            return FaissIndex(dim, index_type, search_params, copier=cagra_copier(),
                              where="gpu (CAGRA through cuVS; HNSW32 twin on the CPU)", build_params=build_params)
        _warn_once(f"index type cagra: searching its CPU twin HNSW32, as {missing}")
        # The twin serves, so its graph is built as hnsw's is (on a GPU host only the CAGRA graph is searched).
        return FaissIndex(dim, index_type, search_params, where=f"cpu (the CAGRA twin: {missing})",
                          recall_target=recall_target, build_params=build_params or DEFAULT_BUILD_PARAMS["hnsw"])
    if device in ("auto", "cuda") and faiss_gpu_count() > 0:
        return FaissIndex(dim, index_type, search_params, use_gpu=True, build_params=build_params)
    if device in ("auto", "cuda") and index_type == "flat":
        import torch

        if torch.cuda.is_available():
            return TorchExactIndex(dim, "cuda")
    return FaissIndex(dim, index_type, search_params, recall_target=recall_target, build_params=build_params)


@functools.cache
def _warn_once(message: str) -> None:
    """One log line per process for what every modality's index would say alike."""
    log.warning(message)


def open_indexes(settings: Settings, dims: dict[str, int]) -> dict[str, VectorIndex]:
    """One index per modality: in-process (FAISS or torch) when settings.vector_store is empty, else
    Milvus collections named <milvus_collection_prefix>_<modality>."""
    if not settings.vector_store:
        return {
            m: build_index(dim, settings.device, settings.index_type, settings.index_search_params,
                           settings.index_recall_target, settings.index_build_params)
            for m, dim in dims.items()
        }
    from coldopen.storage.vectors.milvus_index import MilvusIndex

    return {
        m: MilvusIndex(
            settings.vector_store,
            f"{settings.milvus_collection_prefix}_{m}",
            dim,
            settings.vector_index,
            json.loads(settings.vector_index_params),
            json.loads(settings.vector_search_params),
        )
        for m, dim in dims.items()
    }
