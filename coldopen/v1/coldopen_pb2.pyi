from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Target(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TARGET_VISUAL: _ClassVar[Target]
    TARGET_SPOKEN: _ClassVar[Target]
    TARGET_CAPTION: _ClassVar[Target]

class RolloutDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLLOUT_DECISION_UNSPECIFIED: _ClassVar[RolloutDecision]
    WIDEN: _ClassVar[RolloutDecision]
    HOLD: _ClassVar[RolloutDecision]
    STOP: _ClassVar[RolloutDecision]
TARGET_VISUAL: Target
TARGET_SPOKEN: Target
TARGET_CAPTION: Target
ROLLOUT_DECISION_UNSPECIFIED: RolloutDecision
WIDEN: RolloutDecision
HOLD: RolloutDecision
STOP: RolloutDecision

class VideoMetadata(_message.Message):
    __slots__ = ("video_id", "creator_id", "caption", "hashtags", "language_hint", "filename")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    HASHTAGS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_HINT_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    creator_id: str
    caption: str
    hashtags: _containers.RepeatedScalarFieldContainer[str]
    language_hint: str
    filename: str
    def __init__(self, video_id: _Optional[str] = ..., creator_id: _Optional[str] = ..., caption: _Optional[str] = ..., hashtags: _Optional[_Iterable[str]] = ..., language_hint: _Optional[str] = ..., filename: _Optional[str] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: VideoMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[VideoMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class MediaInfo(_message.Message):
    __slots__ = ("duration_s", "width", "height", "fps", "has_audio", "container", "video_codec", "audio_codec", "rotation")
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    VIDEO_CODEC_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CODEC_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    duration_s: float
    width: int
    height: int
    fps: float
    has_audio: bool
    container: str
    video_codec: str
    audio_codec: str
    rotation: int
    def __init__(self, duration_s: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., has_audio: bool = ..., container: _Optional[str] = ..., video_codec: _Optional[str] = ..., audio_codec: _Optional[str] = ..., rotation: _Optional[int] = ...) -> None: ...

class TranscriptSegment(_message.Message):
    __slots__ = ("start_s", "end_s", "text", "avg_logprob", "no_speech_prob", "compression_ratio")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    NO_SPEECH_PROB_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., text: _Optional[str] = ..., avg_logprob: _Optional[float] = ..., no_speech_prob: _Optional[float] = ..., compression_ratio: _Optional[float] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("text", "language", "language_probability", "segments", "model")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    text: str
    language: str
    language_probability: float
    segments: _containers.RepeatedCompositeFieldContainer[TranscriptSegment]
    model: str
    def __init__(self, text: _Optional[str] = ..., language: _Optional[str] = ..., language_probability: _Optional[float] = ..., segments: _Optional[_Iterable[_Union[TranscriptSegment, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    ms: float
    def __init__(self, stage: _Optional[str] = ..., ms: _Optional[float] = ...) -> None: ...

class BatchSize(_message.Message):
    __slots__ = ("stage", "mean")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    stage: str
    mean: float
    def __init__(self, stage: _Optional[str] = ..., mean: _Optional[float] = ...) -> None: ...

class SoundUse(_message.Message):
    __slots__ = ("sound_id", "primary", "started", "start_s", "sound_start_s", "duration_s", "speed", "matched_frames", "confidence", "pitch_semitones")
    SOUND_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    SOUND_START_S_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PITCH_SEMITONES_FIELD_NUMBER: _ClassVar[int]
    sound_id: str
    primary: bool
    started: bool
    start_s: float
    sound_start_s: float
    duration_s: float
    speed: float
    matched_frames: int
    confidence: float
    pitch_semitones: float
    def __init__(self, sound_id: _Optional[str] = ..., primary: bool = ..., started: bool = ..., start_s: _Optional[float] = ..., sound_start_s: _Optional[float] = ..., duration_s: _Optional[float] = ..., speed: _Optional[float] = ..., matched_frames: _Optional[int] = ..., confidence: _Optional[float] = ..., pitch_semitones: _Optional[float] = ...) -> None: ...

class Extraction(_message.Message):
    __slots__ = ("media", "frames_sampled", "embedding_model", "embedding_dim", "transcript", "timings", "sound_id", "landmarks", "sampling", "new_sound", "sounds", "queue_wait", "batches", "frames_skipped")
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SAMPLED_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    SOUND_ID_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    NEW_SOUND_FIELD_NUMBER: _ClassVar[int]
    SOUNDS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_WAIT_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    media: MediaInfo
    frames_sampled: int
    embedding_model: str
    embedding_dim: int
    transcript: Transcript
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    sound_id: str
    landmarks: int
    sampling: str
    new_sound: bool
    sounds: _containers.RepeatedCompositeFieldContainer[SoundUse]
    queue_wait: _containers.RepeatedCompositeFieldContainer[StageTiming]
    batches: _containers.RepeatedCompositeFieldContainer[BatchSize]
    frames_skipped: int
    def __init__(self, media: _Optional[_Union[MediaInfo, _Mapping]] = ..., frames_sampled: _Optional[int] = ..., embedding_model: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., sound_id: _Optional[str] = ..., landmarks: _Optional[int] = ..., sampling: _Optional[str] = ..., new_sound: bool = ..., sounds: _Optional[_Iterable[_Union[SoundUse, _Mapping]]] = ..., queue_wait: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., batches: _Optional[_Iterable[_Union[BatchSize, _Mapping]]] = ..., frames_skipped: _Optional[int] = ...) -> None: ...

class SoundMatch(_message.Message):
    __slots__ = ("video_id", "sound_id", "matched_frames", "query_start_s", "reference_start_s", "duration_s", "confidence")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SOUND_ID_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    QUERY_START_S_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_START_S_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    sound_id: str
    matched_frames: int
    query_start_s: float
    reference_start_s: float
    duration_s: float
    confidence: float
    def __init__(self, video_id: _Optional[str] = ..., sound_id: _Optional[str] = ..., matched_frames: _Optional[int] = ..., query_start_s: _Optional[float] = ..., reference_start_s: _Optional[float] = ..., duration_s: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("video_id", "replaced", "bytes_received", "extraction", "new_sound", "sound_matches", "vectors_pending")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    EXTRACTION_FIELD_NUMBER: _ClassVar[int]
    NEW_SOUND_FIELD_NUMBER: _ClassVar[int]
    SOUND_MATCHES_FIELD_NUMBER: _ClassVar[int]
    VECTORS_PENDING_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    replaced: bool
    bytes_received: int
    extraction: Extraction
    new_sound: bool
    sound_matches: _containers.RepeatedCompositeFieldContainer[SoundMatch]
    vectors_pending: bool
    def __init__(self, video_id: _Optional[str] = ..., replaced: bool = ..., bytes_received: _Optional[int] = ..., extraction: _Optional[_Union[Extraction, _Mapping]] = ..., new_sound: bool = ..., sound_matches: _Optional[_Iterable[_Union[SoundMatch, _Mapping]]] = ..., vectors_pending: bool = ...) -> None: ...

class EmbeddingQuery(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("video_id", "text", "embedding", "k", "performing_only", "target")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PERFORMING_ONLY_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    text: str
    embedding: EmbeddingQuery
    k: int
    performing_only: bool
    target: Target
    def __init__(self, video_id: _Optional[str] = ..., text: _Optional[str] = ..., embedding: _Optional[_Union[EmbeddingQuery, _Mapping]] = ..., k: _Optional[int] = ..., performing_only: bool = ..., target: _Optional[_Union[Target, str]] = ...) -> None: ...

class Neighbour(_message.Message):
    __slots__ = ("video_id", "score", "creator_id", "caption", "duration_s")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    score: float
    creator_id: str
    caption: str
    duration_s: float
    def __init__(self, video_id: _Optional[str] = ..., score: _Optional[float] = ..., creator_id: _Optional[str] = ..., caption: _Optional[str] = ..., duration_s: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("neighbours", "embedding_model", "index_size")
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_SIZE_FIELD_NUMBER: _ClassVar[int]
    neighbours: _containers.RepeatedCompositeFieldContainer[Neighbour]
    embedding_model: str
    index_size: int
    def __init__(self, neighbours: _Optional[_Iterable[_Union[Neighbour, _Mapping]]] = ..., embedding_model: _Optional[str] = ..., index_size: _Optional[int] = ...) -> None: ...

class GetVideoRequest(_message.Message):
    __slots__ = ("video_id", "include_embeddings")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    include_embeddings: bool
    def __init__(self, video_id: _Optional[str] = ..., include_embeddings: bool = ...) -> None: ...

class FrameEmbedding(_message.Message):
    __slots__ = ("t_s", "values")
    T_S_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    t_s: float
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, t_s: _Optional[float] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class Video(_message.Message):
    __slots__ = ("metadata", "extraction", "ingested_at", "embedding", "frames", "performance")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EXTRACTION_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_FIELD_NUMBER: _ClassVar[int]
    metadata: VideoMetadata
    extraction: Extraction
    ingested_at: str
    embedding: _containers.RepeatedScalarFieldContainer[float]
    frames: _containers.RepeatedCompositeFieldContainer[FrameEmbedding]
    performance: Performance
    def __init__(self, metadata: _Optional[_Union[VideoMetadata, _Mapping]] = ..., extraction: _Optional[_Union[Extraction, _Mapping]] = ..., ingested_at: _Optional[str] = ..., embedding: _Optional[_Iterable[float]] = ..., frames: _Optional[_Iterable[_Union[FrameEmbedding, _Mapping]]] = ..., performance: _Optional[_Union[Performance, _Mapping]] = ...) -> None: ...

class Performance(_message.Message):
    __slots__ = ("impressions", "plays", "completions", "watch_time_s", "likes", "comments", "shares", "follows", "last_event_at", "score", "completion_rate", "in_pool", "pool_threshold", "content_prior", "posterior")
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    PLAYS_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    WATCH_TIME_S_FIELD_NUMBER: _ClassVar[int]
    LIKES_FIELD_NUMBER: _ClassVar[int]
    COMMENTS_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    FOLLOWS_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_AT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_RATE_FIELD_NUMBER: _ClassVar[int]
    IN_POOL_FIELD_NUMBER: _ClassVar[int]
    POOL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONTENT_PRIOR_FIELD_NUMBER: _ClassVar[int]
    POSTERIOR_FIELD_NUMBER: _ClassVar[int]
    impressions: int
    plays: int
    completions: int
    watch_time_s: float
    likes: int
    comments: int
    shares: int
    follows: int
    last_event_at: str
    score: float
    completion_rate: float
    in_pool: bool
    pool_threshold: float
    content_prior: ContentPrior
    posterior: Posterior
    def __init__(self, impressions: _Optional[int] = ..., plays: _Optional[int] = ..., completions: _Optional[int] = ..., watch_time_s: _Optional[float] = ..., likes: _Optional[int] = ..., comments: _Optional[int] = ..., shares: _Optional[int] = ..., follows: _Optional[int] = ..., last_event_at: _Optional[str] = ..., score: _Optional[float] = ..., completion_rate: _Optional[float] = ..., in_pool: bool = ..., pool_threshold: _Optional[float] = ..., content_prior: _Optional[_Union[ContentPrior, _Mapping]] = ..., posterior: _Optional[_Union[Posterior, _Mapping]] = ...) -> None: ...

class ContentPrior(_message.Message):
    __slots__ = ("mean", "low", "high", "coverage", "neighbours", "calibrated", "calibration_videos", "weights", "creator_videos")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_VIDEOS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    CREATOR_VIDEOS_FIELD_NUMBER: _ClassVar[int]
    mean: float
    low: float
    high: float
    coverage: float
    neighbours: float
    calibrated: bool
    calibration_videos: int
    weights: PriorWeights
    creator_videos: int
    def __init__(self, mean: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., coverage: _Optional[float] = ..., neighbours: _Optional[float] = ..., calibrated: bool = ..., calibration_videos: _Optional[int] = ..., weights: _Optional[_Union[PriorWeights, _Mapping]] = ..., creator_videos: _Optional[int] = ...) -> None: ...

class PriorWeights(_message.Message):
    __slots__ = ("visual", "spoken", "caption", "sound", "creator")
    VISUAL_FIELD_NUMBER: _ClassVar[int]
    SPOKEN_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    SOUND_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    visual: float
    spoken: float
    caption: float
    sound: float
    creator: float
    def __init__(self, visual: _Optional[float] = ..., spoken: _Optional[float] = ..., caption: _Optional[float] = ..., sound: _Optional[float] = ..., creator: _Optional[float] = ...) -> None: ...

class Posterior(_message.Message):
    __slots__ = ("mean", "low", "high", "level", "p_beats_threshold", "prior_impressions")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    P_BEATS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PRIOR_IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    mean: float
    low: float
    high: float
    level: float
    p_beats_threshold: float
    prior_impressions: float
    def __init__(self, mean: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., level: _Optional[float] = ..., p_beats_threshold: _Optional[float] = ..., prior_impressions: _Optional[float] = ...) -> None: ...

class RolloutRequest(_message.Message):
    __slots__ = ("video_id", "audience")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    audience: int
    def __init__(self, video_id: _Optional[str] = ..., audience: _Optional[int] = ...) -> None: ...

class RolloutResponse(_message.Message):
    __slots__ = ("decision", "audience", "next_audience", "impressions", "p_beats_threshold", "pool_threshold", "content_prior", "posterior", "reason", "tiers")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    NEXT_AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    P_BEATS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    POOL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONTENT_PRIOR_FIELD_NUMBER: _ClassVar[int]
    POSTERIOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    decision: RolloutDecision
    audience: int
    next_audience: int
    impressions: int
    p_beats_threshold: float
    pool_threshold: float
    content_prior: ContentPrior
    posterior: Posterior
    reason: str
    tiers: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, decision: _Optional[_Union[RolloutDecision, str]] = ..., audience: _Optional[int] = ..., next_audience: _Optional[int] = ..., impressions: _Optional[int] = ..., p_beats_threshold: _Optional[float] = ..., pool_threshold: _Optional[float] = ..., content_prior: _Optional[_Union[ContentPrior, _Mapping]] = ..., posterior: _Optional[_Union[Posterior, _Mapping]] = ..., reason: _Optional[str] = ..., tiers: _Optional[_Iterable[int]] = ...) -> None: ...

class DeleteVideoRequest(_message.Message):
    __slots__ = ("video_id",)
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    def __init__(self, video_id: _Optional[str] = ...) -> None: ...

class DeleteVideoResponse(_message.Message):
    __slots__ = ("video_id",)
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    def __init__(self, video_id: _Optional[str] = ...) -> None: ...

class UploadInfo(_message.Message):
    __slots__ = ("filename",)
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    filename: str
    def __init__(self, filename: _Optional[str] = ...) -> None: ...

class SoundQuery(_message.Message):
    __slots__ = ("video_id", "upload", "limit")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    upload: UploadInfo
    limit: int
    def __init__(self, video_id: _Optional[str] = ..., upload: _Optional[_Union[UploadInfo, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class SoundSearchRequest(_message.Message):
    __slots__ = ("query", "chunk")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    query: SoundQuery
    chunk: bytes
    def __init__(self, query: _Optional[_Union[SoundQuery, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class SoundSearchResponse(_message.Message):
    __slots__ = ("matches",)
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[SoundMatch]
    def __init__(self, matches: _Optional[_Iterable[_Union[SoundMatch, _Mapping]]] = ...) -> None: ...

class GetSoundRequest(_message.Message):
    __slots__ = ("sound_id", "window_s")
    SOUND_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    sound_id: str
    window_s: float
    def __init__(self, sound_id: _Optional[str] = ..., window_s: _Optional[float] = ...) -> None: ...

class Sound(_message.Message):
    __slots__ = ("sound_id", "created_at", "first_video_id", "video_count", "recent_video_count", "window_s", "recent_video_ids")
    SOUND_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FIRST_VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECENT_VIDEO_COUNT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    RECENT_VIDEO_IDS_FIELD_NUMBER: _ClassVar[int]
    sound_id: str
    created_at: str
    first_video_id: str
    video_count: int
    recent_video_count: int
    window_s: float
    recent_video_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sound_id: _Optional[str] = ..., created_at: _Optional[str] = ..., first_video_id: _Optional[str] = ..., video_count: _Optional[int] = ..., recent_video_count: _Optional[int] = ..., window_s: _Optional[float] = ..., recent_video_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListSoundsRequest(_message.Message):
    __slots__ = ("window_s", "limit")
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    window_s: float
    limit: int
    def __init__(self, window_s: _Optional[float] = ..., limit: _Optional[int] = ...) -> None: ...

class ListSoundsResponse(_message.Message):
    __slots__ = ("sounds",)
    SOUNDS_FIELD_NUMBER: _ClassVar[int]
    sounds: _containers.RepeatedCompositeFieldContainer[Sound]
    def __init__(self, sounds: _Optional[_Iterable[_Union[Sound, _Mapping]]] = ...) -> None: ...

class EngagementEvent(_message.Message):
    __slots__ = ("event_id", "video_id", "impressions", "plays", "completions", "watch_time_s", "likes", "comments", "shares", "follows", "at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    PLAYS_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    WATCH_TIME_S_FIELD_NUMBER: _ClassVar[int]
    LIKES_FIELD_NUMBER: _ClassVar[int]
    COMMENTS_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    FOLLOWS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    video_id: str
    impressions: int
    plays: int
    completions: int
    watch_time_s: float
    likes: int
    comments: int
    shares: int
    follows: int
    at: str
    def __init__(self, event_id: _Optional[str] = ..., video_id: _Optional[str] = ..., impressions: _Optional[int] = ..., plays: _Optional[int] = ..., completions: _Optional[int] = ..., watch_time_s: _Optional[float] = ..., likes: _Optional[int] = ..., comments: _Optional[int] = ..., shares: _Optional[int] = ..., follows: _Optional[int] = ..., at: _Optional[str] = ...) -> None: ...

class EngagementRejection(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RecordEngagementResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "rejected", "pool_size", "pool_threshold")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    POOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    POOL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    rejected: _containers.RepeatedCompositeFieldContainer[EngagementRejection]
    pool_size: int
    pool_threshold: float
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[EngagementRejection, _Mapping]]] = ..., pool_size: _Optional[int] = ..., pool_threshold: _Optional[float] = ...) -> None: ...

class RouteWeights(_message.Message):
    __slots__ = ("visual", "spoken", "caption", "sound")
    VISUAL_FIELD_NUMBER: _ClassVar[int]
    SPOKEN_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    SOUND_FIELD_NUMBER: _ClassVar[int]
    visual: float
    spoken: float
    caption: float
    sound: float
    def __init__(self, visual: _Optional[float] = ..., spoken: _Optional[float] = ..., caption: _Optional[float] = ..., sound: _Optional[float] = ...) -> None: ...

class RouteQuery(_message.Message):
    __slots__ = ("video_id", "upload", "k", "weights", "exclude_same_creator", "language", "max_per_creator", "max_per_sound", "store", "fusion")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SAME_CREATOR_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_CREATOR_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SOUND_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    upload: VideoMetadata
    k: int
    weights: RouteWeights
    exclude_same_creator: bool
    language: str
    max_per_creator: int
    max_per_sound: int
    store: bool
    fusion: str
    def __init__(self, video_id: _Optional[str] = ..., upload: _Optional[_Union[VideoMetadata, _Mapping]] = ..., k: _Optional[int] = ..., weights: _Optional[_Union[RouteWeights, _Mapping]] = ..., exclude_same_creator: bool = ..., language: _Optional[str] = ..., max_per_creator: _Optional[int] = ..., max_per_sound: _Optional[int] = ..., store: bool = ..., fusion: _Optional[str] = ...) -> None: ...

class RouteRequest(_message.Message):
    __slots__ = ("query", "chunk")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    query: RouteQuery
    chunk: bytes
    def __init__(self, query: _Optional[_Union[RouteQuery, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ModalityScores(_message.Message):
    __slots__ = ("visual", "spoken", "caption", "sound")
    VISUAL_FIELD_NUMBER: _ClassVar[int]
    SPOKEN_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    SOUND_FIELD_NUMBER: _ClassVar[int]
    visual: float
    spoken: float
    caption: float
    sound: float
    def __init__(self, visual: _Optional[float] = ..., spoken: _Optional[float] = ..., caption: _Optional[float] = ..., sound: _Optional[float] = ...) -> None: ...

class RoutedNeighbour(_message.Message):
    __slots__ = ("video_id", "creator_id", "sound_id", "score", "contributions", "similarities", "performance", "shared_sound_id")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ID_FIELD_NUMBER: _ClassVar[int]
    SOUND_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    SIMILARITIES_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_FIELD_NUMBER: _ClassVar[int]
    SHARED_SOUND_ID_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    creator_id: str
    sound_id: str
    score: float
    contributions: ModalityScores
    similarities: ModalityScores
    performance: float
    shared_sound_id: str
    def __init__(self, video_id: _Optional[str] = ..., creator_id: _Optional[str] = ..., sound_id: _Optional[str] = ..., score: _Optional[float] = ..., contributions: _Optional[_Union[ModalityScores, _Mapping]] = ..., similarities: _Optional[_Union[ModalityScores, _Mapping]] = ..., performance: _Optional[float] = ..., shared_sound_id: _Optional[str] = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("neighbours", "prior", "prior_uncertainty", "weights", "pool_size", "ingested", "content_prior", "weights_basis", "weights_reason")
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_FIELD_NUMBER: _ClassVar[int]
    PRIOR_UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    POOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    INGESTED_FIELD_NUMBER: _ClassVar[int]
    CONTENT_PRIOR_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_BASIS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_REASON_FIELD_NUMBER: _ClassVar[int]
    neighbours: _containers.RepeatedCompositeFieldContainer[RoutedNeighbour]
    prior: float
    prior_uncertainty: float
    weights: ModalityScores
    pool_size: int
    ingested: IngestResponse
    content_prior: ContentPrior
    weights_basis: str
    weights_reason: str
    def __init__(self, neighbours: _Optional[_Iterable[_Union[RoutedNeighbour, _Mapping]]] = ..., prior: _Optional[float] = ..., prior_uncertainty: _Optional[float] = ..., weights: _Optional[_Union[ModalityScores, _Mapping]] = ..., pool_size: _Optional[int] = ..., ingested: _Optional[_Union[IngestResponse, _Mapping]] = ..., content_prior: _Optional[_Union[ContentPrior, _Mapping]] = ..., weights_basis: _Optional[str] = ..., weights_reason: _Optional[str] = ...) -> None: ...
