"""The content prior: how a new video is likely to perform, from its content neighbours among every
video with enough impressions (not only the performs-well pool, so it can predict a flop), with an
interval calibrated on held-out videos.

Prediction: kernel regression on log scores. The candidates' per-modality similarities are fused as
routing fuses them (z-scores over the candidates, weighted: `coldopen.ranking.routing.fusion_inputs`); the
`k` best get weights exp((fused - best) / bandwidth); the prediction is their weighted mean log score,
and its scale is the weighted spread of those log scores plus the corpus spread over the effective
number of neighbours (how unsure a mean of that many is):

    mu = sum w_i y_i / sum w_i,   sigma^2 = sum w_i (y_i - mu)^2 / sum w_i + s_corpus^2 / n_eff

Calibration: split conformal prediction with normalised residuals (Lei et al. 2018, "Distribution-free
predictive inference for regression", section 5.2). Engaged videos held out one at a time are
predicted from the others; r = (y - mu) / sigma; the interval for coverage c is
[mu + q_lo sigma, mu + q_hi sigma] with q_lo, q_hi the (1-c)/2 and (1+c)/2 quantiles of r, taken
with the finite-sample correction. It covers a fraction c of new videos drawn like the held-out ones,
whatever the kernel's own calibration, and is wider where neighbours disagree.

Scores are the undecayed smoothed rates of `coldopen.ranking.scores` (weighted engagement per impression),
so the prior predicts what a video earns per impression, not how recently it earned it.

Hand-written: the regression is a weighted mean over a search's hits, and the calibration a quantile;
a library (scikit-learn, MAPIE) would add a dependency for a few lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coldopen.domain.outlook import COVERAGE, Prior

MIN_CALIBRATION = 20  # held-out videos below which the interval is the corpus's own spread


@dataclass(frozen=True)
class Prediction:
    log_mean: float
    log_sd: float
    neighbours: float  # effective number (sum w)^2 / sum w^2


@dataclass(frozen=True)
class Calibration:
    q_low: float
    q_high: float
    coverage: float
    samples: int             # held-out videos behind the quantiles
    rank_correlation: float  # Spearman, predicted vs actual log score, over those videos (nan if < 3)
    corpus_log_mean: float
    corpus_log_sd: float
    eligible: int            # videos with enough impressions when it was computed


def predict(fused: np.ndarray, log_scores: np.ndarray, k: int, bandwidth: float, corpus_sd: float) -> Prediction | None:
    """The kernel prediction from candidates' fused similarity and log score; None without candidates."""
    if not len(fused):
        return None
    take = min(k, len(fused))
    top = np.argpartition(-fused, take - 1)[:take]
    f, y = fused[top], log_scores[top]
    w = np.exp((f - f.max()) / max(bandwidth, 1e-6))
    mu = float((w * y).sum() / w.sum())
    n_eff = float(w.sum() ** 2 / (w**2).sum())
    local = float((w * (y - mu) ** 2).sum() / w.sum())
    return Prediction(mu, math.sqrt(local + corpus_sd**2 / n_eff), n_eff)


def calibrate(predicted: list[Prediction | None], actual: np.ndarray, corpus: np.ndarray, eligible: int,
              coverage: float = COVERAGE) -> Calibration:
    """Quantiles of the normalised residuals of held-out predictions (split conformal)."""
    corpus_mean = float(corpus.mean()) if len(corpus) else 0.0
    corpus_sd = float(corpus.std()) if len(corpus) > 1 else 1.0
    pairs = [(p, y) for p, y in zip(predicted, actual) if p is not None and p.log_sd > 0]
    n = len(pairs)
    if n < MIN_CALIBRATION:
        z = _normal_quantile((1 + coverage) / 2)
        return Calibration(-z, z, coverage, n, float("nan"), corpus_mean, corpus_sd, eligible)
    r = np.sort(np.array([(y - p.log_mean) / p.log_sd for p, y in pairs]))
    alpha = 1 - coverage
    # finite-sample conformal ranks: ceil((n+1)(1-alpha/2)) of n, from each end
    upper = min(n, math.ceil((n + 1) * (1 - alpha / 2))) - 1
    lower = max(0, n - 1 - upper)
    mu = np.array([p.log_mean for p, _ in pairs])
    ys = np.array([y for _, y in pairs])
    return Calibration(float(r[lower]), float(r[upper]), coverage, n, spearman(mu, ys), corpus_mean, corpus_sd, eligible)


def prior(prediction: Prediction | None, calibration: Calibration) -> Prior:
    """The prior from a prediction (None: no neighbours with enough impressions: the corpus's own
    distribution) and the calibration's quantiles."""
    if prediction is None:
        mu, sd, n = calibration.corpus_log_mean, max(calibration.corpus_log_sd, 1e-6), 0.0
        z = _normal_quantile((1 + calibration.coverage) / 2)
        q_low, q_high, calibrated = -z, z, False
    else:
        mu, sd, n = prediction.log_mean, max(prediction.log_sd, 1e-6), prediction.neighbours
        q_low, q_high = calibration.q_low, calibration.q_high
        calibrated = calibration.samples >= MIN_CALIBRATION
    return Prior(
        mean=math.exp(mu), low=math.exp(mu + q_low * sd), high=math.exp(mu + q_high * sd),
        coverage=calibration.coverage, log_mean=mu, log_sd=sd, neighbours=n, calibrated=calibrated,
        calibration_samples=calibration.samples,
    )


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)
