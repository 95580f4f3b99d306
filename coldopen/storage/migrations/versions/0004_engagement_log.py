"""The engagement log (issue 13: an engagement batch in ≤ 100 ms at 10^6 engaged videos).

On SQLite an engagement batch appends its per-video counter deltas here as one row, and a background
fold adds them to `engagement` later, many batches at once (storage/engagement_log.py). A batch
then writes a few sequential pages instead of a random counter page per video. PostgreSQL, where
replicas share the counters, keeps adding them in the batch's own transaction and leaves this empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engagement_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("deltas", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("engagement_log")
