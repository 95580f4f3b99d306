"""Engagement as it crosses layers: a video's counters, its performance, the events that add to them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from coldopen.domain.outlook import Posterior, Prior


@dataclass(frozen=True)
class Counters:
    impressions: int = 0
    plays: int = 0
    completions: int = 0
    watch_time_s: float = 0.0
    likes: int = 0
    comments: int = 0
    shares: int = 0
    follows: int = 0
    last_event_at: str = ""

    def values(self) -> tuple[float, ...]:
        """The counts, in COUNTER_NAMES order."""
        return tuple(getattr(self, n) for n in COUNTER_NAMES)


# The counters an event adds to, in order: every layer (events, the catalog, the API) takes them from here.
COUNTER_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Counters) if f.name != "last_event_at")


@dataclass(frozen=True)
class Performance:
    counters: Counters
    score: float
    completion_rate: float
    in_pool: bool
    pool_threshold: float
    content_prior: Prior | None = None
    posterior: Posterior | None = None


@dataclass(frozen=True)
class EngagementEvent:
    event_id: str
    video_id: str
    counters: Counters
    at: str  # RFC 3339 UTC


@dataclass(frozen=True)
class EngagementResult:
    accepted: int
    duplicates: int
    rejected: list[tuple[str, str]]
    pool_size: int
    pool_threshold: float
