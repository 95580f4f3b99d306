"""The sparse signals the content prior learns from beside the vector modalities, and how each is measured.

Sound: a stored video that shares a stretch of a sound with the query (sounds/sharing.py) is a neighbour;
its similarity is the match's confidence times the sound's *coherence*, how alike the videos using that
sound are, in [0, 1], the larger of:
  - in how they perform: 1 - (variance of their log scores) / (the corpus's), over its engaged videos;
  - in how they look or what their captions say (CORROBORATING): their mean pairwise similarity, from as
    alike as random videos (0) to as alike as videos and their nearest neighbours usually are (1).
    Speech cannot corroborate a sound: videos sharing a voice recording say the same words by construction.
Each is shrunk toward 0 by n / (n + SOUND_SHRINK) for a sound with n such videos. A sound whose videos
perform alike (a topic's song, a meme's recording) or look alike (a topic's song in a topic's pictures)
counts fully; a trend used across topics, whose videos differ as much as any, about not at all; a sound
nobody else has used yet, not at all. Without this, the weight sound earns from its coherent sounds would
be spent on every trend a clip happens to carry.

Creator: the creator's other engaged videos are neighbours, similarity 1 (what platforms call creator
credibility). Its weight is learned on held-out videos like any modality's, so it is 0 where a creator's
record does not predict; a first-time creator has no such neighbours and the prior is content alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from coldopen.domain.modalities import CAPTION, VISUAL

SOUND_SHRINK = 3.0  # videos at which a sound's coherence is believed half
CORROBORATING = (VISUAL, CAPTION)  # modalities whose likeness among a sound's videos shows the sound is topical


@dataclass(frozen=True)
class Baseline:
    """How alike videos are in one modality: random pairs, and videos with their nearest neighbours."""
    random_pair: float
    neighbour: float


@dataclass(frozen=True)
class PriorQuery:
    vectors: dict[str, np.ndarray | None]                     # visual, spoken, caption (None: absent)
    sounds: dict[int, tuple[int, float]] = field(default_factory=dict)  # row -> (sound, confidence) it shares
    creator: str = ""
    exclude: int | None = None                                # a stored video is not its own neighbour
    coherence: dict[int, float] | None = None                 # sound -> coherence, when the caller measured it


class Relations(Protocol):
    """What the service knows about stored videos beyond their vectors (the app layer implements it)."""

    def sound_sharers(self, rows: Sequence[int]) -> list[dict[int, tuple[int, float]]]:
        """Per stored row: every other stored row sharing a stretch of a sound with it -> (sound, confidence)."""
        ...

    def creators(self, rows: Sequence[int]) -> list[str]:
        ...

    def creator_rows(self, creators: Sequence[str]) -> dict[str, np.ndarray]:
        """Each creator's stored rows (the most recent ones, up to a bound)."""
        ...


def coherence(log_scores: np.ndarray, corpus_log_var: float) -> float:
    """How alike the engaged videos using one sound perform, in [0, 1] (see the module's docstring)."""
    n = len(log_scores)
    if n < 2 or corpus_log_var <= 0:
        return 0.0
    raw = max(0.0, 1.0 - float(np.var(log_scores, ddof=1)) / corpus_log_var)
    return raw * n / (n + SOUND_SHRINK)


def likeness(vectors: np.ndarray, baseline: Baseline) -> float:
    """How alike these videos are in one modality, in [0, 1]: their mean pairwise cosine similarity placed
    between `baseline.random_pair` (0) and `baseline.neighbour` (1), shrunk by n / (n + SOUND_SHRINK)."""
    v = vectors[np.any(vectors != 0, axis=1)]
    n = len(v)
    if n < 2 or baseline.neighbour <= baseline.random_pair + 1e-6:
        return 0.0
    total = v.sum(axis=0)
    mean_pair = (float(total @ total) - float((v * v).sum())) / (n * (n - 1))
    raw = (mean_pair - baseline.random_pair) / (baseline.neighbour - baseline.random_pair)
    return float(min(1.0, max(0.0, raw))) * n / (n + SOUND_SHRINK)


def coherences(sharers: dict[int, tuple[int, float]], log_score_of: dict[int, float], corpus_log_var: float,
               vectors_of: dict[int, dict[str, np.ndarray]] | None = None, baselines: dict[str, Baseline] | None = None
               ) -> dict[int, float]:
    """sound -> its coherence (see the module's docstring), from the rows sharing it: `log_score_of` holds the
    engaged ones' log scores, `vectors_of` (row -> modality -> vector) their vectors where known."""
    by_sound: dict[int, list[int]] = {}
    for row, (sound, _) in sharers.items():
        by_sound.setdefault(sound, []).append(row)
    out = {}
    for snd, rows in by_sound.items():
        perform = coherence(np.array([log_score_of[r] for r in rows if r in log_score_of]), corpus_log_var)
        alike = 0.0
        for m, base in (baselines or {}).items():
            have = [vectors_of[r][m] for r in rows if vectors_of is not None and r in vectors_of and m in vectors_of[r]]
            if len(have) >= 2:
                alike = max(alike, likeness(np.stack(have), base))
        out[snd] = max(perform, alike)
    return out


def sound_similarity(sharers: dict[int, tuple[int, float]], coherence_of: dict[int, float]) -> dict[int, float]:
    """row -> the confidence of the stretch it shares x the coherence of that sound."""
    return {row: conf * coherence_of.get(sound, 0.0) for row, (sound, conf) in sharers.items()}


def creator_excess(top_same: Sequence[float], chance: Sequence[float]) -> float:
    """How much more often than chance a modality's nearest neighbours are the query's own creator's videos,
    in [0, 1]: (mean share - mean chance) / (1 - mean chance). 1: it finds who made a clip, not what is in it."""
    if not len(top_same):
        return 0.0
    share, base = float(np.mean(top_same)), float(np.mean(chance))
    return float(min(1.0, max(0.0, (share - base) / max(1.0 - base, 1e-9))))
