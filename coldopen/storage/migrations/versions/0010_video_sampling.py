"""How a video's frames were sampled, kept with it (issue 33), so GetVideo says what the ingest reply said.

`videos.frames_skipped`: of the frames sampled from the clip, how many were not embedded (engine/repeats.py);
`frames_sampled` counts the ones embedded. `videos.sampling`: the sampling mode used ("uniform", "keyframes",
"uniform (cpu: ...)" where NVDEC could not take the clip). Videos written before it: 0 and '' (not kept).

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
    op.add_column("videos", sa.Column("sampling", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("sampling")
        batch.drop_column("frames_skipped")
