"""What a video is expected to do: its content prior and its posterior (computed in ranking/coldstart/)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

COVERAGE = 0.8  # the content prior's interval holds this share of videos like the one asked about


@dataclass(frozen=True)
class Prior:
    mean: float              # predicted score: exp(log_mean), a median on the score scale
    low: float               # calibrated interval for the video's eventual score
    high: float
    coverage: float
    log_mean: float
    log_sd: float
    neighbours: float
    calibrated: bool         # False: too few held-out videos yet; the interval is the corpus's own spread
    calibration_samples: int
    # what it was predicted from: each signal's weight (visual, spoken, caption, sound, creator; those the
    # video lacks or that predict nothing are absent or 0), and how many of the creator's engaged videos
    # were among its neighbours (0 when the creator's record carries no weight, or a first-time creator)
    weights: dict[str, float] = field(default_factory=dict)
    creator_videos: int = 0

    @classmethod
    def from_json(cls, text: str) -> Prior:
        """A prior as stored with a video (dataclasses.asdict as JSON); fields a later version added or
        dropped are ignored or defaulted, so an older row still reads."""
        stored = json.loads(text)
        defaults = {"coverage": COVERAGE, "neighbours": 0.0, "calibrated": True, "calibration_samples": 0, "weights": {},
                    "creator_videos": 0}
        return cls(**{f.name: stored.get(f.name, defaults.get(f.name, 0.0)) for f in dataclasses.fields(cls)})

    def gamma(self) -> tuple[float, float]:
        """(shape, rate) of the Gamma distribution with the prior's mean and variance on the score scale
        (log-normal moments), for a Gamma-Poisson posterior (ranking/coldstart/posterior.py)."""
        m = math.exp(self.log_mean + self.log_sd**2 / 2)
        var = (math.exp(self.log_sd**2) - 1.0) * m * m
        rate = m / var if var > 0 else 1e12
        return m * rate, rate


@dataclass(frozen=True)
class Posterior:
    mean: float
    low: float                 # credible interval at `level`
    high: float
    level: float
    p_beats_threshold: float   # P(rate > the pool threshold)
    prior_impressions: float   # the prior's weight, in impressions (b0)
