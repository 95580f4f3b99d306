"""FAKE cuVS: stands in for NVIDIA cuVS, which needs CUDA and so cannot run on CPU CI.

It copies the calls of cuvs-cu13 26.10 that coldopen/storage/vectors/gpu_copies.py makes (keyword-only
parameter classes, `tiered_index.build / extend / search`, (distances, neighbors) in that order,
squared-L2 distances, an `upstream_params` type check, itopk_size >= k) and answers them by exact search
in torch on the CPU, so the adapter's own logic (positions, score recovery, brute-forced tail, rebuilds)
is tested here. Whether the real library agrees is checked on a GPU by the suite (benchmarks/gpu_suite.py).
"""

from __future__ import annotations

import sys
import types

import torch


class CagraIndexParams:
    def __init__(self, *, metric="sqeuclidean", intermediate_graph_degree=128, graph_degree=64, build_algo="ivf_pq"):
        if metric not in ("sqeuclidean", "inner_product", "euclidean", "cosine"):
            raise KeyError(metric)
        self.metric = metric


class CagraSearchParams:
    def __init__(self, *, max_queries=0, itopk_size=64, max_iterations=0, algo="auto", search_width=1):
        self.itopk_size = itopk_size


class TieredIndexParams:
    def __init__(self, *, metric="sqeuclidean", algo="cagra", upstream_params=None, min_ann_rows=None,
                 create_ann_index_on_extend=None):
        if algo == "cagra" and upstream_params is not None and not isinstance(upstream_params, CagraIndexParams):
            raise TypeError(f"Expected cagra.IndexParams, got {upstream_params.__class__} ")
        self.metric = metric
        self.min_ann_rows = min_ann_rows


class TieredIndex:
    def __init__(self, rows: torch.Tensor):
        self.rows = rows
        self.trained = True


def build(params: TieredIndexParams, dataset) -> TieredIndex:
    assert params.metric == "sqeuclidean", "the fake only answers the metric gpu_copies.py uses"
    return TieredIndex(torch.as_tensor(dataset, dtype=torch.float32).clone())


def extend(index: TieredIndex, new_vectors) -> TieredIndex:
    return TieredIndex(torch.cat([index.rows, torch.as_tensor(new_vectors, dtype=torch.float32)]))


def search(search_params, index: TieredIndex, queries, k, neighbors=None, distances=None, resources=None, filter=None):
    if not index.trained:
        raise ValueError("Index needs to be built before calling search.")
    if search_params.itopk_size < k:
        raise ValueError(f"itopk_size {search_params.itopk_size} < k {k}")
    q = torch.as_tensor(queries, dtype=torch.float32)
    d = (q * q).sum(1, keepdim=True) + (index.rows * index.rows).sum(1)[None, :] - 2 * q @ index.rows.T
    dist, found = d.topk(min(k, index.rows.shape[0]), dim=1, largest=False)
    return dist, found.to(torch.int64)


def install(monkeypatch) -> None:
    """Make `import cuvs.neighbors.cagra / tiered_index` find this fake for one test."""
    cuvs, neighbors = types.ModuleType("cuvs"), types.ModuleType("cuvs.neighbors")
    cagra, tiered = types.ModuleType("cuvs.neighbors.cagra"), types.ModuleType("cuvs.neighbors.tiered_index")
    cagra.IndexParams, cagra.SearchParams = CagraIndexParams, CagraSearchParams  # type: ignore[attr-defined]
    tiered.IndexParams, tiered.build, tiered.extend, tiered.search = (  # type: ignore[attr-defined]
        TieredIndexParams, build, extend, search)
    neighbors.cagra, neighbors.tiered_index = cagra, tiered  # type: ignore[attr-defined]
    cuvs.neighbors = neighbors  # type: ignore[attr-defined]
    for name, module in (("cuvs", cuvs), ("cuvs.neighbors", neighbors), ("cuvs.neighbors.cagra", cagra),
                         ("cuvs.neighbors.tiered_index", tiered)):
        monkeypatch.setitem(sys.modules, name, module)
