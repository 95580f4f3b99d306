"""FAISS index types by short name, their default search parameters, the checks settings run on them, and
reading vectors back."""

from __future__ import annotations

import faiss
import numpy as np

from coldopen.storage.vectors.gpu_copies import CAGRA_TWIN

# Short names for `--index-type`; anything else is passed to faiss.index_factory as it is.
# ivf: inverted lists over 8-bit scalar-quantised codes (a quarter of the memory traffic per scanned
# vector), the candidates re-ranked with the exact vectors (RFlat), so scores are exact.
# cagra: a CAGRA graph on the GPU through cuVS, over its CPU twin HNSW32 (gpu_copies.py says why).
INDEX_TYPES = {"flat": "Flat", "hnsw": "HNSW32", "ivf": "IVF{nlist},SQ8,RFlat", "cagra": CAGRA_TWIN}
# Search parameters per short name (faiss.ParameterSpace syntax), chosen with benchmarks/search.py
# (recall@10 against exact search on its 10^6-vector corpus; see benchmarks/RESULTS.md).
DEFAULT_SEARCH_PARAMS = {"hnsw": "efSearch=128", "ivf": "nprobe=8,k_factor_rf=4", "cagra": "efSearch=128"}


def faiss_gpu_count() -> int:
    """GPUs FAISS can use: 0 for faiss-cpu builds or hosts without CUDA."""
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    try:
        return int(faiss.get_num_gpus())
    except RuntimeError:
        return 0


def check_index_type(index_type: str, search_params: str = "", dim: int = 64) -> str | None:
    """None if the index type and search parameters can be built; else what is wrong, for settings checks."""
    factory = INDEX_TYPES.get(index_type, index_type).replace("{nlist}", "64")
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        return (f"index_type {index_type!r} is neither flat, hnsw, ivf, cagra nor a FAISS index_factory string FAISS "
                f"accepts ({str(e).strip().splitlines()[-1][:200]})")
    params = search_params or DEFAULT_SEARCH_PARAMS.get(index_type, "")
    if params:
        try:
            faiss.ParameterSpace().set_index_parameters(index, params)  # type: ignore[arg-type]  # faiss's stub: it takes the string
        except RuntimeError as e:
            return (f"index_search_params {params!r} do not apply to index_type {index_type!r} "
                    f"({str(e).strip().splitlines()[-1][:200]}); e.g. efSearch=64 for hnsw, nprobe=64 for ivf")
    return None


def reconstruct_range(index: faiss.Index, start: int, end: int) -> np.ndarray:
    """The stored vectors at positions [start, end)."""
    if end <= start:
        return np.zeros((0, index.d), np.float32)
    return index.reconstruct_n(start, end - start)
