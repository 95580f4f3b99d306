"""Plain dataclasses that cross module boundaries (servicer <-> service <-> store)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.whisper import Transcript
from server.engagement import Counters, Performance
from server.media import MediaInfo


@dataclass(frozen=True)
class VideoMetadata:
    video_id: str
    creator_id: str = ""
    caption: str = ""
    hashtags: tuple[str, ...] = ()
    language_hint: str = ""
    filename: str = ""


@dataclass(frozen=True)
class SoundUse:
    """A video's use of a sound: where the sound's timeline meets the video's (server/sounds/sharing.py).

    A sound frame is round(video frame x scale) + offset; [first, last] is the stretch of the sound's
    timeline the video covers; matched_frames and confidence are the evidence the link rests on (0 frames:
    linked before links kept it). `started`: this video is the one the sound was created from."""

    sound_id: int
    primary: bool
    offset: int
    scale: float
    first: int
    last: int
    matched_frames: int
    confidence: float
    started: bool = False


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

    @property
    def new_sound(self) -> bool:
        """Whether this video started its primary sound."""
        return any(u.primary and u.started for u in self.sounds)


@dataclass(frozen=True)
class SoundNeighbour:
    """A video sharing a stretch of sound with the query: where it starts in each, and for how long."""

    video_id: str
    sound_id: int | None
    matched_frames: int
    query_start_s: float
    reference_start_s: float
    duration_s: float
    confidence: float


@dataclass(frozen=True)
class SoundStats:
    sound_id: int
    created_at: str
    first_video: str
    videos: int
    recent_videos: int


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
