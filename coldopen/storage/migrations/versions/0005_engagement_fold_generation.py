"""Which fold last changed a video's counters (issue 13: the pool ready within seconds of a start).

The performs-well pool is snapshotted with the fold generation it covers (storage/pool_snapshot.py);
a start loads the snapshot and re-reads only the counters a later fold changed (`fold_gen` greater than
the snapshot's) instead of every engaged video's. Null on PostgreSQL, which does not fold.
No index: the start scans the column once (no Python row per video), and an index would add a random
page write per video to every fold.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("engagement", sa.Column("fold_gen", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engagement") as batch:
        batch.drop_column("fold_gen")
