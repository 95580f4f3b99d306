"""One modality of the pool as a read-only vector index (`Search --performing-only`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from coldopen.ranking.pool.base import PerformancePool


class PoolIndex:
    """One modality of the pool as a read-only vector index (`Search --performing-only`): an exact inner
    product over the routing view's dense matrix, under the pool's lock. The pool is the performing
    subset, so a matrix product over it is what a flat index would do, without a second copy of every
    member's vectors to keep in step (and to grow, a copy of all of them, under the lock)."""

    shared = False

    def __init__(self, pool: PerformancePool, modality: str):
        self._pool, self._modality = pool, modality

    def __len__(self) -> int:
        with self._pool.reading() as view:
            return int(view.has(self._modality).sum())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        with self._pool.reading() as view:
            have = np.flatnonzero(view.has(self._modality))
            if not len(have):
                return out_s, out_i
            scores = queries @ getattr(view, self._modality)[have].T
            take = min(k, len(have))
            top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            out_s[:, :take] = np.take_along_axis(top_scores, order, axis=1)
            out_i[:, :take] = view.rows[have][np.take_along_axis(top, order, axis=1)]
        return out_s, out_i
