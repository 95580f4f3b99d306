"""Performance scores from engagement counters, and the performs-well pool.

score = (weighted engagement + m * prior_rate) / (impressions + m)

Weighted engagement counts shares above follows above comments above likes (weights are
settings), plus completed plays; m (`prior_impressions`) is how many impressions' worth of belief
the prior carries, so 3 likes on 4 impressions stays near the prior while 30k on 100k is trusted.
The prior rate is a setting, or the corpus mean when that setting is 0. With a half-life set, a
score decays by half for every half-life since the video's last engagement event.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np

from coldopen.config.settings import Settings
from coldopen.domain.engagement import Counters


def counter_weights(s: Settings) -> dict[str, float]:
    """Counter name -> weight in `weighted` (for computing it in SQL)."""
    return {"likes": s.weight_like, "comments": s.weight_comment, "shares": s.weight_share,
            "follows": s.weight_follow, "completions": s.weight_completion}


def weighted(c: Counters, s: Settings) -> float:
    return (
        s.weight_like * c.likes
        + s.weight_comment * c.comments
        + s.weight_share * c.shares
        + s.weight_follow * c.follows
        + s.weight_completion * c.completions
    )


def prior_rate(all_counters: list[Counters], s: Settings) -> float:
    if s.prior_rate > 0:
        return s.prior_rate
    impressions = sum(float(c.impressions) for c in all_counters)
    rate = sum(weighted(c, s) for c in all_counters) / impressions if impressions else 0.0
    return rate if math.isfinite(rate) else 0.0


def score(c: Counters, s: Settings, prior: float, now: datetime) -> float:
    """The smoothed, decayed score. Total over anything a store may hold: a value it cannot use (a
    timestamp without a zone from an older version, a non-finite counter) is read leniently, never raised
    on, so no stored row can keep the server from starting."""
    value = (weighted(c, s) + s.prior_impressions * prior) / (c.impressions + s.prior_impressions or 1.0)
    value *= decay(c, s, now)
    return float(value) if math.isfinite(value) else 0.0


def decay(c: Counters, s: Settings, now: datetime) -> float:
    """The factor time has multiplied the video's score by since its last event (1 without a half-life)."""
    if s.score_half_life_h > 0 and c.last_event_at:
        last = stored_time(c.last_event_at)
        if last is not None:
            age_h = max(0.0, (now - last).total_seconds() / 3600)
            return float(0.5 ** (age_h / s.score_half_life_h))
    return 1.0


def stored_time(text: str) -> datetime | None:
    """A stored ISO time as an aware UTC datetime; one without a zone is taken as UTC; None if unreadable."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t


def pool(scores: dict[int, float], counters: dict[int, Counters], s: Settings) -> tuple[set[int], float]:
    """Rows in the performs-well pool, and the score threshold: eligible by impressions, top by percentile."""
    eligible = [row for row, c in counters.items() if c.impressions >= s.pool_min_impressions]
    if not eligible:
        return set(), float("inf")
    threshold = float(np.percentile([scores[r] for r in eligible], s.pool_percentile, method="lower"))
    return {r for r in eligible if scores[r] >= threshold}, threshold


def epoch_seconds(texts: list[str]) -> np.ndarray:
    """Stored times as unix seconds (0 for none). Vectorised when every text is in the one format this
    version stores (domain.timing.utc_text: UTC, milliseconds, 'Z'); otherwise per text, through
    stored_time, which reads anything an older version stored (offsets, no zone)."""
    if all(not t or (len(t) == 24 and t[-1] == "Z" and t[10] == "T") for t in texts):
        try:
            stamps = np.array([t[:23] if t else "NaT" for t in texts], dtype="datetime64[ms]")
            out = stamps.astype(np.int64).astype(np.float64) / 1000.0
            out[np.isnat(stamps)] = 0.0
            return out
        except ValueError:
            pass
    parsed = [stored_time(t) if t else None for t in texts]
    return np.array([p.timestamp() if p is not None else 0.0 for p in parsed], np.float64)


def pool_count(n: int, percentile: float) -> int:
    """Members among n eligible videos: as many as np.percentile(method="lower") admits for distinct scores."""
    return 0 if n == 0 else n - int(math.floor(percentile / 100.0 * (n - 1)))
