"""What ContentPriors asks the service for, answered from a synthetic world's arrays (`vectors`: modality
-> (n, dim); `log_rate`: (n,); `n`), every video with 50,000 impressions. Shared by the prior's tests."""

from __future__ import annotations

import numpy as np


class Served:
    vectors: dict[str, np.ndarray]
    log_rate: np.ndarray
    n: int

    def rows_vectors(self, rows):
        return {m: v[np.asarray(rows, int)] for m, v in self.vectors.items()}

    def rates(self, rows):
        rows = np.asarray(rows, int)
        return np.exp(self.log_rate[rows]), np.full(len(rows), 50_000.0)

    def eligible(self, min_impressions):
        return np.arange(self.n)
