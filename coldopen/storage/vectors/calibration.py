"""Search parameters that follow the corpus to a recall target.

Why: an approximate index's recall at fixed search parameters falls as the corpus grows, and how far depends
on the data and on how the index was built (benchmarks/RESULTS.md, 10^6 clustered 512-d vectors: HNSW32
built with efConstruction 40 at efSearch 128 finds recall@10 0.998 at 10^5 vectors but 0.79 at 10^6; IVF at
nprobe 8 finds 1.0 on near queries and 0.71 on far ones). So `FaissIndex` measures its own recall whenever
it is built and each time it has grown by a quarter (RECALIBRATE_GROWTH; at 10^6 a calibration took 27 s of
one background thread): a sample of its stored vectors, each moved to cosine 0.9 from where it was (an
upload that resembles a stored video; the queries benchmarks/search.py measures), asks for its k nearest;
the exact answers come from the index's own flat storage, and the index serves with the smallest setting of
its one knob (efSearch, nprobe) that reaches the target (its recall's one-sided 95% lower bound over the
sample does), never below the default. The stored vectors themselves would not do: asked of a graph index, a
stored vector finds its own node and the neighbour list built for it (HNSW8 on 3*10^4 clustered vectors:
0.955 recall@10 for stored vectors, 0.60 for near ones at the same efSearch).

Hand-written because FAISS's own autotune (`ParameterSpace.explore`) times every combination of every
parameter to keep a speed/recall Pareto front: on a serving index the timings are noise from the requests
it serves, and one knob's ladder, decided by recall alone, costs a fraction of it. Each chunk of the
calibration's searches holds the index's lock only for that chunk, so requests interleave with it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import faiss
import numpy as np

log = logging.getLogger(__name__)

SAMPLE = 256        # stored vectors asked per calibration: recall in steps of 1/2,560 at k = 10
CHUNK = 8           # queries per lock hold: <= ~0.2 s at 10^6 x 512 on 2 cores (exact, or HNSW at efSearch 4096)
QUERY_COSINE = 0.9  # of a calibration query to the stored vector it was made from
RECALIBRATE_GROWTH = 1.25  # measured at 10^6: calibrated at 5.6*10^5 and not since, recall had drifted 0.963 -> 0.922
CALIBRATE_MIN = 10_000  # below this many vectors the defaults were measured to reach 0.95 (RESULTS.md)
MAX_EF = 4096


@dataclass(frozen=True)
class Knob:
    """The one search parameter calibration turns, and the settings it tries, in order."""

    name: str                  # efSearch | nprobe
    values: tuple[int, ...]
    fixed: str = ""            # parameters kept as they are, in ParameterSpace syntax ("k_factor_rf=4")

    def params(self, value: int, sel: faiss.IDSelector) -> faiss.SearchParameters:
        """The setting as search-time parameters (the serving index's own are left alone), answering only
        from positions `sel` holds."""
        if self.name == "efSearch":
            p = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # in faiss, not in its stub
            p.efSearch, p.sel = value, sel
            return p
        ivf = faiss.SearchParametersIVF()
        ivf.nprobe, ivf.sel = value, sel
        refine = faiss.IndexRefineSearchParameters()
        refine.k_factor = float(_value(self.fixed, "k_factor_rf", 1))
        refine.base_index_params = ivf
        return refine

    def text(self, value: int) -> str:
        """The setting in ParameterSpace syntax, as `index_search_params` would say it."""
        return ",".join(x for x in (f"{self.name}={value}", self.fixed) if x)


@dataclass(frozen=True)
class Calibration:
    params: str                      # what the index serves with now
    recall: float                    # its measured recall@k
    reached: bool                    # the target was reached (else: the largest setting tried)
    tried: tuple[tuple[int, float], ...]
    vectors: int
    seconds: float


def _value(params: str, name: str, default: float) -> float:
    for part in params.split(","):
        key, _, v = part.partition("=")
        if key.strip() == name:
            return float(v)
    return default


def knob(index: faiss.Index, params: str) -> Knob | None:
    """The knob of an HNSW over flat storage or an IVF re-ranked by flat vectors, starting at `params`'
    setting (the type's default); None for any other index (nothing exact to measure against here)."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSWFlat):
        start = int(_value(params, "efSearch", index.hnsw.efSearch))
        return Knob("efSearch", _doubling(start, MAX_EF))
    if isinstance(index, faiss.IndexRefineFlat):
        ivf = faiss.try_extract_index_ivf(index.base_index)
        if ivf is not None:
            start = int(_value(params, "nprobe", ivf.nprobe))
            fixed = ",".join(p for p in params.split(",") if p and not p.startswith("nprobe"))
            return Knob("nprobe", _doubling(start, int(ivf.nlist)), fixed)
    return None


def _doubling(start: int, top: int) -> tuple[int, ...]:
    values = [max(1, start)]
    while values[-1] < top:
        values.append(min(top, 2 * values[-1]))
    return tuple(values)


def _exact_storage(index: faiss.Index) -> faiss.Index:
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSWFlat):
        return faiss.downcast_index(index.storage)
    assert isinstance(index, faiss.IndexRefineFlat), type(index)  # knob() returns None for anything else
    return faiss.downcast_index(index.refine_index)


def calibrate(index: faiss.Index, knob_: Knob, target: float, k: int = 10,
              hold: Callable[[], AbstractContextManager] = contextlib.nullcontext, seed: int = 0) -> Calibration:
    """Recall@k of `index` under each of the knob's settings in turn, stopping at the first that reaches
    `target`. `hold()` is entered around every touch of the index (its lock, for a serving index). Vectors
    added meanwhile are left out of every answer, exact and approximate, so a growing index is measured on
    the vectors it held when calibration began."""
    started = time.perf_counter()
    with hold():
        n = int(index.ntotal)
        exact = _exact_storage(index)
        rows = np.sort(np.random.default_rng(seed).choice(n, min(SAMPLE, n), replace=False))
        queries = _moved(exact.reconstruct_batch(rows), np.random.default_rng(seed + 1))
    held = faiss.IDSelectorRange(0, n)  # the positions held at the start (faiss's params keep it alive)
    every = faiss.SearchParameters()
    every.sel = held
    truth = _search(exact, queries, k, every, hold)
    tried = []
    for value in knob_.values:
        got = _search(index, queries, k, knob_.params(value, held), hold)
        per_query = np.array([len(set(a) & set(b)) / k for a, b in zip(got.tolist(), truth.tolist())])
        recall = float(per_query.mean())
        low = recall - 1.645 * float(per_query.std()) / float(np.sqrt(len(per_query)))  # one-sided 95% bound
        tried.append((value, round(recall, 4)))
        if low >= target:
            break
    value, recall = tried[-1]
    return Calibration(knob_.text(value), recall, bool(low >= target), tuple(tried), n, time.perf_counter() - started)


def _search(index: faiss.Index, queries: np.ndarray, k: int, params: faiss.SearchParameters | None,
            hold: Callable[[], AbstractContextManager]) -> np.ndarray:
    out = []
    for s in range(0, len(queries), CHUNK):
        with hold():
            _, ids = index.search(queries[s : s + CHUNK], k, params=params)
        out.append(ids)
    return np.concatenate(out)


def _moved(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each (unit) vector moved by isotropic noise to cosine QUERY_COSINE from where it was, on the sphere."""
    noise = rng.standard_normal(x.shape).astype(np.float32)
    noise -= (noise * x).sum(1, keepdims=True) * x  # orthogonal to x: the cosine is exact
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = QUERY_COSINE * x + np.sqrt(1 - QUERY_COSINE**2) * noise
    return np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float32)


def tune(index: faiss.Index, default_params: str, target: float, label: str,
         hold: Callable[[], AbstractContextManager] = contextlib.nullcontext) -> Calibration | None:
    """Calibrate `index` from its default parameters, logged; None where the target is 0, the index holds
    fewer than CALIBRATE_MIN vectors (a recall@10 over a handful of vectors says nothing), has no knob
    calibrate turns, or calibrating failed (logged: the index keeps its parameters, the next try is at the
    next build or growth)."""
    knob_ = knob(index, default_params) if target and index.ntotal >= CALIBRATE_MIN else None
    if knob_ is None:
        return None
    try:
        tuned = calibrate(index, knob_, target, hold=hold)
    except Exception:  # noqa: BLE001 — a serving index must not die of its calibration
        log.exception("calibrating the %s index's search parameters failed; it keeps them as they are", label)
        return None
    tried = ", ".join(f"{v}: {r:.3f}" for v, r in tuned.tried)
    say = log.info if tuned.reached else log.warning
    say("%s search parameters %s: recall@10 %.3f on %d of its %d vectors (target %.2f%s; %s %s) in %.1f s",
        label, tuned.params, tuned.recall, min(SAMPLE, tuned.vectors), tuned.vectors, target,
        "" if tuned.reached else ", not reached at the largest setting: consider another index type",
        knob_.name, tried, tuned.seconds)
    return tuned
