"""The catalog schema for SQLite and PostgreSQL, keyed for Citus; imports a store made before Alembic.

Stores written before this revision (SQLite only: `videos` keyed by an AUTOINCREMENT `id`) are copied
into the new tables in the same transaction: the integer id becomes `row_id` (so vector ids and sound
ids do not change) and the id counters continue where SQLite's sequence stopped.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LEGACY = ("meta", "videos", "frames", "engagement_events", "engagement", "sounds", "sound_postings")

# Columns that pre-Alembic stores gained over time (their own start-up added them when missing).
LEGACY_COLUMNS = {
    "videos": (
        ("sound_id", "INTEGER"),
        ("fingerprint", "BLOB"),
        ("caption_embedding", "BLOB"),
        ("transcript_embedding", "BLOB"),
        ("sound_offset", "INTEGER"),
        ("sound_first", "INTEGER"),
        ("sound_last", "INTEGER"),
    ),
    "sounds": (("first_frame", "INTEGER"), ("last_frame", "INTEGER"), ("postings", "INTEGER NOT NULL DEFAULT 0")),
}


def upgrade() -> None:
    bind = op.get_bind()
    legacy = (
        bind.dialect.name == "sqlite"
        and sa.inspect(bind).has_table("videos")
        and "id" in {c["name"] for c in sa.inspect(bind).get_columns("videos")}
    )
    if legacy:
        for table in LEGACY:
            if sa.inspect(bind).has_table(table):
                op.execute(f"ALTER TABLE {table} RENAME TO legacy_{table}")
        for table, columns in LEGACY_COLUMNS.items():
            have = {c["name"] for c in sa.inspect(bind).get_columns(f"legacy_{table}")}
            for name, kind in columns:
                if name not in have:
                    op.execute(f"ALTER TABLE legacy_{table} ADD COLUMN {name} {kind}")
        op.execute("DROP INDEX IF EXISTS videos_by_sound")
    _create()
    if legacy:
        _copy_legacy(bind)


def _create() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.schema.CreateSequence(sa.Sequence("video_rows")))
        op.execute(sa.schema.CreateSequence(sa.Sequence("sound_ids")))
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "id_counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("last", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "videos",
        sa.Column("video_id", sa.String(256), primary_key=True),
        sa.Column("row_id", sa.BigInteger, nullable=False),
        sa.Column("creator_id", sa.Text, nullable=False),
        sa.Column("caption", sa.Text, nullable=False),
        sa.Column("hashtags", sa.Text, nullable=False),
        sa.Column("language_hint", sa.Text, nullable=False),
        sa.Column("language", sa.Text, nullable=False),
        sa.Column("media", sa.Text, nullable=False),
        sa.Column("frames_sampled", sa.Integer, nullable=False),
        sa.Column("embedding_model", sa.Text, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("transcript", sa.Text, nullable=False),
        sa.Column("timings", sa.Text, nullable=False),
        sa.Column("ingested_at", sa.String(32), nullable=False),
        sa.Column("sound_id", sa.BigInteger),
        sa.Column("sound_offset", sa.Integer),
        sa.Column("sound_first", sa.Integer),
        sa.Column("sound_last", sa.Integer),
        sa.Column("fingerprint", sa.LargeBinary),
        sa.Column("caption_embedding", sa.LargeBinary),
        sa.Column("transcript_embedding", sa.LargeBinary),
    )
    op.create_index("videos_by_row", "videos", ["row_id"])
    op.create_index("videos_by_sound", "videos", ["sound_id", "ingested_at"])
    op.create_table(
        "frames",
        sa.Column("video_id", sa.String(256), sa.ForeignKey("videos.video_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("t_s", sa.Float, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "engagement_events",
        sa.Column("event_id", sa.String(256), primary_key=True),
        sa.Column("video_id", sa.String(256), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_table(
        "engagement",
        sa.Column("video_id", sa.String(256), sa.ForeignKey("videos.video_id", ondelete="CASCADE"), primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in ("impressions", "plays", "completions")),
        sa.Column("watch_time_s", sa.Float, nullable=False, server_default="0"),
        *(
            sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
            for name in ("likes", "comments", "shares", "follows")
        ),
        sa.Column("last_event_at", sa.String(32), nullable=False, server_default=""),
    )
    op.create_table(
        "sounds",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("first_video", sa.String(256), nullable=False),
        sa.Column("first_frame", sa.Integer),
        sa.Column("last_frame", sa.Integer),
        sa.Column("postings", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "sound_postings",
        sa.Column("hash", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sound", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("t", sa.Integer, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "vector_changes",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("txid", sa.BigInteger, nullable=False),
        sa.Column("row_id", sa.BigInteger, nullable=False),
        sa.Column("video_id", sa.String(256), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("shipped", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("vector_changes_by_txid", "vector_changes", ["txid"])
    op.create_index("vector_changes_unshipped", "vector_changes", ["shipped", "seq"])
    op.create_index("vector_changes_by_row", "vector_changes", ["row_id", "seq"])
    op.create_table(
        "pool_members",
        sa.Column("row_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("score", sa.Float, nullable=False),
    )


def _copy_legacy(bind) -> None:
    op.execute("INSERT INTO meta (key, value) SELECT key, value FROM legacy_meta")
    op.execute(
        "INSERT INTO videos (video_id, row_id, creator_id, caption, hashtags, language_hint, language, media, "
        "frames_sampled, embedding_model, embedding, transcript, timings, ingested_at, sound_id, sound_offset, "
        "sound_first, sound_last, fingerprint, caption_embedding, transcript_embedding) "
        "SELECT video_id, id, creator_id, caption, hashtags, language_hint, "
        "coalesce(json_extract(transcript, '$.language'), ''), media, frames_sampled, embedding_model, embedding, "
        "transcript, timings, ingested_at, sound_id, sound_offset, sound_first, sound_last, fingerprint, "
        "caption_embedding, transcript_embedding FROM legacy_videos"
    )
    op.execute(
        "INSERT INTO frames (video_id, idx, t_s, embedding) "
        "SELECT v.video_id, f.idx, f.t_s, f.embedding FROM legacy_frames f JOIN legacy_videos v ON v.id = f.video"
    )
    op.execute(
        "INSERT INTO engagement_events (event_id, video_id, at) SELECT event_id, video_id, at FROM legacy_engagement_events"
    )
    op.execute(
        "INSERT INTO engagement (video_id, impressions, plays, completions, watch_time_s, likes, comments, shares, "
        "follows, last_event_at) SELECT v.video_id, e.impressions, e.plays, e.completions, e.watch_time_s, e.likes, "
        "e.comments, e.shares, e.follows, e.last_event_at FROM legacy_engagement e JOIN legacy_videos v ON v.id = e.video"
    )
    op.execute(
        "INSERT INTO sounds (id, created_at, first_video, first_frame, last_frame, postings) "
        "SELECT id, created_at, first_video, first_frame, last_frame, postings FROM legacy_sounds"
    )
    op.execute("INSERT INTO sound_postings (hash, sound, t) SELECT hash, sound, t FROM legacy_sound_postings")
    # AUTOINCREMENT's high-water marks: ids of deleted videos and sounds are never handed out again.
    for counter, table in (("video_rows", "videos"), ("sound_ids", "sounds")):
        op.execute(
            f"INSERT INTO id_counters (name, last) SELECT '{counter}', max(coalesce((SELECT seq FROM sqlite_sequence "
            f"WHERE name = 'legacy_{table}'), 0), coalesce((SELECT max(id) FROM legacy_{table}), 0))"
        )
    for table in ("frames", "engagement", "engagement_events", "sound_postings", "videos", "sounds", "meta"):
        op.execute(f"DROP TABLE IF EXISTS legacy_{table}")  # referencing tables before the ones they reference


def downgrade() -> None:
    raise NotImplementedError("0001 is the first catalog revision; there is nothing older to go back to")
