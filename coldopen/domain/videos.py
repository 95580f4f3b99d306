"""Videos as they cross layers: what is uploaded, what was extracted from it, what a search returns;
and the checks on what a caller names (video ids, counts)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from coldopen.domain.engagement import Performance
from coldopen.domain.errors import InvalidInput
from coldopen.domain.media import MediaInfo
from coldopen.domain.sounds import SoundNeighbour, SoundUse
from coldopen.domain.transcripts import Transcript

VIDEO_ID = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")
MAX_TEXT_CHARS = 1000  # a text search query


def validate_video_id(video_id: str) -> str:
    if not video_id:
        raise InvalidInput("video_id is missing; set metadata.video_id to your platform's id for this clip")
    if not VIDEO_ID.match(video_id):
        raise InvalidInput(
            f"video_id {video_id[:40]!r} is invalid: use 1-256 printable characters without whitespace"
        )
    return video_id


def check_count(value: int, maximum: int, name: str, noun: str) -> int:
    """The one range check of a count a caller asks for (k, limit): 1 to `maximum` (the max_k setting)."""
    if value < 1 or value > maximum:
        raise InvalidInput(f"{name}={value} is out of range; ask for 1 to {maximum} {noun}")
    return value


@dataclass(frozen=True)
class VideoMetadata:
    video_id: str
    creator_id: str = ""
    caption: str = ""
    hashtags: tuple[str, ...] = ()
    language_hint: str = ""
    filename: str = ""


@dataclass(frozen=True)
class Extraction:
    media: MediaInfo
    frames_sampled: int
    embedding_model: str
    embedding_dim: int
    transcript: Transcript
    timings_ms: dict[str, float] = field(default_factory=dict)
    sound_id: int | None = None   # the sound this clip uses (its primary one); None without usable audio
    landmarks: int = 0            # landmark hashes in its audio fingerprint
    sampling: str = ""            # uniform | keyframes: how its frames were sampled
    sounds: tuple[SoundUse, ...] = ()  # every sound it uses, the primary first
    queue_wait_ms: dict[str, float] = field(default_factory=dict)  # model stage -> time its work waited in the queue
    batch_sizes: dict[str, float] = field(default_factory=dict)    # model stage -> mean batch its work rode in
    frames_skipped: int = 0       # sampled frames not embedded (near-repeats of the last embedded one); frames_sampled
    # counts the embedded ones

    @property
    def new_sound(self) -> bool:
        """Whether this video started its primary sound."""
        return any(u.primary and u.started for u in self.sounds)


@dataclass(frozen=True)
class IngestResult:
    video_id: str
    replaced: bool
    bytes_received: int
    extraction: Extraction
    sound_matches: list[SoundNeighbour] = field(default_factory=list)
    vectors_pending: bool = False  # stored, but the shared vector store was down: searchable once it is shipped

    @property
    def new_sound(self) -> bool:
        return self.extraction.new_sound


@dataclass(frozen=True)
class VideoRecord:
    metadata: VideoMetadata
    extraction: Extraction
    ingested_at: str
    embedding: np.ndarray | None = None           # video embedding, when asked for
    frame_times_s: list[float] | None = None      # per-frame data, when asked for
    frame_embeddings: np.ndarray | None = None
    performance: Performance | None = None


@dataclass(frozen=True)
class SearchQuery:
    k: int
    performing_only: bool = False
    target: str = "visual"  # visual (CLIP) | spoken (transcripts) | caption (captions + hashtags)
    video_id: str | None = None
    text: str | None = None
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class Neighbour:
    video_id: str
    score: float
    creator_id: str
    caption: str
    duration_s: float


@dataclass(frozen=True)
class SearchResult:
    neighbours: list[Neighbour]
    embedding_model: str
    index_size: int
