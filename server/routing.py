"""Cold-start routing: the performing videos most like a new one, fused over modalities, with reasons.

Candidates are the performs-well pool only (similar-but-unpopular is the wrong answer), held as
dense per-modality matrices so one matrix product per modality scores the whole pool exactly.
Each candidate's fused score is the weighted sum of its similarities: visual (CLIP video
embeddings), spoken (MiniLM transcript embeddings), caption (MiniLM caption + hashtag embeddings)
and sound (the confidence of a shared-sound match). The weights of modalities the new video lacks
(no speech, no caption, no sound match) are spread over the ones it has, so fused scores stay
comparable. The prior for the new video is the fused-score-weighted mean of its neighbours'
performance scores, with the weighted spread divided by the square root of the effective count as
its uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODALITIES = ("visual", "spoken", "caption", "sound")
DEFAULT_WEIGHTS = {"visual": 0.35, "spoken": 0.3, "caption": 0.2, "sound": 0.15}


@dataclass(frozen=True)
class PoolView:
    """The performs-well pool as dense arrays (row order is arbitrary but shared)."""

    rows: np.ndarray          # int64 store rows
    video_ids: list[str]
    creators: list[str]
    sounds: np.ndarray        # int64 sound id, -1 for none
    languages: list[str]
    scores: np.ndarray        # performance scores
    visual: np.ndarray        # (P, Dv)
    spoken: np.ndarray        # (P, Dt), zero rows where there is no transcript
    caption: np.ndarray       # (P, Dt), zero rows where there is no caption

    @classmethod
    def build(cls, profiles: list, scores: dict[int, float], visual_dim: int, text_dim: int) -> "PoolView":
        def stack(attr: str, dim: int) -> np.ndarray:
            out = np.zeros((len(profiles), dim), dtype=np.float32)
            for i, p in enumerate(profiles):
                v = getattr(p, attr)
                if v is not None:
                    out[i] = v
            return out

        return cls(
            rows=np.array([p.row for p in profiles], dtype=np.int64),
            video_ids=[p.video_id for p in profiles],
            creators=[p.creator_id for p in profiles],
            sounds=np.array([p.sound_id if p.sound_id is not None else -1 for p in profiles], dtype=np.int64),
            languages=[p.language for p in profiles],
            scores=np.array([scores.get(p.row, 0.0) for p in profiles], dtype=np.float64),
            visual=stack("visual", visual_dim),
            spoken=stack("spoken", text_dim),
            caption=stack("caption", text_dim),
        )

    def __len__(self) -> int:
        return int(self.rows.shape[0])


@dataclass(frozen=True)
class RouteOptions:
    k: int = 10
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    exclude_same_creator: bool = False
    language: str = ""        # keep neighbours whose detected speech language is this (or who have no speech)
    max_per_creator: int = 0  # 0 = no cap
    max_per_sound: int = 0


@dataclass(frozen=True)
class RouteQuery:
    visual: np.ndarray
    spoken: np.ndarray | None
    caption: np.ndarray | None
    sound_confidence: dict[int, float]  # store row -> confidence of a shared-sound match
    creator_id: str = ""
    exclude_row: int | None = None


@dataclass(frozen=True)
class RoutedNeighbour:
    video_id: str
    creator_id: str
    sound_id: int | None
    fused: float
    contributions: dict[str, float]   # weight x similarity per modality; they sum to `fused`
    similarities: dict[str, float]
    performance: float


@dataclass(frozen=True)
class RouteResult:
    neighbours: list[RoutedNeighbour]
    prior: float
    prior_uncertainty: float
    weights: dict[str, float]         # as applied, after spreading missing modalities
    pool_size: int


def effective_weights(requested: dict[str, float], query: RouteQuery) -> dict[str, float]:
    present = {
        "visual": True,
        "spoken": query.spoken is not None,
        "caption": query.caption is not None,
        "sound": bool(query.sound_confidence),
    }
    w = {m: max(0.0, float(requested.get(m, 0.0))) if present[m] else 0.0 for m in MODALITIES}
    total = sum(w.values())
    if total == 0:
        raise ValueError("every modality the video has is weighted 0; give at least one a positive weight")
    return {m: v / total for m, v in w.items()}


def route(pool: PoolView, query: RouteQuery, options: RouteOptions) -> RouteResult:
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
    fused = sum(weights[m] * sims[m] for m in MODALITIES) if n else np.zeros(0)
    keep = np.ones(n, dtype=bool)
    if query.exclude_row is not None:
        keep &= pool.rows != query.exclude_row
    if options.exclude_same_creator and query.creator_id:
        keep &= np.array([c != query.creator_id for c in pool.creators], dtype=bool)
    if options.language:
        keep &= np.array([lang in ("", options.language) for lang in pool.languages], dtype=bool)
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
    neighbours = [
        RoutedNeighbour(
            video_id=pool.video_ids[i],
            creator_id=pool.creators[i],
            sound_id=int(pool.sounds[i]) if pool.sounds[i] >= 0 else None,
            fused=float(fused[i]),
            contributions={m: float(weights[m] * sims[m][i]) for m in MODALITIES},
            similarities={m: float(sims[m][i]) for m in MODALITIES},
            performance=float(pool.scores[i]),
        )
        for i in chosen
    ]
    prior, spread = _prior([max(nb.fused, 0.0) for nb in neighbours], [nb.performance for nb in neighbours])
    return RouteResult(neighbours, prior, spread, weights, n)


def _prior(weights: list[float], values: list[float]) -> tuple[float, float]:
    w = np.asarray(weights, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if w.sum() <= 0:
        return 0.0, 0.0
    mean = float((w * v).sum() / w.sum())
    n_eff = w.sum() ** 2 / (w**2).sum()
    std = float(np.sqrt((w * (v - mean) ** 2).sum() / w.sum()))
    return mean, std / float(np.sqrt(n_eff))
