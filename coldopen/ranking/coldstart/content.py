"""Content priors for the service: neighbours among every video with enough impressions, found through
the vector indexes, fused, and turned into a calibrated prior (ranking/coldstart/prior.py).

Candidates: the `prior_candidates` nearest videos of each modality the query has, from the indexes
that hold every video (not the pool), kept when they have `prior_min_impressions` impressions (their
score is their own, not their smoothing's). Their similarities in every modality are fused as routing
fuses them (z-scores over the candidates).

Calibration, cached for `prior_calibration_s` or until the eligible videos grow or shrink by 10%
(recomputed on every call while there are too few to calibrate on: then it is only the corpus spread):
`prior_calibration_videos` eligible videos are held out one at a time and predicted from the others,
with each modality alone and then fused. A modality's learned weight is the square of its held-out
rank correlation (0 when it predicts nothing): the weights that the prior uses, and that Route uses
with `--route-weights learned`. The conformal quantiles come from the fused predictions.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from coldopen.config.settings import Settings
from coldopen.domain.modalities import EMBEDDED
from coldopen.domain.outlook import Prior
from coldopen.ranking.coldstart import prior as cp
from coldopen.ranking.routing import DEFAULT_WEIGHTS, fusion_inputs

if TYPE_CHECKING:
    from coldopen.storage.vectors import VectorIndex

log = logging.getLogger(__name__)

MODALITIES = EMBEDDED  # the prior learns from the modalities with a vector index
MIN_RHO = 0.05  # a modality whose held-out rank correlation is below this predicts nothing: weight 0
# ... nor one whose correlation is within noise: below RHO_Z standard errors of a zero correlation over
# n held-out videos (1/sqrt(n - 1)), so a small corpus does not hand all the weight to a lucky modality
RHO_Z = 2.0
CALIBRATION_CHUNK = 32  # held-out videos whose candidates' vectors are read at once (~25k rows)


class ContentPriors:
    def __init__(
        self,
        settings: Settings,
        indexes: Mapping[str, VectorIndex],
        vectors: Callable[[np.ndarray], dict[str, np.ndarray]],
        rates: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        eligible: Callable[[float], np.ndarray],
        count: Callable[[float], int] | None = None,
    ):
        """`indexes`: modality -> vector index over every video; `vectors(rows)`: modality -> (n, dim) matrix
        (zero rows where a video lacks the modality); `rates(rows)`: (rates, impressions) from the score
        book; `eligible(min_impressions)`: rows with that many impressions; `count(min_impressions)`: how
        many (checked on every call, so it should not build the rows; default: len(eligible(...)))."""
        self._s = settings
        self._indexes = indexes
        self._vectors = vectors
        self._rates = rates
        self._eligible = eligible
        self._count = count or (lambda least: len(eligible(least)))
        self._lock = threading.Lock()
        self._calibration: cp.Calibration | None = None
        self._weights: dict[str, float] | None = None
        self._learned = False  # the weights came from held-out predictions, not the defaults
        self.held_out_rank_correlations: dict[str, float] = {}  # per modality, for the log and benchmarks
        self._refresher: threading.Thread | None = None
        self._at = 0.0

    # --- public ------------------------------------------------------------------
    def prior(self, query: dict[str, np.ndarray | None], exclude: int | None = None) -> Prior:
        calibration, weights = self.calibration()
        rows, log_scores = self._candidates([query], {exclude} if exclude is not None else set())[0]
        sims = self._similarities([query], [rows])[0]
        return cp.prior(self._predict(query, sims, log_scores, weights, calibration.corpus_log_sd), calibration)

    def calibration(self) -> tuple[cp.Calibration, dict[str, float]]:
        """The calibration and the prior's modality weights (learned, or the defaults when none predicts).
        The first one is computed inline; a stale one keeps serving while its successor is computed in a
        background thread (seconds at 10^6 videos: 300 searches per modality), so neither Route nor
        Ingest waits for a recalibration."""
        with self._lock:
            c = self._calibration
            due = (
                c is None
                or c.samples < cp.MIN_CALIBRATION
                or time.monotonic() - self._at > self._s.prior_calibration_s
                or abs(self._count(self._s.prior_min_impressions) - c.eligible) > 0.1 * c.eligible
            )
            if not due:
                assert c is not None
                return c, dict(self._weights or {})
            if c is not None and c.samples >= cp.MIN_CALIBRATION:
                if self._refresher is None or not self._refresher.is_alive():
                    self._refresher = threading.Thread(
                        target=self._refresh, args=(False,), name="coldopen-prior-calibration", daemon=True
                    )
                    self._refresher.start()
                return c, dict(self._weights or {})
        # none yet, or too few engaged videos to hold out (then it is only the corpus spread: cheap)
        return self._refresh(True)

    def _refresh(self, inline: bool) -> tuple[cp.Calibration, dict[str, float]]:
        started = time.perf_counter()
        try:
            c, weights, learned, rho = self._calibrate(self._eligible(self._s.prior_min_impressions))
        except Exception:
            if inline:
                raise
            log.exception("recalibrating the content prior failed; the previous calibration stays in force")
            assert self._calibration is not None  # a refresh in the background replaces one that exists
            return self._calibration, dict(self._weights or {})
        with self._lock:
            self._calibration, self._weights, self._learned = c, weights, learned
            self.held_out_rank_correlations = rho
            self._at = time.monotonic()
        log.info(
            "content prior calibrated on %d of %d eligible videos in %.2f s: q %.2f..%.2f, Spearman %.3f, "
            "per-modality Spearman %s, weights %s (learned: %s)",
            c.samples,
            c.eligible,
            time.perf_counter() - started,
            c.q_low,
            c.q_high,
            c.rank_correlation,
            rho,
            weights,
            learned,
        )
        return c, dict(weights)

    def learned_weights(self) -> dict[str, float] | None:
        """Route's weights under --route-weights learned; None while no modality predicts held-out scores."""
        _, weights = self.calibration()
        return weights if self._learned else None

    # --- internals ---------------------------------------------------------------
    def _calibrate(self, eligible: np.ndarray) -> tuple[cp.Calibration, dict[str, float], bool, dict[str, float]]:
        """(calibration, weights, whether they were learned, per-modality held-out Spearman)."""
        rates, _ = self._rates(eligible)
        corpus = np.log(rates[rates > 0])
        corpus_sd = float(corpus.std()) if len(corpus) > 1 else 1.0
        if len(eligible) < cp.MIN_CALIBRATION + 1:
            return cp.calibrate([], np.zeros(0), corpus, len(eligible)), dict(DEFAULT_WEIGHTS), False, {}
        rng = np.random.default_rng(len(eligible))
        held = np.sort(rng.choice(eligible, min(self._s.prior_calibration_videos, len(eligible)), replace=False))
        queries = self._vectors(held)
        per_query = [{m: (queries[m][i] if np.any(queries[m][i]) else None) for m in MODALITIES} for i in range(len(held))]
        found = self._candidates(per_query, None, exclude_each=held)
        sims: list[dict[str, np.ndarray]] = []
        for i in range(0, len(held), CALIBRATION_CHUNK):
            sims += self._similarities(
                per_query[i : i + CALIBRATION_CHUNK], [rows for rows, _ in found[i : i + CALIBRATION_CHUNK]]
            )
        held_rates, _ = self._rates(held)
        actual = np.log(np.maximum(held_rates, 1e-300))
        rho, counted = {}, {}
        for m in MODALITIES:
            one = {x: float(x == m) for x in MODALITIES}
            preds = [
                self._predict(q, s, ys, one, corpus_sd) if q[m] is not None else None
                for q, s, (_, ys) in zip(per_query, sims, found)
            ]
            pairs = [(p.log_mean, y) for p, y in zip(preds, actual) if p is not None]
            rho[m] = (
                cp.spearman(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])) if len(pairs) >= 3 else float("nan")
            )
            counted[m] = len(pairs)
        weights = {
            m: r**2 if math.isfinite(r) and r >= max(MIN_RHO, RHO_Z / math.sqrt(max(counted[m] - 1, 1))) else 0.0
            for m, r in rho.items()
        }
        learned = sum(weights.values()) > 0
        if not learned:
            weights = {m: DEFAULT_WEIGHTS[m] for m in MODALITIES}
        preds = [self._predict(q, s, ys, weights, corpus_sd) for q, s, (_, ys) in zip(per_query, sims, found)]
        return cp.calibrate(preds, actual, corpus, len(eligible)), weights, learned, rho

    def _candidates(
        self, queries: list[dict[str, np.ndarray | None]], exclude: set[int] | None, exclude_each: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (candidate rows with enough impressions, their log scores)."""
        found: list[set[int]] = [set() for _ in queries]
        for m in MODALITIES:
            index = self._indexes.get(m)
            have = [i for i, q in enumerate(queries) if q.get(m) is not None]
            if index is None or not have or len(index) == 0:
                continue
            k = min(self._s.prior_candidates + 1, len(index))
            _, ids = index.search(np.stack([v for i in have if (v := queries[i][m]) is not None]).astype(np.float32), k)
            for i, row_ids in zip(have, ids):
                found[i].update(int(x) for x in row_ids if x >= 0)
        out = []
        for i, rows in enumerate(found):
            if exclude:
                rows -= exclude
            if exclude_each is not None:
                rows.discard(int(exclude_each[i]))
            arr = np.array(sorted(rows), np.int64)
            rates, imp = self._rates(arr)
            keep = (imp >= self._s.prior_min_impressions) & (rates > 0)
            out.append((arr[keep], np.log(rates[keep])))
        return out

    def _similarities(self, queries: list[dict[str, np.ndarray | None]], rows: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Per query, every modality's similarities to its candidate rows; the candidates' vectors are read
        once for all the queries (they overlap)."""
        union = np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64)
        vectors = self._vectors(union) if len(union) else {}
        out = []
        for query, r in zip(queries, rows):
            at = np.searchsorted(union, r)
            out.append(
                {m: vectors[m][at] @ query[m] if query.get(m) is not None and len(r) else np.zeros(len(r)) for m in MODALITIES}
            )
        return out

    def _predict(
        self,
        query: dict[str, np.ndarray | None],
        sims: dict[str, np.ndarray],
        log_scores: np.ndarray,
        weights: dict[str, float],
        corpus_sd: float,
    ) -> cp.Prediction | None:
        if not len(log_scores):
            return None
        w = {m: (weights.get(m, 0.0) if query.get(m) is not None else 0.0) for m in MODALITIES}
        total = sum(w.values())
        if total <= 0:
            return None
        w = {m: v / total for m, v in w.items()}
        scaled = fusion_inputs(sims, w, np.ones(len(log_scores), bool), "zscore")
        fused: np.ndarray = sum((w[m] * scaled[m] for m in MODALITIES), np.zeros(len(log_scores)))
        return cp.predict(fused, log_scores, self._s.prior_k, self._s.prior_bandwidth, corpus_sd)
