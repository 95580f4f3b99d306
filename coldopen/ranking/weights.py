"""Which modality weights Route fuses with when a request gives none, and why (RouteResponse.weights_basis
and weights_reason).

learned   engagement taught them: each signal's weight is the square of its held-out rank correlation
          with engagement (ranking/coldstart/content.py), 0 below noise; Route uses those of its modalities.
content   engagement teaches nothing (no modality's neighbours predict held-out scores beyond noise): the
          defaults, each dense modality discounted by how much more often than chance its nearest
          neighbours are the clip's own creator's videos (it says who filmed a clip, not what is in it:
          the creator's room, face or voice). A shared sound keeps its weight: its similarity is already
          scaled by how alike its videos perform (coldstart/signals.py), which is ~0 here.
defaults  too few engaged videos to learn or measure anything yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from coldopen.domain.modalities import ALL, DENSE

DEFAULT_WEIGHTS = {"visual": 0.35, "spoken": 0.3, "caption": 0.2, "sound": 0.15}
MIN_RHO = 0.05  # a signal whose held-out rank correlation is below this predicts nothing: weight 0
# ... nor one whose correlation is within noise: below RHO_Z standard errors of a zero correlation over
# n held-out videos (1/sqrt(n - 1)), so a small corpus does not hand all the weight to a lucky signal
RHO_Z = 2.0


@dataclass(frozen=True)
class WeightChoice:
    weights: dict[str, float]  # Route's modalities, summing to 1
    basis: str                 # one of modalities.WEIGHT_BASES
    reason: str


def significant(rho: dict[str, float], counted: dict[str, int]) -> dict[str, float]:
    """signal -> rho^2 where its held-out rank correlation is beyond noise, else 0."""
    return {
        m: r**2 if math.isfinite(r) and r >= max(MIN_RHO, RHO_Z / math.sqrt(max(counted.get(m, 0) - 1, 1))) else 0.0
        for m, r in rho.items()
    }


def learned(rho: dict[str, float], counted: dict[str, int], beyond: str = "") -> WeightChoice | None:
    """Route's weights from what engagement taught; None when none of its modalities predicts. `beyond`
    names what the correlations were measured beyond (" beyond the creator's record"), for the reason."""
    w = significant({m: rho[m] for m in ALL if m in rho}, counted)
    total = sum(w.values())
    if total <= 0:
        return None
    shown = ", ".join(f"{m} {rho[m]:.2f}" for m in ALL if w.get(m, 0) > 0)
    return WeightChoice({m: w.get(m, 0.0) / total for m in ALL}, "learned",
                        f"learned from engagement{beyond}: held-out rank correlation {shown}; the others predict nothing more")


def from_content(excess: dict[str, float]) -> WeightChoice:
    """The defaults, each dense modality discounted by its creator excess (see the module's docstring)."""
    w = {m: DEFAULT_WEIGHTS[m] * (1.0 - excess.get(m, 0.0)) if m in DENSE else DEFAULT_WEIGHTS[m] for m in ALL}
    total = sum(w.values())
    discounted = [f"{m} by {excess[m]:.0%}" for m in DENSE if excess.get(m, 0.0) >= 0.05]
    why = ("engagement predicts nothing yet, so from the content: the defaults"
           + (f", discounting {', '.join(discounted)} (its nearest neighbours are the creator's own videos that "
              f"much more often than chance: it tells who filmed a clip, not what is in it)" if discounted else ""))
    return WeightChoice({m: v / total for m, v in w.items()}, "content", why)


def defaults(why: str) -> WeightChoice:
    total = sum(DEFAULT_WEIGHTS.values())
    return WeightChoice({m: v / total for m, v in DEFAULT_WEIGHTS.items()}, "defaults", why)


def for_video(choice: WeightChoice, content: WeightChoice | None, present: dict[str, bool]) -> WeightChoice:
    """`choice`, unless it weighs none of the modalities this video has (learned weights that cover only a
    sound it does not share): then the content's weights (or the defaults), saying so."""
    if any(w > 0 and present.get(m, False) for m, w in choice.weights.items()):
        return choice
    other = content if content is not None and content is not choice else defaults("")
    covered = ", ".join(m for m, w in choice.weights.items() if w > 0)
    why = f"the {choice.basis} weights cover only {covered}, which this video lacks; {other.reason or 'the defaults'}"
    return WeightChoice(other.weights, other.basis, why)
