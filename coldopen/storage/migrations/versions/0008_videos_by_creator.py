"""An index of videos by creator: the content prior finds a creator's own engaged videos (issue 30: the
creator's track record as a signal).

On a large PostgreSQL catalog, create it beforehand without blocking writes
(`CREATE INDEX CONCURRENTLY videos_by_creator ON videos (creator_id, ingested_at)`): this migration
then finds it and does nothing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "videos_by_creator" not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("videos")}:
        op.create_index("videos_by_creator", "videos", ["creator_id", "ingested_at"])


def downgrade() -> None:
    op.drop_index("videos_by_creator", table_name="videos")
