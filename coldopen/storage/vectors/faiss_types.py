"""FAISS index types by short name, their default search parameters, the checks settings run on them, and
reading vectors back."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import NamedTuple

import faiss
import numpy as np

from coldopen.storage.vectors.gpu_copies import CAGRA_TWIN

log = logging.getLogger(__name__)

TRAIN_MIN = 10_000  # a type that needs training serves exact (flat) search until this many vectors
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
                f"accepts ({faiss_reason(e)})")
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
                        f"({faiss_reason(e)}); e.g. {example}")
    return None


def reconstruct_range(index: faiss.Index, start: int, end: int) -> np.ndarray:
    """The stored vectors at positions [start, end)."""
    if end <= start:
        return np.zeros((0, index.d), np.float32)
    return index.reconstruct_n(start, end - start)


def faiss_reason(e: Exception) -> str:
    """FAISS's own words for an error, without the "Error in <function> at <its source file>:<line>:" prefix."""
    last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    return re.sub(r"^Error in .*? at \S+:\d+: ", "", last)[:200]


def graph_build_effort(index: faiss.Index) -> int | None:
    """An HNSW index's efConstruction (what the graph was, or will be, built with); None for other types."""
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    return int(hnsw.efConstruction) if hnsw is not None else None


class Built(NamedTuple):
    """A fresh index and what it was built as."""

    fresh: faiss.Index
    staged: bool    # a flat stand-in for a type that cannot be trained on these vectors yet
    factory: str    # the factory string with the list count filled in ("" when staged before any try)
    nlist: int      # that list count (0: not an IVF whose count follows the corpus)
    retry_at: int   # staged after a failed training: the vector count to try again at (0: none)


def empty_index(dim: int, factory: str, configure: Callable[[faiss.Index], None]) -> tuple[faiss.Index, bool]:
    """A new empty index, and whether it is a flat stand-in for a type that needs training first."""
    if "{nlist}" in factory:
        return faiss.IndexFlatIP(dim), True
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        return faiss.IndexFlatIP(dim), True
    configure(index)
    return index, False


def index_holding(dim: int, factory: str, vectors: np.ndarray, configure: Callable[[faiss.Index], None]) -> Built:
    """An index of `factory` holding `vectors` at positions 0..n-1: an IVF gets 4 sqrt(n) lists, a type that
    trains is trained on up to 256k of them, and `configure` sets its parameters before they go in."""
    n = len(vectors)
    if "{nlist}" in factory:
        if n < TRAIN_MIN:
            flat = faiss.IndexFlatIP(dim)
            flat.add(vectors)
            return Built(flat, True, "", 0, 0)
        nlist = int(min(65_536, max(64, 4 * math.sqrt(n))))
        factory = factory.replace("{nlist}", str(nlist))
    else:
        nlist = 0
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        sample = vectors[np.random.default_rng(0).choice(n, min(n, 256 * 1024), replace=False)] if n else vectors
        try:
            index.train(sample)
        except RuntimeError as e:  # too few vectors for this type: stay exact until twice as many
            retry_at = max(TRAIN_MIN, 2 * n)
            log.warning("cannot train %s on %d vectors yet (%s); serving exact search until %d", factory, n,
                        faiss_reason(e), retry_at)
            flat = faiss.IndexFlatIP(dim)
            flat.add(vectors)
            return Built(flat, True, factory, nlist, retry_at)
    configure(index)
    index.add(vectors)
    return Built(index, False, factory, nlist, 0)
