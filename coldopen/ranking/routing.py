"""Cold-start routing: the performing videos most like a new one, fused over modalities, with reasons.

Candidates are the performs-well pool only (similar-but-unpopular is the wrong answer), held as
dense per-modality matrices so one matrix product per modality scores the whole pool exactly.
Each candidate's fused score is the weighted sum of its similarities, each first put on one scale
(ranking/fusion.py): visual (CLIP video embeddings), spoken (MiniLM transcript embeddings), caption
(MiniLM caption + hashtag embeddings) and sound (a shared-sound match's confidence times the sound's
coherence, ranking/coldstart/signals.py). The weights (ranking/weights.py) of modalities the new video
lacks (no speech, no caption, no sound match) are spread over the ones it has, so fused scores stay
comparable. The prior for the new video is the fused-score-weighted mean of its neighbours'
performance scores, with the weighted spread divided by the square root of the effective count as
its uncertainty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from coldopen.domain.modalities import ALL
from coldopen.domain.outlook import Prior
from coldopen.ranking.fusion import fuse
from coldopen.ranking.view import PoolView
from coldopen.ranking.weights import DEFAULT_WEIGHTS

MODALITIES = ALL


@dataclass(frozen=True)
class RouteOptions:
    k: int = 10
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    exclude_same_creator: bool = False
    language: str = ""        # keep neighbours whose detected speech language is this (or who have no speech)
    max_per_creator: int = 0  # 0 = no cap
    max_per_sound: int = 0
    fusion: str = "robust"    # how similarities are put on one scale first (ranking/fusion.py)
    learned: bool = False     # the server chooses the weights (ranking/weights.py): the request gave none
    weights_basis: str = "request"  # where `weights` came from (modalities.WEIGHT_BASES), and why
    weights_reason: str = ""


@dataclass(frozen=True)
class RouteQuery:
    visual: np.ndarray
    spoken: np.ndarray | None
    caption: np.ndarray | None
    sound_confidence: dict[int, float]  # store row -> similarity of the sound it shares: confidence x coherence
    creator_id: str = ""
    exclude_row: int | None = None
    shared_sound: dict[int, int] = field(default_factory=dict)  # store row -> the sound it shares with the query


@dataclass(frozen=True)
class RoutedNeighbour:
    video_id: str
    creator_id: str
    sound_id: int | None
    fused: float
    contributions: dict[str, float]   # weight x similarity per modality; they sum to `fused`
    similarities: dict[str, float]
    performance: float
    shared_sound_id: int | None = None  # the sound it shares with the query (its sound reason), if any


@dataclass(frozen=True)
class RouteResult:
    neighbours: list[RoutedNeighbour]
    prior: float
    prior_uncertainty: float
    weights: dict[str, float]         # as applied, after spreading missing modalities
    pool_size: int
    content_prior: Prior | None = None  # set by the service (ranking/coldstart/)
    weights_basis: str = "request"
    weights_reason: str = ""


def present(query: RouteQuery) -> dict[str, bool]:
    """The modalities a query has: a picture always; speech, a caption, a sound it shares with a performer."""
    return {"visual": True, "spoken": query.spoken is not None, "caption": query.caption is not None,
            "sound": any(v > 0 for v in query.sound_confidence.values())}


def effective_weights(requested: dict[str, float], query: RouteQuery) -> dict[str, float]:
    has = present(query)
    w = {m: max(0.0, float(requested.get(m, 0.0))) if has[m] else 0.0 for m in MODALITIES}
    total = sum(w.values())
    if total == 0:
        raise ValueError("every modality the video has is weighted 0; give at least one a positive weight")
    return {m: v / total for m, v in w.items()}


def route(
    pool: PoolView, query: RouteQuery, options: RouteOptions,
    performance: Callable[[np.ndarray], np.ndarray] | None = None,
) -> RouteResult:
    """`performance(rows)`: the chosen neighbours' current scores (decayed to now); default: as published."""
    weights = effective_weights(options.weights, query)
    n = len(pool)
    sims = {m: np.zeros(n, dtype=np.float64) for m in MODALITIES}
    if n:
        sims["visual"] = pool.visual @ query.visual
        if query.spoken is not None:
            sims["spoken"] = pool.spoken @ query.spoken
        if query.caption is not None:
            sims["caption"] = pool.caption @ query.caption
        for i, row in enumerate(pool.rows):
            sims["sound"][i] = query.sound_confidence.get(int(row), 0.0)
    keep = np.ones(n, dtype=bool)
    if query.exclude_row is not None:
        keep &= pool.rows != query.exclude_row
    if options.exclude_same_creator and query.creator_id:
        keep &= np.array([c != query.creator_id for c in pool.creators], dtype=bool)
    if options.language:
        keep &= np.array([lang in ("", options.language) for lang in pool.languages], dtype=bool)
    fused, scaled = fuse(sims, weights, keep, options.fusion)
    chosen: list[int] = []
    per_creator: dict[str, int] = {}
    per_sound: dict[int, int] = {}
    for i in np.argsort(-fused, kind="stable"):
        if not keep[i]:
            continue
        creator, sound = pool.creators[i], int(pool.sounds[i])
        if options.max_per_creator and per_creator.get(creator, 0) >= options.max_per_creator:
            continue
        if options.max_per_sound and sound >= 0 and per_sound.get(sound, 0) >= options.max_per_sound:
            continue
        chosen.append(int(i))
        per_creator[creator] = per_creator.get(creator, 0) + 1
        if sound >= 0:
            per_sound[sound] = per_sound.get(sound, 0) + 1
        if len(chosen) == options.k:
            break
    perf = performance(pool.rows[chosen]) if performance is not None and chosen else pool.scores[chosen]
    neighbours = [
        RoutedNeighbour(
            video_id=pool.video_ids[i],
            creator_id=pool.creators[i],
            sound_id=int(pool.sounds[i]) if pool.sounds[i] >= 0 else None,
            fused=float(fused[i]),
            contributions={m: float(weights[m] * scaled[m][i]) for m in MODALITIES},
            similarities={m: float(sims[m][i]) for m in MODALITIES},
            performance=float(p),
            shared_sound_id=query.shared_sound.get(int(pool.rows[i])),
        )
        for i, p in zip(chosen, perf)
    ]
    prior, spread = _prior([max(nb.fused, 0.0) for nb in neighbours], [nb.performance for nb in neighbours])
    return RouteResult(neighbours, prior, spread, weights, n, weights_basis=options.weights_basis,
                       weights_reason=options.weights_reason)


def _prior(weights: list[float], values: list[float]) -> tuple[float, float]:
    w = np.asarray(weights, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if w.sum() <= 0:
        return 0.0, 0.0
    mean = float((w * v).sum() / w.sum())
    n_eff = w.sum() ** 2 / (w**2).sum()
    std = float(np.sqrt((w * (v - mean) ** 2).sum() / w.sum()))
    return mean, std / float(np.sqrt(n_eff))
