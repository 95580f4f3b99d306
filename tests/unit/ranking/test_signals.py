"""The content prior's relation signals (ranking/coldstart/signals.py, neighbours.py): a shared sound and
the creator's track record, learned on held-out videos like the vector modalities. Worlds whose vectors
carry nothing, real FAISS indexes, and an in-memory stand-in for the catalog's relations (named as such:
the service answers them from the catalog, app/relations.py; tests/integration/test_route_signals.py
checks them end to end)."""

from __future__ import annotations

import numpy as np

from coldopen.config.settings import Settings
from coldopen.ranking.coldstart import prior as cp
from coldopen.ranking.coldstart.content import ContentPriors
from coldopen.ranking.coldstart.signals import PriorQuery
from coldopen.storage.vectors import FaissIndex
from tests.unit.ranking.served import Served

DIM = 16
CONFIDENCE = 0.9


class RelatedWorld(Served):
    """Engagement lives only in the sound a video shares (its topic) or only in its creator's level;
    the visual, spoken and caption vectors are random per video."""

    def __init__(self, n: int, where: str, sounds: int = 10, creators: int = 40, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.rng, self.where = rng, where
        self.sound_level = np.log(0.05) + rng.normal(0, 0.8, sounds)
        self.creator_level = np.log(0.05) + rng.normal(0, 0.8, creators)
        self.sound = rng.integers(0, sounds, n)
        self.creator = rng.integers(0, creators, n)
        self.log_rate = self.level(self.sound, self.creator) + rng.normal(0, 0.3, n)
        self.vectors = {m: self.noise(n) for m in ("visual", "spoken", "caption")}
        self.indexes = {m: FaissIndex(DIM) for m in self.vectors}
        for m, v in self.vectors.items():
            self.indexes[m].add(np.arange(n), v)
        self.n = n

    def level(self, sound, creator):
        return self.sound_level[sound] if self.where == "sound" else self.creator_level[creator]

    def noise(self, n: int) -> np.ndarray:
        v = self.rng.normal(size=(n, DIM))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


    # an in-memory stand-in for the catalog's relations (app/relations.py)
    def sharers(self, sound: int, exclude: int = -1) -> dict[int, tuple[int, float]]:
        return {int(j): (sound, CONFIDENCE) for j in np.flatnonzero(self.sound == sound) if j != exclude}

    def sound_sharers(self, rows):
        return [self.sharers(int(self.sound[r]), int(r)) for r in rows]

    def creators(self, rows):
        return [f"c{self.creator[r]}" for r in rows]

    def creator_rows(self, creators):
        return {c: np.flatnonzero(self.creator == int(c[1:])) for c in creators if c.startswith("c")}

    def new_video(self, sound: int, creator: str) -> PriorQuery:
        v = {m: self.noise(1)[0] for m in self.vectors}
        return PriorQuery(v, self.sharers(sound), creator)


def _priors(world: RelatedWorld) -> ContentPriors:
    s = Settings(prior_min_impressions=1000, prior_calibration_videos=300)
    return ContentPriors(s, world.indexes, world.rows_vectors, world.rates, world.eligible, relations=world)


def test_a_shared_sound_earns_weight_and_predicts_new_videos_that_share_it():
    world = RelatedWorld(600, "sound")
    priors = _priors(world)
    weights = priors.learned_weights()
    assert weights is not None and weights["sound"] > 0.5, weights
    assert max(weights["visual"], weights["spoken"], weights["caption"], weights["creator"]) < 0.1 * weights["sound"]
    assert priors.route_weights({"visual": True, "sound": True}).basis == "learned"
    means, truth = [], []
    for sound in range(len(world.sound_level)):
        p = priors.prior(world.new_video(sound, "newcomer"))
        assert p.calibrated and p.weights.get("sound", 0) > 0 and p.creator_videos == 0
        means.append(p.log_mean)
        truth.append(world.sound_level[sound])
    assert cp.spearman(np.array(means), np.array(truth)) > 0.8


def test_the_creators_track_record_earns_weight_and_a_first_time_creator_falls_back_to_content():
    world = RelatedWorld(600, "creator")
    priors = _priors(world)
    weights = priors.learned_weights()
    assert weights is not None and weights["creator"] > 0.5, weights
    means, truth = [], []
    for c in range(len(world.creator_level)):
        p = priors.prior(world.new_video(0, f"c{c}"))
        assert p.weights.get("creator", 0) > 0 and p.creator_videos == int((world.creator == c).sum())
        means.append(p.log_mean)
        truth.append(world.creator_level[c])
    assert cp.spearman(np.array(means), np.array(truth)) > 0.8
    first = priors.prior(world.new_video(0, "someone-new"))
    assert first.creator_videos == 0 and "creator" not in first.weights and first.low < first.mean < first.high


def test_where_neither_relation_predicts_neither_earns_weight():
    world = RelatedWorld(600, "sound")
    world.log_rate = world.rng.permutation(world.log_rate)  # break the sound -> engagement link
    weights = _priors(world).calibration()[1]
    assert weights.get("creator", 0) == 0 and weights.get("sound", 0) == 0, weights


def test_routes_modalities_are_measured_beyond_the_creators_record_where_it_predicts():
    """The creator decides most of engagement, a shared sound (the topic) a little: against raw scores the
    sound is within noise, beyond the creator's record it is not, and Route learns it, saying why."""
    world = RelatedWorld(600, "creator", seed=1)
    topic = (world.sound_level[world.sound] - np.log(0.05)) / 0.8
    world.log_rate = world.creator_level[world.creator] + 0.3 * topic + world.rng.normal(0, 0.3, 600)
    state = _priors(world).state()
    assert state.rho["creator"] > 0.5 and state.rho["sound"] < 2 / np.sqrt(299), state.rho
    assert state.route.basis == "learned" and state.route.weights["sound"] == 1.0, state.route
    assert "beyond the creator's record" in state.route.reason
    # where the creator decides everything, nothing is left for Route's modalities: the content's weights
    only_creator = _priors(RelatedWorld(600, "creator")).state()
    assert only_creator.rho["creator"] > 0.5 and only_creator.route.basis == "content", only_creator.route
