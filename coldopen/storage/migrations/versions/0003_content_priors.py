"""Content priors stored with each video (issue 15: the cold-start loop).

`prior_rate` and `prior_weight` are what a video's performance score smooths toward, and how many
impressions that counts as; `content_prior` is the whole prior (mean, interval, neighbours) as JSON.
`videos_key` now covers the first two, so an engagement batch and the score book's start read them
from the index alone, as they read row ids.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("prior_rate", sa.Float(), nullable=True))
    op.add_column("videos", sa.Column("prior_weight", sa.Float(), nullable=True))
    op.add_column("videos", sa.Column("content_prior", sa.Text(), nullable=True))
    op.drop_index("videos_key", table_name="videos")
    op.create_index("videos_key", "videos", ["video_id", "row_id", "prior_rate", "prior_weight"])


def downgrade() -> None:
    op.drop_index("videos_key", table_name="videos")
    op.create_index("videos_key", "videos", ["video_id", "row_id"])
    op.drop_column("videos", "content_prior")
    op.drop_column("videos", "prior_weight")
    op.drop_column("videos", "prior_rate")
