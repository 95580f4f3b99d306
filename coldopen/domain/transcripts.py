"""A clip's transcript, as Whisper segments it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    model: str
    segments: list[Segment] = field(default_factory=list)
