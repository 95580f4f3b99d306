"""Sound postings as packed chunks (issue 11: a sound lookup whose cost does not grow with the corpus).

`sound_postings` held one row per posting, keyed by hash, and was both the store of record and the lookup
path; its B-tree seeks grow with the corpus (benchmarks/RESULTS.md, "2026-12-02, before the change"). Postings are now
kept as one row per link write with the hashes and frames packed (8 B a posting instead of ~18), and each
node looks them up in hash-addressed segments of its own that follow this table (sounds/postings.py).
The upgrade packs each sound's existing postings into one chunk, sound by sound, then drops the old table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 1_000  # sounds per pass over the old table


def upgrade() -> None:
    op.create_table(
        "sound_chunks",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("sound", sa.BigInteger(), nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.Column("times", sa.LargeBinary(), nullable=False),
    )
    op.create_index("sound_chunks_by_txid", "sound_chunks", ["txid"])
    op.create_index("sound_chunks_by_sound", "sound_chunks", ["sound"])
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    chunks = sa.table("sound_chunks", sa.column("txid"), sa.column("sound"), sa.column("hashes"), sa.column("times"))
    txid = 0 if sqlite else conn.exec_driver_sql("SELECT pg_current_xact_id()::text::bigint").scalar_one()
    sounds = [r[0] for r in conn.exec_driver_sql("SELECT id FROM sounds ORDER BY id")]
    for i in range(0, len(sounds), _BATCH):
        part = sounds[i : i + _BATCH]
        rows = conn.execute(
            sa.text("SELECT sound, hash, t FROM sound_postings WHERE sound >= :lo AND sound <= :hi"),
            {"lo": part[0], "hi": part[-1]},
        ).all()
        if not rows:
            continue
        post = np.array(rows, dtype=np.int64)
        post = post[np.lexsort((post[:, 2], post[:, 0]))]
        starts = np.flatnonzero(np.r_[True, post[1:, 0] != post[:-1, 0]])
        values = []
        for a, b in zip(starts, np.r_[starts[1:], len(post)]):
            values.append({
                "txid": txid, "sound": int(post[a, 0]),
                "hashes": post[a:b, 1].astype(np.int32).view(np.uint32).astype("<u4").tobytes(),
                "times": post[a:b, 2].astype("<i4").tobytes(),
            })
        conn.execute(chunks.insert(), values)
    op.drop_table("sound_postings")


def downgrade() -> None:
    op.create_table(
        "sound_postings",
        sa.Column("hash", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("sound", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("t", sa.Integer(), primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    conn = op.get_bind()
    postings = sa.table("sound_postings", sa.column("hash"), sa.column("sound"), sa.column("t"))
    for sound, hashes, times in conn.execute(sa.text("SELECT sound, hashes, times FROM sound_chunks ORDER BY seq")):
        h = np.frombuffer(hashes, "<u4").view(np.int32).tolist()
        t = np.frombuffer(times, "<i4").tolist()
        if h:
            conn.execute(postings.insert().prefix_with("OR IGNORE" if conn.dialect.name == "sqlite" else ""),
                         [{"hash": a, "sound": sound, "t": b} for a, b in zip(h, t)])
    op.drop_table("sound_chunks")
