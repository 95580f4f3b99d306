"""The catalog's tables, one schema for SQLite (the embedded default) and PostgreSQL (scale-out).

Keys are chosen so the tables can be distributed with Citus: every primary key starts with the table's
distribution column, and tables that are joined share it (videos, frames and engagement by `video_id`;
sound_chunks by `seq`; sounds by `id`; engagement_events by `event_id`; meta is a reference table).
So the int64 `row_id` the vector indexes use is not a key: it comes from a sequence (PostgreSQL) or the
`id_counters` table (SQLite), which never reuse a value, and it is indexed for lookups by row.

Alembic migrations (storage/migrations/versions) create these tables; a test checks that the
migrated database and this module agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

# PostgreSQL sequences (SQLite uses id_counters rows of the same names).
VIDEO_ROWS = Sequence("video_rows", metadata=metadata)
SOUND_IDS = Sequence("sound_ids", metadata=metadata)

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# SQLite only: the last value handed out per id space ('video_rows', 'sound_ids'); values are never reused.
id_counters = Table(
    "id_counters", metadata,
    Column("name", String(32), primary_key=True),
    Column("last", BigInteger, nullable=False),
)

videos = Table(
    "videos", metadata,
    Column("video_id", String(256), primary_key=True),
    Column("row_id", BigInteger, nullable=False),     # the vector indexes' id; stable across re-ingests
    Column("creator_id", Text, nullable=False),
    Column("caption", Text, nullable=False),
    Column("hashtags", Text, nullable=False),      # JSON list
    Column("language_hint", Text, nullable=False),
    Column("language", Text, nullable=False),      # detected by Whisper ('' without speech)
    Column("media", Text, nullable=False),         # JSON MediaInfo
    Column("frames_sampled", Integer, nullable=False),  # frames embedded
    Column("frames_skipped", Integer, nullable=False, server_default="0"),  # sampled, not embedded: near-repeats
    Column("sampling", Text, nullable=False, server_default=""),  # uniform | keyframes | ... ('' before 0010)
    Column("embedding_model", Text, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    Column("transcript", Text, nullable=False),    # JSON Transcript
    Column("timings", Text, nullable=False),       # JSON stage -> ms
    Column("ingested_at", String(32), nullable=False),  # UTC ISO text: sorts as time
    Column("sound_id", BigInteger),                # its primary sound (sound_links has every sound it uses)
    Column("fingerprint", LargeBinary),            # index side only (coldopen/models/fingerprint.py)
    Column("caption_embedding", LargeBinary),      # caption + hashtags; NULL when both are empty
    Column("transcript_embedding", LargeBinary),   # NULL without speech
    # The content prior computed when it was stored (ranking/coldstart/): its mean rate and its weight in
    # impressions (the score smooths toward it), and the whole prior as JSON for GetVideo. NULL: none.
    Column("prior_rate", Float),
    Column("prior_weight", Float),
    Column("content_prior", Text),
    Index("videos_key", "video_id", "row_id", "prior_rate", "prior_weight"),  # covering: engagement -> rows, priors
    Index("videos_profile", "row_id", "video_id", "creator_id", "sound_id", "language"),  # covering: pool profiles
    Index("videos_by_sound", "sound_id", "ingested_at"),
    Index("videos_by_creator", "creator_id", "ingested_at"),  # the content prior's creator signal
)

frames = Table(
    "frames", metadata,
    Column("video_id", String(256), ForeignKey("videos.video_id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("t_s", Float, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
)

engagement_events = Table(
    "engagement_events", metadata,
    # Idempotency: an event id is counted once, even after its video is deleted.
    Column("event_id", String(256), primary_key=True),
    Column("video_id", String(256), nullable=False),
    Column("at", String(32), nullable=False),
)

engagement = Table(
    "engagement", metadata,
    Column("video_id", String(256), ForeignKey("videos.video_id", ondelete="CASCADE"), primary_key=True),
    Column("impressions", BigInteger, nullable=False, server_default="0"),
    Column("plays", BigInteger, nullable=False, server_default="0"),
    Column("completions", BigInteger, nullable=False, server_default="0"),
    Column("watch_time_s", Float, nullable=False, server_default="0"),
    Column("likes", BigInteger, nullable=False, server_default="0"),
    Column("comments", BigInteger, nullable=False, server_default="0"),
    Column("shares", BigInteger, nullable=False, server_default="0"),
    Column("follows", BigInteger, nullable=False, server_default="0"),
    Column("last_event_at", String(32), nullable=False, server_default=""),
    # SQLite: the engagement log's fold generation that last added to this row (storage/engagement_log.py)
    Column("fold_gen", BigInteger, nullable=True),
)

# SQLite only: engagement batches' per-video counter deltas, appended by each batch and folded into
# `engagement` in the background (storage/engagement_log.py). `deltas` is JSON: a list of
# [video_id, impressions, plays, completions, watch_time_s, likes, comments, shares, follows, last_event_at],
# or [video_id, null] where the video was deleted (its earlier deltas are void).
engagement_log = Table(
    "engagement_log", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("deltas", Text, nullable=False),
)

sounds = Table(
    "sounds", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # never reused: valid after its videos go
    Column("created_at", String(32), nullable=False),
    Column("first_video", String(256), nullable=False),
    Column("first_frame", Integer),
    Column("last_frame", Integer),
    Column("postings", BigInteger, nullable=False, server_default="0"),
)

# Every sound a video uses (sounds/identity.py decides them): the primary one, which `videos.sound_id`
# names (the sound covering most of the clip), and any other it also matched (a song under a famous speech).
# A sound frame is round(video frame x scale) + sound_offset (scale: how much faster the video plays it, pitch:
# how much higher); [first_frame, last_frame] is the stretch of the
# sound's timeline the video covers; matched_frames and confidence are the evidence the link rests on (the
# video that started a sound: its own anchor frames, confidence 1). Distributed by video_id, as `videos`.
sound_links = Table(
    "sound_links", metadata,
    Column("video_id", String(256), ForeignKey("videos.video_id", ondelete="CASCADE"), primary_key=True),
    Column("sound_id", BigInteger, primary_key=True, autoincrement=False),
    Column("is_primary", Boolean, nullable=False),
    Column("sound_offset", Integer, nullable=False),
    Column("scale", Float, nullable=False, server_default="1"),
    Column("first_frame", Integer, nullable=False),
    Column("last_frame", Integer, nullable=False),
    Column("matched_frames", Integer, nullable=False, server_default="0"),
    Column("confidence", Float, nullable=False, server_default="1"),
    Column("pitch", Float, nullable=False, server_default="1"),  # the video's frequencies: the sound's x pitch
    Index("sound_links_by_sound", "sound_id", "first_frame"),
)

# The sound postings, as written: one row per link write (a new sound, or the part of a known sound a clip
# covered first), its index-side hashes and their frames on the sound's timeline packed as little-endian
# uint32 and int32 arrays. Lookups do not read this table: each node follows it (`seq`, or `txid` on
# PostgreSQL as for the change feed below) into hash-addressed segments of its own
# (sounds/postings.py), whose lookup cost does not grow with the corpus.
sound_chunks = Table(
    "sound_chunks", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("txid", BigInteger, nullable=False),
    Column("sound", BigInteger, nullable=False),
    Column("hashes", LargeBinary, nullable=False),
    Column("times", LargeBinary, nullable=False),
    Index("sound_chunks_by_txid", "txid"),
    Index("sound_chunks_by_sound", "sound"),
)

# The change feed: one row per committed write of a video's vectors (ingest, re-ingest, delete), written in
# the write's own transaction. Replicas with in-process indexes follow it to see each other's writes, and it
# is the outbox for an external vector store: `shipped` turns true once the write reached it, and rows left
# unshipped by a crash are shipped by any replica (storage/feed.py). `txid` (PostgreSQL's
# pg_current_xact_id) lets a follower read without gaps although sequence values commit out of order.
vector_changes = Table(
    "vector_changes", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("txid", BigInteger, nullable=False),
    Column("row_id", BigInteger, nullable=False),
    Column("video_id", String(256), nullable=False),
    Column("at", String(32), nullable=False),
    Column("shipped", Boolean, nullable=False, server_default=false()),
    Index("vector_changes_by_txid", "txid"),
    Index("vector_changes_unshipped", "shipped", "seq"),
    Index("vector_changes_by_row", "row_id", "seq"),
)

# The published performs-well pool (ranking/pool/): its members and their scores; the prior, the threshold
# and the version live in meta under 'pool'. Small (the top percentile of engaged videos): a reference table
# under Citus.
pool_members = Table(
    "pool_members", metadata,
    Column("row_id", BigInteger, primary_key=True, autoincrement=False),
    Column("score", Float, nullable=False),
)
