"""Route's weights when a request gives none (ranking/weights.py) and how the sparse signals are measured
(ranking/coldstart/signals.py): learned where engagement teaches, from the content where it cannot, and
a shared sound counted by how alike its videos are."""

from __future__ import annotations

import numpy as np
import pytest

from coldopen.ranking import weights as rw
from coldopen.ranking.coldstart.signals import Baseline, coherence, coherences, creator_excess, likeness, sound_similarity


def test_learned_weights_keep_only_the_modalities_beyond_noise():
    choice = rw.learned({"visual": 0.1, "spoken": 0.6, "caption": -0.2, "sound": 0.5, "creator": 0.9},
                        {"visual": 100, "spoken": 100, "caption": 100, "sound": 30, "creator": 100})
    assert choice is not None and choice.basis == "learned"
    assert choice.weights["visual"] == 0 and choice.weights["caption"] == 0 and "creator" not in choice.weights
    assert choice.weights["spoken"] == pytest.approx(0.36 / 0.61) and choice.weights["sound"] == pytest.approx(0.25 / 0.61)
    assert "spoken 0.60" in choice.reason and "sound 0.50" in choice.reason
    assert rw.learned({"visual": 0.15, "spoken": 0.1}, {"visual": 100, "spoken": 100}) is None  # 2 SE = 0.2


def test_without_engagement_signal_a_modality_that_finds_the_creator_is_discounted():
    choice = rw.from_content({"visual": 0.9, "spoken": 0.0, "caption": 0.02})
    assert choice.basis == "content" and "visual by 90%" in choice.reason
    assert choice.weights["visual"] == pytest.approx(0.1 * 0.35 / 0.3 * choice.weights["spoken"])
    assert sum(choice.weights.values()) == pytest.approx(1.0)
    assert creator_excess([1.0, 0.8], [0.1, 0.1]) == pytest.approx((0.9 - 0.1) / (1 - 0.1))
    assert creator_excess([0.1, 0.1], [0.1, 0.1]) == 0.0


def test_learned_weights_that_cover_nothing_a_video_has_give_way_to_the_content_weights():
    learned = rw.WeightChoice({"visual": 0.0, "spoken": 0.0, "caption": 0.0, "sound": 1.0}, "learned", "sound")
    content = rw.from_content({})
    assert rw.for_video(learned, content, {"visual": True, "sound": True}) is learned
    fallback = rw.for_video(learned, content, {"visual": True, "spoken": True, "sound": False})
    assert fallback.weights == content.weights and fallback.basis == "content"
    assert "cover only sound, which this video lacks" in fallback.reason


N = 84  # held-out videos: the noise bar is 2 / sqrt(83) = 0.22


def test_without_engagement_signal_one_modality_leads_and_only_those_that_agree_with_it_join():
    # The creator decides engagement, the topic lives in the picture: nothing passes the bar, the picture
    # hints most; speech (a random sentence) and the caption (boilerplate) group clips by something else.
    rho = {"visual": 0.14, "spoken": -0.02, "caption": 0.09, "sound": -0.10}
    counted = dict.fromkeys(rho, N)
    choice = rw.from_content({}, rho, counted, lambda lead, m: False)
    assert choice.basis == "content" and choice.leads == ("visual",)
    assert choice.weights["spoken"] == choice.weights["caption"] == 0
    assert choice.weights["visual"] == 1.0 and choice.weights["sound"] == 0  # trends across topics
    assert "visual leads" in choice.reason and "spoken, caption, sound left out" in choice.reason
    # a modality that finds the same videos as the lead joins it; a sound too, but it never leads
    joined = rw.from_content({}, rho, counted, lambda lead, m: m in ("spoken", "sound"))
    assert joined.leads == ("visual", "spoken") and "spoken, sound joined it" in joined.reason
    assert joined.weights == pytest.approx({"visual": 0.35 / 0.8, "spoken": 0.3 / 0.8, "caption": 0.0, "sound": 0.15 / 0.8})
    loud = rw.from_content({}, {**rho, "sound": 0.5}, counted, lambda lead, m: False)
    assert loud.leads == ("visual",) and loud.weights["sound"] == 0


def test_a_hint_in_noise_does_not_hand_the_lead_to_a_modality_that_finds_the_creator():
    # Engagement driven by nothing, the topic in speech, pictures of the creator's room: visual 80% creator.
    counted = {"visual": N, "spoken": N}
    for visual_rho in (0.0, 0.1, 0.15):  # up to z = 1.37: 9% of null draws reach it
        choice = rw.from_content({"visual": 0.8}, {"visual": visual_rho, "spoken": -0.1}, counted, lambda lead, m: False)
        assert choice.leads == ("spoken",) and choice.weights["visual"] == 0, (visual_rho, choice)
    everyone = rw.from_content({"visual": 1.0, "spoken": 1.0}, {"visual": 0.1, "spoken": 0.1}, counted, lambda lead, m: False)
    assert everyone.basis == "defaults" and "so the defaults" in everyone.reason
    assert rw.hint(-0.3, N) == 1.0 and rw.hint(0.2, N) == pytest.approx(np.exp(0.5 * 0.04 * 83))


def test_content_weights_led_by_what_a_video_lacks_give_way_to_the_defaults():
    content = rw.from_content({}, {"visual": 0.0, "spoken": 0.2}, {"visual": N, "spoken": N}, lambda lead, m: False)
    assert content.leads == ("spoken",)
    assert rw.for_video(content, content, {"visual": True, "spoken": True}) is content
    silent = rw.for_video(content, content, {"visual": True, "spoken": False, "sound": True})
    assert silent.basis == "defaults" and silent.weights["visual"] > 0
    assert "led by spoken, which this video lacks" in silent.reason


def test_a_sound_counts_by_how_alike_its_videos_perform_or_look():
    rng = np.random.default_rng(0)
    corpus_var = 1.0
    assert coherence(np.full(12, -3.0) + rng.normal(0, 0.1, 12), corpus_var) > 0.7   # a topic's song
    assert coherence(rng.normal(-3.0, 1.0, 400), corpus_var) < 0.05                   # a trend across topics
    assert coherence(np.array([-3.0]), corpus_var) == 0.0                            # nothing known yet
    base = Baseline(random_pair=0.1, neighbour=0.6)
    centre = rng.normal(size=16)
    alike = centre + rng.normal(0, 0.3, (10, 16))
    alike /= np.linalg.norm(alike, axis=1, keepdims=True)
    unrelated = rng.normal(size=(10, 16))
    unrelated /= np.linalg.norm(unrelated, axis=1, keepdims=True)
    assert likeness(alike, base) > 0.7 and likeness(unrelated, base) == 0.0
    sharers = {1: (7, 0.9), 2: (7, 0.8), 3: (8, 1.0), 4: (8, 1.0)}
    logs = {1: -3.0, 2: -3.01, 3: -1.0, 4: -5.0}
    c = coherences(sharers, logs, corpus_var)
    assert c[7] > 0.3 and c[8] == 0.0
    looks = {3: {"visual": alike[0]}, 4: {"visual": alike[1]}}
    assert coherences(sharers, logs, corpus_var, looks, {"visual": base})[8] > 0.3   # they look alike: it counts
    assert sound_similarity(sharers, {7: 0.5}) == {1: 0.45, 2: 0.4, 3: 0.0, 4: 0.0}
