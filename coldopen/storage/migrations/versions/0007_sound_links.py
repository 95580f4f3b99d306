"""Every sound a video uses, with where it meets the video (issue 28: one answer per video, whichever RPC asks).

A video used to carry one link to one sound in three columns of `videos` (sound_offset, sound_first,
sound_last). A clip can reuse two sounds (a song under a famous speech), and each RPC answered "who else
uses this sound" its own way. `sound_links` holds every link: the primary one (the sound that covers
most of the clip; `videos.sound_id` names it) and the others the clip also matched, each with its offset,
its time scale, its span on the sound's timeline and the evidence it rests on. Existing links are copied
as primary links (their evidence unknown: 0 matched frames, confidence 1); the old columns are dropped.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sound_links",
        sa.Column("video_id", sa.String(256), sa.ForeignKey("videos.video_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sound_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("sound_offset", sa.Integer(), nullable=False),
        sa.Column("scale", sa.Float(), nullable=False, server_default="1"),
        sa.Column("first_frame", sa.Integer(), nullable=False),
        sa.Column("last_frame", sa.Integer(), nullable=False),
        sa.Column("matched_frames", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("confidence", sa.Float(), nullable=False, server_default="1"),
    )
    op.create_index("sound_links_by_sound", "sound_links", ["sound_id", "first_frame"])
    op.execute(
        "INSERT INTO sound_links (video_id, sound_id, is_primary, sound_offset, scale, first_frame, last_frame, "
        "matched_frames, confidence) SELECT video_id, sound_id, true, coalesce(sound_offset, 0), 1.0, "
        "coalesce(sound_first, 0), coalesce(sound_last, 0), 0, 1.0 FROM videos WHERE sound_id IS NOT NULL"
    )
    for column in ("sound_offset", "sound_first", "sound_last"):
        op.drop_column("videos", column)


def downgrade() -> None:
    for column in ("sound_offset", "sound_first", "sound_last"):
        op.add_column("videos", sa.Column(column, sa.Integer(), nullable=True))
    op.execute(
        "UPDATE videos SET sound_offset = (SELECT sound_offset FROM sound_links l WHERE l.video_id = videos.video_id "
        "AND l.is_primary), sound_first = (SELECT first_frame FROM sound_links l WHERE l.video_id = videos.video_id "
        "AND l.is_primary), sound_last = (SELECT last_frame FROM sound_links l WHERE l.video_id = videos.video_id "
        "AND l.is_primary)"
    )
    op.drop_table("sound_links")
