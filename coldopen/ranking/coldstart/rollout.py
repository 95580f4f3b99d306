"""Whether to widen a new video's audience, hold, or stop: a posterior probability test.

A platform shows a new video to audiences of growing size, its tiers (default 300, 3k, 30k, 300k
impressions). With p = P(the video's rate beats the pool threshold | content prior, its engagement):

- STOP when p < stop_below (default 0.05), once it has had at least `min_impressions` (default 100):
  its own audience, with its content, says it is very unlikely to perform. Before that, only the
  content prior speaks, and the first audience is always given.
- HOLD while the audience granted so far is not spent: collect more.
- Once it is spent: WIDEN to the next tier when p >= widen_at (default 0.5), otherwise STOP.
  At the last tier the video has had its full rollout: HOLD, with nothing further to grant.

The posterior carries the content prior, so a video whose content predicts a flop needs its first
audience to prove otherwise, and one whose content predicts a hit needs less luck to be widened. The
ranker stays in charge of who sees what; this says how many should.
"""

from __future__ import annotations

from dataclasses import dataclass

from coldopen.domain.outlook import Posterior

WIDEN, HOLD, STOP = "WIDEN", "HOLD", "STOP"


@dataclass(frozen=True)
class Decision:
    action: str
    audience: int          # the audience granted so far
    next_audience: int     # WIDEN: the tier to grant now; HOLD: the audience to keep; STOP: 0
    impressions: int
    p_beats_threshold: float
    reason: str


def current_audience(impressions: int, tiers: tuple[int, ...]) -> int:
    """The audience granted so far when the caller does not say: the first tier the impressions have not
    passed yet (the last tier once past it)."""
    for t in tiers:
        if impressions < t:
            return t
    return tiers[-1]


def decide(post: Posterior, impressions: int, tiers: tuple[int, ...], audience: int = 0, widen_at: float = 0.5,
           stop_below: float = 0.05, min_impressions: int = 100) -> Decision:
    audience = audience or current_audience(impressions, tiers)
    p = post.p_beats_threshold
    if p < stop_below and impressions >= min_impressions:
        return Decision(STOP, audience, 0, impressions, p,
                        f"P(beats the pool threshold) = {p:.3f} < {stop_below} after {impressions} impressions")
    if impressions < audience:
        return Decision(HOLD, audience, audience, impressions, p,
                        f"collecting: {impressions} of the {audience} impressions granted")
    later = [t for t in tiers if t > audience]
    if p >= widen_at:
        if not later:
            return Decision(HOLD, audience, audience, impressions, p, "the last tier is reached: the rollout is complete")
        return Decision(WIDEN, audience, later[0], impressions, p,
                        f"P(beats the pool threshold) = {p:.3f} >= {widen_at} with {audience} impressions spent")
    return Decision(STOP, audience, 0, impressions, p,
                    f"P(beats the pool threshold) = {p:.3f} < {widen_at} with {audience} impressions spent")
