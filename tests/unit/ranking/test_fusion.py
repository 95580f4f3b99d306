"""Fusion that respects each signal's shape (ranking/fusion.py): a sparse, high-precision match is not
squeezed by how many candidates share it, and a dense modality that barely varies is damped."""

from __future__ import annotations

import numpy as np
import pytest

from coldopen.ranking.fusion import MIN_SPREAD, fuse, standardise


def _world(seed: int = 0):
    """40 candidates: 10 share the query's sound (confidence 0.8-1.0); in captions, one unrelated candidate
    happens to resemble the query's (3.5 standard deviations above the others)."""
    rng = np.random.default_rng(seed)
    sound = np.zeros(40)
    sound[:10] = rng.uniform(0.8, 1.0, 10)
    caption = rng.normal(0.3, 0.12, 40)  # MiniLM spreads unrelated texts over ~0..0.6
    caption[30] = 0.3 + 3.5 * 0.12
    return {"sound": sound, "caption": caption}, np.ones(40, bool)


def test_a_shared_sound_outranks_a_chance_resemblance_under_robust_fusion_but_not_z_scores():
    sims, every = _world()
    weights = {"sound": 0.5, "caption": 0.5}
    robust, _ = fuse(sims, weights, every, "robust")
    zscore, _ = fuse(sims, weights, every, "zscore")
    assert set(np.argsort(-robust)[:10]) == set(range(10))  # the ten that share the sound come first
    assert 30 in np.argsort(-zscore)[:3]                    # the z-score squeeze: the resemblance wins a top slot
    assert standardise(sims["sound"], every, "robust")[:10].min() >= 0.8 / MIN_SPREAD - 1e-9
    assert standardise(sims["sound"], every, "zscore")[:10].max() < 2.2


def test_a_modality_that_barely_varies_is_damped_not_stretched():
    rng = np.random.default_rng(1)
    flat = 0.95 + rng.normal(0, 0.004, 50)  # random-init CLIP: every pair within a few hundredths
    z = standardise(flat, np.ones(50, bool), "robust")
    assert np.abs(z).max() < 0.2
    assert np.all(standardise(np.full(5, 0.3), np.ones(5, bool), "robust") == 0)  # no spread: no information


def test_contributions_sum_to_the_fused_score_and_unknown_fusions_are_refused():
    sims, every = _world()
    weights = {"sound": 0.3, "caption": 0.7}
    fused, scaled = fuse(sims, weights, every, "robust")
    np.testing.assert_allclose(fused, sum(weights[m] * scaled[m] for m in weights))
    np.testing.assert_array_equal(fuse(sims, weights, every, "raw")[1]["caption"], sims["caption"])
    with pytest.raises(ValueError, match="robust"):
        standardise(sims["caption"], every, "softmax")
