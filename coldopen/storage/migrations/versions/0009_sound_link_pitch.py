"""A sound link's pitch (issue 31: the reply says how far a re-pitched or sped-up reuse moved the sound).

`sound_links.pitch`: the video's frequencies are the sound's times this factor (1: as is; a sped-up x1.25
reuse: 1.25; a key change up one semitone: 2^(1/12)). Links written before it were found as is or with
their pitch unknown: 1.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sound_links", sa.Column("pitch", sa.Float(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("sound_links") as batch:
        batch.drop_column("pitch")
