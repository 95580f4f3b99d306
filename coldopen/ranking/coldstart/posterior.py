"""A video's performance as a posterior: its content prior updated by its own engagement.

Gamma-Poisson: the weighted engagement a video earns on n impressions is taken as Poisson(rate * n);
the prior on its rate is the Gamma with the content prior's mean and variance (`Prior.gamma()`), so

    rate | data ~ Gamma(a0 + weighted, b0 + impressions)

b0 is the prior's weight in impressions: a confident prior counts as many impressions, a vague one as
few, where `coldopen.ranking.scores` gives every video the same `prior_impressions`. The posterior mean,
(weighted + b0 * prior mean) / (impressions + b0), is the same smoothing as `ranking.scores.score`,
toward the content prior instead of the corpus mean; it is the video's performance score once it has
a stored prior (ranking/scorebook.py).

An approximation: weighted engagement is over-dispersed against a Poisson count (a share adds its
weight at once), so the credible interval is narrower than the truth for share-heavy videos;
`benchmarks/coldstart_sim.py` measures how the decisions built on it fare. Decay (a half-life)
multiplies rates and the threshold alike, so the test against the pool threshold compares undecayed
rates with the undecayed threshold.
"""

from __future__ import annotations

from scipy.stats import gamma as gamma_dist

from coldopen.domain.outlook import Posterior

LEVEL = 0.8


def posterior(shape: float, rate: float, weighted: float, impressions: float, threshold: float,
              level: float = LEVEL) -> Posterior:
    """`shape`, `rate`: the prior Gamma; `weighted`, `impressions`: the video's own counts; `threshold`:
    the pool threshold, undecayed (inf while there is no pool: nothing beats it)."""
    a = shape + max(weighted, 0.0)
    b = rate + max(impressions, 0.0)
    dist = gamma_dist(a, scale=1.0 / b)
    tail = (1.0 - level) / 2
    beats = 0.0 if threshold == float("inf") else float(dist.sf(threshold))
    return Posterior(float(a / b), float(dist.ppf(tail)), float(dist.ppf(1 - tail)), level, beats, rate)
