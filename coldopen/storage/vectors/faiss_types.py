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
# Parameters set on a new index before vectors go in. hnsw: FAISS's efConstruction 40 builds a graph that
# no efSearch brings past recall@10 0.945 on benchmarks/search.py's 10^6 vectors (0.79 at efSearch 128);
# built with 128 it finds 0.995 at efSearch 128 (80: 0.972) for about twice the build time of 80 (456 s vs
# 232 s at 10^6 on 2 cores; RESULTS.md "how hard the HNSW graph is built"). A build runs in the background.
DEFAULT_BUILD_PARAMS = {"hnsw": "efConstruction=128"}


def faiss_gpu_count() -> int:
    """GPUs FAISS can use: 0 for faiss-cpu builds or hosts without CUDA."""
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    try:
        return int(faiss.get_num_gpus())
    except RuntimeError:
        return 0


def check_index_type(index_type: str, search_params: str = "", dim: int = 64, build_params: str = "") -> str | None:
    """None if the index type and its search and build parameters can be built; else what is wrong, for
    settings checks."""
    factory = INDEX_TYPES.get(index_type, index_type).replace("{nlist}", "64")
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        return (f"index_type {index_type!r} is neither flat, hnsw, ivf, cagra nor a FAISS index_factory string FAISS "
                f"accepts ({str(e).strip().splitlines()[-1][:200]})")
    search_params = search_params or DEFAULT_SEARCH_PARAMS.get(index_type, "")
    build_params = build_params or DEFAULT_BUILD_PARAMS.get(index_type, "")
    for setting, params, example in (
        ("index_search_params", search_params, "efSearch=64 for hnsw, nprobe=64 for ivf"),
        ("index_build_params", build_params, "efConstruction=64 for hnsw"),
    ):
        if params:
            try:
                faiss.ParameterSpace().set_index_parameters(index, params)  # type: ignore[arg-type]  # faiss's stub: it takes the string
            except RuntimeError as e:
                return (f"{setting} {params!r} do not apply to index_type {index_type!r} "
                        f"({str(e).strip().splitlines()[-1][:200]}); e.g. {example}")
    return None


def reconstruct_range(index: faiss.Index, start: int, end: int) -> np.ndarray:
    """The stored vectors at positions [start, end)."""
    if end <= start:
        return np.zeros((0, index.d), np.float32)
    return index.reconstruct_n(start, end - start)


def graph_build_effort(index: faiss.Index) -> int | None:
    """An HNSW index's efConstruction (what the graph was, or will be, built with); None for other types."""
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    return int(hnsw.efConstruction) if hnsw is not None else None
