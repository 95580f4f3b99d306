"""Covering indexes for what a start reads for every engaged video and every pool member.

At 10^6 videos a start joined engagement to videos (for row ids) and read the pool members' creator,
sound and language from the table itself: each row a random read through a ~6 KB record (the
embeddings live in it), 7 s and 4 s on the development VM. These two indexes answer both from the
index alone; `videos_profile` also serves every lookup by row id, so it replaces `videos_by_row`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("videos_key", "videos", ["video_id", "row_id"])
    op.create_index("videos_profile", "videos", ["row_id", "video_id", "creator_id", "sound_id", "language"])
    op.drop_index("videos_by_row", table_name="videos")


def downgrade() -> None:
    op.create_index("videos_by_row", "videos", ["row_id"])
    op.drop_index("videos_profile", table_name="videos")
    op.drop_index("videos_key", table_name="videos")
