"""A video's skipped frames (issue 33: sampled frames that were near-repeats of the last embedded one).

`videos.frames_skipped`: of the frames sampled from the clip, how many were not embedded (engine/repeats.py);
`frames_sampled` counts the ones embedded. Videos written before it: 0 (their skipped frames were not kept).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("frames_skipped", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("frames_skipped")
