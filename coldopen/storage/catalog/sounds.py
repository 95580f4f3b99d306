"""Sounds in the catalog: sounds and their ids, the postings each link write adds (table sound_chunks,
followed by every node's segments: sounds/postings.py), and every video's uses of sounds (table
sound_links), from which every answer about sharing a sound is read (sounds/sharing.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from sqlalchemy import Connection, case, func, select, update

from coldopen.domain.sounds import Chunk, SoundLink, SoundStats, SoundUse
from coldopen.storage import schema as s
from coldopen.storage.catalog.codecs import USE_COLUMNS, chunk_of, use_of
from coldopen.storage.catalog.dialect import Dialect, appended_after, position
from coldopen.storage.database import Database

_NO_INT = np.zeros(0, np.int64)
_NEW_SOUND_LOCK = 0x_C01D_5001  # pg_advisory_lock key: one new sound at a time across replicas


class Sounds:
    def __init__(self, db: Database, dialect: Dialect):
        self.db = db
        self._d = dialect

    def link(self, conn: Connection, link: SoundLink, video_id: str, now: str) -> int:
        """Create the sound (when new) and add the link's postings; inside the caller's transaction."""
        c = s.sounds.c
        if link.sound_id is None:
            sound_id = self._d.next_id(conn, "sound_ids")
            conn.execute(
                s.sounds.insert().values(
                    id=sound_id, created_at=now, first_video=video_id, first_frame=link.first, last_frame=link.last
                )
            )
        else:
            sound_id = link.sound_id
            conn.execute(
                update(s.sounds)
                .where(c.id == sound_id)
                .values(
                    first_frame=self._d.least(func.coalesce(c.first_frame, link.first), link.first),
                    last_frame=self._d.greatest(func.coalesce(c.last_frame, link.last), link.last),
                )
            )
        if link.hashes.size:
            # One chunk per link write (sounds/postings.py follows them); a posting the link repeats
            # (same hash at the same frame) is kept once.
            pairs = np.unique(np.stack([link.hashes.astype(np.int64), link.times.astype(np.int64)], axis=1), axis=0)
            conn.execute(
                s.sound_chunks.insert().values(
                    txid=self._d.txid(),
                    sound=sound_id,
                    hashes=pairs[:, 0].astype("<u4").tobytes(),
                    times=pairs[:, 1].astype("<i4").tobytes(),
                )
            )
            conn.execute(update(s.sounds).where(c.id == sound_id).values(postings=c.postings + len(pairs)))
        return sound_id

    def chunks_after(self, cursor: int, limit: int = 2_000) -> tuple[list[Chunk], int]:
        """Sound chunks committed since `cursor`, and the cursor after them: read as the change feed is
        (`dialect.appended_after`; the migration that packed the old postings wrote every chunk in one transaction)."""
        c = s.sound_chunks.c
        rows, after = appended_after(self.db, s.sound_chunks, (c.seq, c.sound, c.hashes, c.times), cursor, limit)
        return [chunk_of(r) for r in rows], after

    @contextmanager
    def new_sound_lock(self) -> Iterator[None]:
        """Held by a replica from its last check for a matching sound until its new sound is committed, so
        two replicas never both start a sound for one audio (sounds/identity.py). A session-level
        PostgreSQL advisory lock on a connection of its own; on SQLite the service's write lock suffices."""
        if self.db.is_sqlite:
            yield
            return
        with self.db.read() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_NEW_SOUND_LOCK})")
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_NEW_SOUND_LOCK})")
                conn.commit()

    def recent_postings(self, hashes: np.ndarray, cursor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """PostgreSQL: postings (uint32 hash, sound, frame) of the given hashes in chunks at or after a
        `chunks_after` cursor: committed, but perhaps not yet followed, because an older
        transaction was still open when the follower last read. Empty on SQLite (one writer)."""
        keys = np.unique(hashes.astype(np.uint32))
        if keys.size == 0 or self.db.is_sqlite:
            return _NO_INT, _NO_INT, _NO_INT
        c = s.sound_chunks.c
        with self.db.read() as conn:
            rows = conn.execute(select(c.seq, c.sound, c.hashes, c.times).where(c.txid >= cursor)).all()
        parts = [(ch.hashes, np.full(ch.hashes.size, ch.sound, np.int64), ch.times) for ch in map(chunk_of, rows)]
        if not parts:
            return _NO_INT, _NO_INT, _NO_INT
        h, snd, t = (np.concatenate([p[i] for p in parts]) for i in range(3))
        keep = np.isin(h, keys)
        return h[keep].astype(np.int64), snd[keep], t[keep]

    def extent(self, sound_id: int) -> tuple[int, int] | None:
        """(first, last) anchor frame the sound's postings cover, or None for an unknown sound."""
        c = s.sounds.c
        with self.db.read() as conn:
            row = conn.execute(select(c.first_frame, c.last_frame).where(c.id == sound_id)).first()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def position(self) -> int:
        """A `chunks_after` cursor before every chunk not yet committed."""
        return position(self.db, s.sound_chunks)

    def postings_total(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.coalesce(func.sum(s.sounds.c.postings), 0))).scalar_one())

    def uses(self, video_id: str) -> list[SoundUse]:
        """Every sound a video uses, the primary first (empty without usable audio or for an unknown video)."""
        with self.db.read() as conn:
            return self.uses_in(conn, [video_id]).get(video_id, [])

    def uses_in(self, conn: Connection, video_ids: list[str]) -> dict[str, list[SoundUse]]:
        ln, so = s.sound_links.c, s.sounds.c
        rows = conn.execute(
            select(ln.video_id, *USE_COLUMNS, so.first_video)
            .select_from(s.sound_links.outerjoin(s.sounds, so.id == ln.sound_id))
            .where(ln.video_id.in_(video_ids))
            .order_by(ln.video_id, ln.is_primary.desc(), ln.sound_id)
        ).all()
        out: dict[str, list[SoundUse]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(use_of(r[1:-1], started=r[-1] == r[0]))
        return out

    def sharing(
        self,
        spans: list[tuple[int, int, int]],
        limit: int,
        exclude_video: str | None = None,
        pool_only: bool = False,
    ) -> dict[int, list[tuple[int, str, SoundUse]]]:
        """sound -> [(row, video_id, its use of the sound)] for the videos using each sound over a stretch of
        its timeline that overlaps (first, last), oldest first, at most `limit` per sound. `pool_only`: members
        of the published performs-well pool only."""
        v, ln, so = s.videos.c, s.sound_links.c, s.sounds.c
        out: dict[int, list[tuple[int, str, SoundUse]]] = {}
        with self.db.read() as conn:
            for sound_id, first, last in spans:
                joined = s.sound_links.join(s.videos, v.video_id == ln.video_id).outerjoin(s.sounds, so.id == ln.sound_id)
                if pool_only:
                    joined = joined.join(s.pool_members, s.pool_members.c.row_id == v.row_id)
                query = (
                    select(v.row_id, v.video_id, *USE_COLUMNS, so.first_video)
                    .select_from(joined)
                    .where(ln.sound_id == sound_id, ln.first_frame <= last, ln.last_frame >= first)
                )
                if exclude_video is not None:
                    query = query.where(v.video_id != exclude_video)
                rows = conn.execute(query.order_by(v.ingested_at, v.row_id).limit(limit)).all()
                out[sound_id] = [(int(r[0]), r[1], use_of(r[2:-1], started=r[-1] == r[1])) for r in rows]
        return out

    def stats(self, since: str, sound_id: int | None = None, limit: int = 100) -> list[SoundStats]:
        """Per sound: videos using it, and how many of those were ingested at or after `since` (UTC ISO time)."""
        so, v, ln = s.sounds.c, s.videos.c, s.sound_links.c
        videos = func.count(v.video_id)
        recent = func.coalesce(func.sum(case((v.ingested_at >= since, 1), else_=0)), 0)
        query = (
            select(so.id, so.created_at, so.first_video, videos, recent)
            .select_from(s.sounds.join(s.sound_links, ln.sound_id == so.id).join(s.videos, v.video_id == ln.video_id))
            .group_by(so.id, so.created_at, so.first_video)
            .order_by(recent.desc(), videos.desc(), so.id)
            .limit(limit)
        )
        if sound_id is not None:
            query = query.where(ln.sound_id == sound_id)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [SoundStats(int(r[0]), r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def exists(self, sound_id: int) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(s.sounds.c.id).where(s.sounds.c.id == sound_id)).first() is not None

    def videos_of(self, sound_id: int, limit: int) -> list[str]:
        v, ln = s.videos.c, s.sound_links.c
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(v.video_id)
                    .select_from(s.sound_links.join(s.videos, v.video_id == ln.video_id))
                    .where(ln.sound_id == sound_id)
                    .order_by(v.ingested_at.desc(), v.video_id)
                    .limit(limit)
                ).scalars()
            )
