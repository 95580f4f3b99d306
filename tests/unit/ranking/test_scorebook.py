"""The incremental pool (ranking/scorebook.py) against a full recompute with coldopen.ranking.scores, batch by
batch, with ties, deletes, decay and a drifting prior."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from coldopen.config.settings import Settings
from coldopen.domain.engagement import Counters
from coldopen.ranking import scores as engagement
from coldopen.ranking import undo
from coldopen.ranking.scorebook import ScoreBook

NOW = datetime.now(timezone.utc).replace(microsecond=0)  # events are in the past: a future one decays from now


def _at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")


def _counters(rng, tie: bool = False) -> Counters:
    if tie:  # a block of identical counters
        return Counters(impressions=1000, likes=40, shares=5, completions=300, last_event_at=_at(1))
    imp = int(rng.integers(0, 3000))
    at = NOW - timedelta(minutes=int(rng.integers(0, 600)))
    return Counters(impressions=imp, plays=imp // 2, completions=int(rng.integers(0, imp // 2 + 1)),
                    likes=int(rng.integers(0, imp // 10 + 1)), shares=int(rng.integers(0, 20)),
                    last_event_at=at.isoformat().replace("+00:00", "Z"))


def _expected(book: ScoreBook, counters: dict[int, Counters], first_seen: dict[int, int], s: Settings):
    """Full recompute with the book's prior: members by (score desc, first engagement), and scores."""
    scores = {r: engagement.score(c, s, book.prior, NOW) for r, c in counters.items()}
    eligible = [r for r, c in counters.items() if c.impressions >= s.pool_min_impressions]
    ranked = sorted(eligible, key=lambda r: (-scores[r], first_seen[r]))
    return set(ranked[: engagement.pool_count(len(ranked), s.pool_percentile)]), scores


@pytest.mark.parametrize("rows, batch", [(4000, 200), (40000, 60)])
def test_batches_match_a_full_recompute_with_ties_deletes_and_decay(rows, batch):
    """(40000, 60): batches small against the order, so moves come from the window around the boundary
    (ScoreBook._window_moves), not from a scan of every slot."""
    s = Settings(score_half_life_h=6.0, pool_percentile=80.0, pool_min_impressions=500)
    rng = np.random.default_rng(0)
    counters: dict[int, Counters] = {}
    first_seen: dict[int, int] = {}
    seen = iter(range(10**9))
    for r in range(0, rows, 3):
        counters[r] = _counters(rng, tie=r % 7 == 0)
        first_seen[r] = next(seen)
    book = ScoreBook(s, counters)
    for step in range(30):
        changed: dict[int, Counters | None] = {}
        for r in rng.choice(rows * 3 // 2, batch, replace=False).tolist():
            if r in counters and rng.random() < 0.1:
                changed[r] = None
                del counters[r]
                del first_seen[r]
            else:
                changed[r] = _counters(rng, tie=rng.random() < 0.2)
                counters[r] = changed[r]
                first_seen.setdefault(r, next(seen))
        before = set(book.members().tolist())
        moves = book.update(changed)
        if step % 10 == 9:
            book.rebase()  # the corpus mean moved: every key recomputed
        members = set(book.members().tolist())
        want, scores = _expected(book, counters, first_seen, s)
        assert members == want, f"step {step}"
        if step % 10 != 9:
            assert set(moves.joined) == members - before and set(moves.left) == before - members
        got = {r: book.score(r, NOW) for r in counters}
        assert all(math.isclose(got[r], scores[r], rel_tol=1e-9, abs_tol=1e-15) for r in counters)
        assert math.isclose(book.threshold(NOW), min(scores[r] for r in members), rel_tol=1e-9)


def test_ties_at_the_threshold_do_not_swell_the_pool():
    """24 videos with identical counters at the boundary of a 50th-percentile pool of 48 eligible videos:
    the old threshold rule (score >= the percentile value) put all 48 in."""
    s = Settings(pool_percentile=50.0, pool_min_impressions=100)
    rng = np.random.default_rng(1)
    counters = {r: Counters(impressions=1000, likes=10 + r) for r in range(24)}  # distinct, above
    counters.update({100 + r: Counters(impressions=1000, likes=5) for r in range(24)})  # tied, lowest
    book = ScoreBook(s, counters)
    scores = {r: engagement.score(c, s, book.prior, NOW) for r, c in counters.items()}
    old_members, _ = engagement.pool(scores, counters, s)
    assert len(old_members) == 48
    assert len(book.members()) == engagement.pool_count(48, 50.0) == 25  # as many as distinct scores would give
    assert set(range(24)) <= set(book.members().tolist())
    del rng


def test_scores_decay_on_read_and_membership_needs_no_timer():
    s = Settings(score_half_life_h=24.0, pool_percentile=50.0, pool_min_impressions=100)
    counters = {r: Counters(impressions=1000, likes=10 * r, last_event_at=_at(0)) for r in range(1, 11)}
    book = ScoreBook(s, counters)
    now, later = NOW, NOW + timedelta(hours=24)
    assert math.isclose(book.score(5, later), book.score(5, now) / 2, rel_tol=1e-9)
    assert math.isclose(book.threshold(later), book.threshold(now) / 2, rel_tol=1e-9)
    assert math.isclose(book.score(5, later), engagement.score(counters[5], s, book.prior, later), rel_tol=1e-9)
    # a video whose last event is older falls behind a fresher one with the same counters
    book.update({11: Counters(impressions=1000, likes=100, last_event_at=_at(24))})
    assert book.score(11, now) < book.score(10, now)


def test_a_rolled_back_batch_is_put_back_in_memory():
    """A batch applied to the book whose transaction then failed (a full disk): put_back restores every
    row it touched, drops rows it added, and the pool, scores and prior are as before."""
    rng = np.random.default_rng(7)
    s = Settings(pool_min_impressions=500)
    counters = {r: _counters(rng) for r in range(3000)}
    book = ScoreBook(s, counters)
    before_members, before_state = book.members().tolist(), book.state()
    before_scores = book.scores(np.arange(3000), NOW)
    batch = {r: _counters(rng) for r in [*rng.choice(3000, 200, replace=False).tolist(), 5000, 5001]}
    captured = undo.capture(book, batch)
    book.update(batch, {5000: (0.2, 50.0)}, added=True)
    book.rebase()
    assert book.members().tolist() != before_members or not np.allclose(book.scores(np.arange(3000), NOW), before_scores)
    undo.put_back(book, captured)
    assert sorted(book.members().tolist()) == sorted(before_members)
    assert np.allclose(book.scores(np.arange(3000), NOW), before_scores, equal_nan=True)
    assert 5000 not in book and book.score(5000, NOW) is None and book.prior == pytest.approx(captured[0])
    after = book.state()
    live = np.isin(after["row"], before_state["row"])
    assert np.allclose(after["imp"][live], before_state["imp"]) and np.allclose(after["w"][live], before_state["w"])
