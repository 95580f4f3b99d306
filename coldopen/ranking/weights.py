"""Which modality weights Route fuses with when a request gives none, and why (RouteResponse.weights_basis
and weights_reason).

learned   engagement taught them: each signal's weight is the square of its held-out rank correlation
          with engagement (ranking/coldstart/content.py), 0 below noise; Route uses those of its modalities.
content   engagement teaches nothing (no modality's neighbours predict held-out scores beyond noise): one
          dense modality leads, and the others join it only where their nearest neighbours are the lead's
          (a second view of the same kind of content), so a dense modality that groups clips by something
          else (boilerplate captions, a sentence everyone says, the creator's room) cannot outvote the one
          that finds the kind: fused with it, an exact boilerplate match outranks the lead's best
          neighbours (benchmarks/RESULTS.md, "Routing on one world per signal"). Which one leads: the
          defaults, each dense modality discounted by how much more often than chance its nearest
          neighbours are the clip's own creator's videos (it says who filmed a clip, not what is in it:
          the creator's room, face or voice), times the hint engagement gives below the noise bar: the
          likelihood ratio exp(z^2 / 2) of its held-out rank correlation's z = rho sqrt(n - 1) when
          positive, 1 when not. A hint never counts against a modality (a negative correlation in noise is
          as likely as a positive one), so noise rarely moves the lead off the content's choice (a
          modality discounted 80% for finding the creator needs z > 1.7 to lead: 4.5% of null draws), while
          a weak but real signal, the only one there is, decides between modalities the content cannot tell
          apart (the picture and a random sentence both group clips into kinds). A shared sound never leads
          here (it reaches only the uploads that share one, often through a trend) and joins like any other
          modality: only where the videos sharing a sound are among the lead's nearest. Its similarity is
          scaled by how alike its videos perform (coldstart/signals.py), but with a handful of videos a
          trend's coherence is noise, not ~0: kept at its default weight, trends cost 0.10 of precision@4
          where the creator decides engagement (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
    leads: tuple[str, ...] = ()  # a video needs one of these for the choice to apply (empty: any weighted one)

    @property
    def needs(self) -> tuple[str, ...]:
        """The modalities a video needs one of for this choice to apply."""
        return self.leads or tuple(m for m, w in self.weights.items() if w > 0)

    def covers(self, present: dict[str, bool]) -> bool:
        return any(self.weights.get(m, 0.0) > 0 and present.get(m, False) for m in self.needs)


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


def hint(rho: float | None, counted: int) -> float:
    """How much a held-out rank correlation below the noise bar favours its modality: exp(z^2 / 2) for
    z = rho sqrt(n - 1) > 0 (the likelihood ratio of the observed correlation against none), else 1."""
    if rho is None or not math.isfinite(rho) or counted < 2 or rho <= 0:
        return 1.0
    return math.exp(0.5 * rho * rho * (counted - 1))


def from_content(excess: dict[str, float], rho: dict[str, float] | None = None, counted: dict[str, int] | None = None,
                 agree: Callable[[str, str], bool] | None = None) -> WeightChoice:
    """The content's weights (see the module's docstring): `excess`, each dense modality's creator excess;
    `rho`, `counted`: held-out rank correlations below the noise bar and over how many videos (a sound: how
    many had a neighbour sharing one); `agree(lead, m)`: whether m's nearest neighbours are lead's. Without
    them (or with no dense modality measured), every modality at its discounted default."""
    prior = {m: DEFAULT_WEIGHTS[m] * (1.0 - excess.get(m, 0.0)) if m in DENSE else DEFAULT_WEIGHTS[m] for m in ALL}
    rho, counted = rho or {}, counted or {}
    measured = [m for m in DENSE if counted.get(m, 0) >= 2 and math.isfinite(rho.get(m, math.nan))]
    discounted = [f"{m} by {excess[m]:.0%}" for m in DENSE if excess.get(m, 0.0) >= 0.05]
    creator_note = (f", discounting {', '.join(discounted)} (its nearest neighbours are the creator's own videos that "
                    f"much more often than chance: it tells who filmed a clip, not what is in it)" if discounted else "")
    if agree is None or not measured:
        w = prior
        why = "engagement predicts nothing yet, so from the content: the defaults" + creator_note
        leads: tuple[str, ...] = ()
    else:
        score = {m: prior[m] * hint(rho.get(m), counted.get(m, 0)) for m in measured}
        lead = max(measured, key=lambda m: score[m])
        others = [m for m in ALL if m != lead and (m in measured or (m not in DENSE and counted.get(m, 0) >= 2))]
        joined = [m for m in others if agree(lead, m)]
        left = [m for m in others if m not in joined]
        leads = (lead, *(m for m in joined if m in DENSE))
        w = {m: prior[m] if m == lead or m in joined else 0.0 for m in ALL}
        hints = ", ".join(f"{m} {rho[m]:.2f}" for m in measured)
        why = (f"engagement predicts nothing beyond noise yet, so from the content: {lead} leads (the defaults"
               f"{creator_note}, times engagement's hints below the noise bar, held-out rank correlation {hints})"
               + (f"; {', '.join(joined)} joined it (their nearest videos are {lead}'s)" if joined else "")
               + (f"; {', '.join(left)} left out (their nearest videos are not {lead}'s)" if left else ""))
    total = sum(w.values())
    if total <= 0:  # every modality the corpus has finds only the creator: nothing in the content to route by
        return defaults(why + "; every modality left weighs nothing, so the defaults")
    return WeightChoice({m: v / total for m, v in w.items()}, "content", why, leads)


def defaults(why: str) -> WeightChoice:
    total = sum(DEFAULT_WEIGHTS.values())
    return WeightChoice({m: v / total for m, v in DEFAULT_WEIGHTS.items()}, "defaults", why)


def for_video(choice: WeightChoice, content: WeightChoice | None, present: dict[str, bool]) -> WeightChoice:
    """`choice`, unless it covers none of the modalities this video has (learned weights that cover only a
    sound it does not share; content weights led by speech for a silent clip): then the content's weights,
    or the defaults, saying so."""
    if choice.covers(present):
        return choice
    covered = ", ".join(choice.needs)
    other = content if content is not None and content is not choice and content.covers(present) else defaults("")
    why = (f"the {choice.basis} weights {'are led by' if choice.leads else 'cover only'} {covered}, which this video "
           f"lacks; {other.reason or 'the defaults'}")
    return WeightChoice(other.weights, other.basis, why, other.leads)
