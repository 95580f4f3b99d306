"""The cold-start loop's parts (ranking/coldstart/): the content prior and its calibration, the posterior,
the rollout rule. The gRPC surface (Route's content_prior, GetVideo's prior and posterior, Rollout, the
CLI) is tested on the routing world in tests/test_routing.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import gamma

from coldopen.config.settings import Settings
from coldopen.ranking.coldstart import posterior as post
from coldopen.ranking.coldstart import prior as cp
from coldopen.ranking.coldstart import rollout
from coldopen.ranking.coldstart.content import ContentPriors
from coldopen.ranking.coldstart.signals import PriorQuery
from coldopen.storage.vectors import FaissIndex
from tests.unit.ranking.served import Served

DIM = 32


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class TopicWorld(Served):
    """Videos in topics; the topic sets the level of a video's log rate and lives in the "spoken" vectors
    only: "visual" is the creator's room, "caption" generic boilerplate. Real FAISS indexes hold them."""

    def __init__(self, n: int, topics: int = 12, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.levels = np.log(0.05) + rng.normal(0, 0.7, topics)
        self.centres = _unit(rng.normal(size=(topics, DIM)))
        self.rooms = _unit(rng.normal(size=(40, DIM)))
        self.plates = _unit(rng.normal(size=(5, DIM)))
        self.topics = topics
        self.n = 0
        self.topic = np.zeros(0, int)
        self.log_rate = np.zeros(0)
        self.vectors = {m: np.zeros((0, DIM), np.float32) for m in ("visual", "spoken", "caption")}
        self.indexes = {m: FaissIndex(DIM) for m in self.vectors}
        self.add(n)

    def make(self, n: int, topic=None):
        r = self.rng
        topic = r.integers(0, self.topics, n) if topic is None else np.full(n, topic)
        log_rate = self.levels[topic] + r.normal(0, 0.4, n)
        noise = lambda s: r.normal(0, s / math.sqrt(DIM), (n, DIM))  # noqa: E731
        vectors = {
            "spoken": _unit(self.centres[topic] + noise(0.7)).astype(np.float32),
            "visual": _unit(self.rooms[r.integers(0, 40, n)] + noise(0.3)).astype(np.float32),
            "caption": _unit(self.plates[r.integers(0, 5, n)] + noise(0.3)).astype(np.float32),
        }
        return topic, log_rate, vectors

    def add(self, n: int) -> None:
        topic, log_rate, vectors = self.make(n)
        ids = np.arange(self.n, self.n + n)
        for m, v in vectors.items():
            self.vectors[m] = np.concatenate([self.vectors[m], v])
            self.indexes[m].add(ids, v)
        self.topic = np.concatenate([self.topic, topic])
        self.log_rate = np.concatenate([self.log_rate, log_rate])
        self.n += n



def _priors(world: TopicWorld, **settings) -> ContentPriors:
    s = Settings(**{"prior_min_impressions": 1000, "prior_calibration_videos": 400, **settings})
    return ContentPriors(s, world.indexes, world.rows_vectors, world.rates, world.eligible)


def test_the_prior_is_calibrated_on_held_out_videos_and_learns_which_modality_predicts():
    world = TopicWorld(3000)
    priors = _priors(world)
    calibration, weights = priors.calibration()
    assert calibration.samples == 400
    # the topic lives in speech: the learned weights say so
    assert weights["spoken"] > 5 * max(weights["visual"], weights["caption"]), weights
    assert priors.learned_weights() == weights
    # new videos from the same world: the 80% interval holds about 80% of their true rates
    topic, log_rate, vectors = world.make(1500)
    found = []
    for i in range(len(topic)):
        p = priors.prior(PriorQuery({m: vectors[m][i] for m in vectors}))
        assert p.calibrated and p.low < p.mean < p.high and p.coverage == 0.8
        found.append((p.low <= math.exp(log_rate[i]) <= p.high, p.log_mean))
    coverage = np.mean([c for c, _ in found])
    assert 0.75 <= coverage <= 0.85, coverage
    assert cp.spearman(np.array([m for _, m in found]), log_rate) > 0.6


def test_a_small_corpus_where_nothing_predicts_engagement_keeps_the_default_weights():
    """Engagement independent of content, 40 videos: no modality's held-out correlation is beyond noise
    (2 standard errors), so none is trusted, over many draws of the world."""
    trusted = 0
    for seed in range(10):
        world = TopicWorld(40, seed=seed)
        world.log_rate = world.rng.permutation(world.log_rate)  # break the topic -> engagement link
        priors = _priors(world)
        priors.calibration()
        trusted += priors.learned_weights() is not None
    assert trusted <= 1, trusted  # ~5% per modality would pass by chance at 2 standard errors


def test_a_prior_can_predict_a_flop():
    """Neighbours among every engaged video, not only the pool: a video whose topic performs badly gets
    a prior far below the pool threshold (the 80th percentile of scores)."""
    world = TopicWorld(2000)
    priors = _priors(world)
    threshold = np.exp(np.percentile(world.log_rate, 80))
    worst, best = int(np.argmin(world.levels)), int(np.argmax(world.levels))
    for topic, below in ((worst, True), (best, False)):
        _, _, vectors = world.make(20, topic=topic)
        means = [priors.prior(PriorQuery({m: vectors[m][i] for m in vectors})).mean for i in range(20)]
        assert (np.median(means) < np.exp(np.median(world.log_rate)) and np.max(means) < threshold) if below \
            else np.median(means) > threshold


def test_without_enough_engaged_videos_the_prior_is_the_corpus_spread_and_says_so():
    world = TopicWorld(15)
    p = _priors(world).prior(PriorQuery({m: world.vectors[m][0] for m in world.vectors}))
    assert not p.calibrated and p.calibration_samples < cp.MIN_CALIBRATION
    assert p.low < p.mean < p.high


def test_conformal_quantiles_cover_held_out_residuals():
    rng = np.random.default_rng(3)
    mu = rng.normal(0, 1, 2000)
    sd = rng.uniform(0.2, 1.0, 2000)
    y = mu + sd * rng.standard_t(4, 2000)  # heavier tails than the normal: the quantiles adapt
    preds = [cp.Prediction(m, s, 10.0) for m, s in zip(mu[:1000], sd[:1000])]
    c = cp.calibrate(preds, y[:1000], y, 2000)
    inside = [(m + c.q_low * s) <= t <= (m + c.q_high * s) for m, s, t in zip(mu[1000:], sd[1000:], y[1000:])]
    assert 0.76 <= np.mean(inside) <= 0.84
    assert c.rank_correlation > 0.5


def test_posterior_is_the_gamma_update_and_smooths_toward_the_prior():
    prior = cp.Prior(0.05, 0.03, 0.08, 0.8, math.log(0.05), 0.3, 12.0, True, 300)
    a0, b0 = prior.gamma()
    mean = math.exp(prior.log_mean + prior.log_sd**2 / 2)
    assert a0 / b0 == pytest.approx(mean) and a0 / b0**2 == pytest.approx((math.exp(0.09) - 1) * mean**2)
    p = post.posterior(a0, b0, weighted=40.0, impressions=300.0, threshold=0.08)
    assert p.mean == pytest.approx((40 + a0) / (300 + b0))
    assert p.mean == pytest.approx((40 + b0 * mean) / (300 + b0))  # smoothing toward the content prior
    assert p.p_beats_threshold == pytest.approx(gamma(a0 + 40, scale=1 / (b0 + 300)).sf(0.08))
    assert p.low < p.mean < p.high and p.prior_impressions == pytest.approx(b0)
    vague = cp.Prior(0.05, 0.01, 0.2, 0.8, math.log(0.05), 1.2, 2.0, True, 300)
    assert vague.gamma()[1] < b0  # a vaguer prior weighs fewer impressions
    assert post.posterior(a0, b0, 0.0, 0.0, float("inf")).p_beats_threshold == 0.0  # no pool yet


@pytest.mark.parametrize("p_beats, impressions, audience, action, next_audience", [
    (0.9, 100, 0, rollout.HOLD, 300),        # the first audience is not spent
    (0.01, 50, 0, rollout.HOLD, 300),        # too little evidence to stop before min_impressions
    (0.01, 150, 0, rollout.STOP, 0),         # early stop: very unlikely to perform
    (0.7, 300, 300, rollout.WIDEN, 3000),    # spent and likely: the next tier
    (0.3, 300, 300, rollout.STOP, 0),        # spent and not likely enough
    (0.9, 3200, 0, rollout.HOLD, 30000),     # audience inferred from the impressions: 30k not spent
    (0.9, 300000, 300000, rollout.HOLD, 300000),  # the last tier: complete
])
def test_rollout_rule(p_beats, impressions, audience, action, next_audience):
    posterior = post.Posterior(0.05, 0.04, 0.06, 0.8, p_beats, 500.0)
    d = rollout.decide(posterior, impressions, (300, 3000, 30000, 300000), audience)
    assert (d.action, d.next_audience) == (action, next_audience), d.reason
    assert d.reason


def test_a_stale_calibration_keeps_serving_while_the_next_is_computed_in_the_background():
    world = TopicWorld(600)
    priors = _priors(world, prior_calibration_s=0.0, prior_calibration_videos=100)
    first, _ = priors.calibration()           # the first one: inline
    again, _ = priors.calibration()           # stale at once: served, and recomputed in a thread
    assert again is first
    priors._refresher.join(timeout=60)
    assert not priors._refresher.is_alive()
    assert priors.calibration()[0] is not first and priors.calibration()[0].samples == 100
