"""Videos in the catalog: a video, its frames, fingerprint, sound links and vectors, written in one
transaction with the change of its vectors; and every read of them (records, profiles, embeddings).

A video's int64 `row_id` is the id its vectors carry; it is kept when the video is re-ingested, and row
ids (like sound ids) are never reused, so an index rebuilt from the catalog maps back to the same video_id."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select, update

from coldopen.domain.media import MediaInfo
from coldopen.domain.sounds import FINGERPRINT_FORMAT, Fingerprint, SoundLink, SoundUse
from coldopen.domain.timing import utc_text
from coldopen.domain.transcripts import Segment, Transcript
from coldopen.domain.videos import Extraction, VideoMetadata, VideoRecord
from coldopen.storage import schema as s
from coldopen.storage.catalog.codecs import (
    blob,
    fingerprint_from_blob,
    frame_vector,
    link_row,
    timings_from_json,
    use_row,
    video_row,
)
from coldopen.storage.catalog.dialect import Dialect
from coldopen.storage.catalog.feed import ChangeFeed
from coldopen.storage.catalog.records import EMBEDDING_COLUMNS, Profile, RowVectors, Written
from coldopen.storage.catalog.sounds import Sounds
from coldopen.storage.database import Database
from coldopen.storage.engagement_log import EngagementLog

_V = s.videos.c
_SUMMARIES = (f"SELECT {_V.row_id.name}, {_V.video_id.name}, {_V.creator_id.name}, {_V.caption.name}, {_V.media.name} "
              f"FROM {s.videos.name} WHERE {_V.row_id.name} IN ")


class Videos:
    def __init__(self, db: Database, dialect: Dialect, feed: ChangeFeed, sounds: Sounds,
                 engagement_log: EngagementLog | None):
        self.db = db
        self._d = dialect
        self._feed = feed
        self._sounds = sounds
        self._engagement_log = engagement_log

    def upsert(
        self,
        meta: VideoMetadata,
        extraction: Extraction,
        embedding: np.ndarray,
        frame_times_s: list[float],
        frame_embeddings: np.ndarray,
        fingerprint: Fingerprint | None = None,
        sound: SoundLink | None = None,
        text_embeddings: dict[str, np.ndarray | None] | None = None,
        ship: bool = False,
        frame_dtype: str = "fp16",
        prior: tuple[float, float, str] | None = None,
        also: Sequence[SoundUse] = (),
    ) -> Written:
        """Insert or atomically replace a video, its frames, its audio fingerprint, its link to its primary
        sound (with the postings the link adds) and to the other sounds it also uses (`also`), and log the
        change of its vectors, all in one transaction.

        A `sound` with sound_id None starts a new sound. `ship`: the change must still reach an external
        vector store (it stays unshipped until mark_shipped). `frame_dtype`: per-frame embeddings are kept as
        fp16 or fp32, or not at all ("none"). `prior`: (prior rate, its weight in impressions, the prior as
        JSON) of the video's content prior, or None.
        """
        now = utc_text()
        text = text_embeddings or {}
        values = video_row(meta, extraction, embedding, fingerprint, text, prior, now)
        v = s.videos.c
        with self.db.write() as conn:
            sound_id = self._sounds.link(conn, sound, meta.video_id, now) if sound is not None else None
            # The existing row, locked (PostgreSQL) so a concurrent re-ingest of this video on another replica waits.
            rowid = conn.execute(select(v.row_id).where(v.video_id == meta.video_id).with_for_update()).scalar()
            replaced = rowid is not None
            if not replaced:
                rowid = self._d.next_id(conn, "video_rows")
                inserted = conn.execute(
                    self._d.insert(s.videos)
                    .values(video_id=meta.video_id, row_id=rowid, sound_id=sound_id, **values)
                    .on_conflict_do_nothing(index_elements=[v.video_id])
                    .returning(v.row_id)
                ).scalar()
                if inserted is None:  # another replica inserted it between our read and insert: replace theirs
                    rowid = conn.execute(select(v.row_id).where(v.video_id == meta.video_id).with_for_update()).scalar_one()
                    replaced = True
            if replaced:
                conn.execute(update(s.videos).where(v.video_id == meta.video_id).values(sound_id=sound_id, **values))
                conn.execute(s.frames.delete().where(s.frames.c.video_id == meta.video_id))
                conn.execute(s.sound_links.delete().where(s.sound_links.c.video_id == meta.video_id))
            links = [link_row(meta.video_id, sound_id, sound)] if sound is not None and sound_id is not None else []
            links += [use_row(meta.video_id, u) for u in also if u.sound_id != sound_id]
            if links:
                conn.execute(s.sound_links.insert(), links)
            if len(frame_times_s) and frame_dtype != "none":
                dtype = np.float16 if frame_dtype == "fp16" else np.float32
                conn.execute(
                    s.frames.insert(),
                    [dict(video_id=meta.video_id, idx=i, t_s=float(t), embedding=blob(e, dtype))
                     for i, (t, e) in enumerate(zip(frame_times_s, frame_embeddings))],
                )
            assert rowid is not None
            change = self._feed.log(conn, int(rowid), meta.video_id, now, shipped=not ship)
        return Written(int(rowid), replaced, sound_id, change)

    def delete(self, video_id: str, ship: bool = False) -> tuple[int, int] | None:
        """Delete a video (its frames and counters go with it) and log the change of its vectors.
        Returns (row id, change seq), or None if it was not stored."""
        v = s.videos.c
        after_commit: list = []
        with self.db.write(after_commit) as conn:
            row = conn.execute(s.videos.delete().where(v.video_id == video_id).returning(v.row_id)).scalar()
            if row is None:
                return None
            if self._engagement_log is not None:
                self._engagement_log.void(conn, video_id, after_commit)
            return int(row), self._feed.log(conn, int(row), video_id, utc_text(), shipped=not ship)

    def get(self, video_id: str, include_embeddings: bool = False) -> VideoRecord | None:
        v, f = s.videos.c, s.frames.c
        with self.db.read() as conn:
            row = conn.execute(
                select(v.video_id, v.creator_id, v.caption, v.hashtags, v.language_hint, v.media, v.frames_sampled,
                       v.frames_skipped, v.sampling, v.embedding_model, v.embedding, v.transcript, v.timings,
                       v.ingested_at, v.sound_id, func.length(v.fingerprint)).where(v.video_id == video_id)
            ).first()
            uses = self._sounds.uses_in(conn, [video_id]).get(video_id, []) if row is not None else []
            frames: Sequence[Any] = []
            if row is not None and include_embeddings:
                frames = conn.execute(select(f.t_s, f.embedding).where(f.video_id == video_id).order_by(f.idx)).all()
        if row is None:
            return None
        (vid, creator, caption, hashtags, hint, media, n_frames, n_skipped, sampling, model, emb, transcript, timings, at,
         sound, fp_len) = row
        t = json.loads(transcript)
        embedding = np.frombuffer(emb, dtype=np.float32).copy()
        stages, waits, batches = timings_from_json(timings)
        extraction = Extraction(
            media=MediaInfo(**json.loads(media)),
            frames_sampled=int(n_frames),
            frames_skipped=int(n_skipped),
            sampling=sampling,
            embedding_model=model,
            embedding_dim=int(embedding.shape[0]),
            transcript=Transcript(
                text=t["text"],
                language=t["language"],
                language_probability=t["language_probability"],
                model=t["model"],
                segments=[Segment(**seg) for seg in t["segments"]],
            ),
            timings_ms=stages,
            queue_wait_ms=waits,
            batch_sizes=batches,
            sound_id=sound,
            landmarks=max(0, ((fp_len or 4) - 4) // 8),
            sounds=tuple(uses),
        )
        record = VideoRecord(
            metadata=VideoMetadata(vid, creator, caption, tuple(json.loads(hashtags)), hint),
            extraction=extraction,
            ingested_at=at,
        )
        if include_embeddings:
            record = dataclasses.replace(
                record,
                embedding=embedding,
                frame_times_s=[float(fr[0]) for fr in frames],
                frame_embeddings=(
                    np.stack([frame_vector(fr[1], embedding.shape[0]) for fr in frames])
                    if frames
                    else np.zeros((0, embedding.shape[0]), dtype=np.float32)
                ),
            )
        return record

    def row_id(self, video_id: str) -> int | None:
        with self.db.read() as conn:
            row = conn.execute(select(s.videos.c.row_id).where(s.videos.c.video_id == video_id)).scalar()
        return None if row is None else int(row)

    def video_ids(self, row_ids: list[int]) -> dict[int, str]:
        """row id -> video id."""
        v = s.videos.c
        with self.db.read() as conn:
            rows = conn.execute(select(v.row_id, v.video_id).where(v.row_id.in_([int(i) for i in row_ids]))).all()
        return {int(r): str(vid) for r, vid in rows}

    def creators(self, row_ids: list[int]) -> dict[int, str]:
        """row id -> creator id."""
        v = s.videos.c
        with self.db.read() as conn:
            rows = conn.execute(select(v.row_id, v.creator_id).where(v.row_id.in_([int(i) for i in row_ids]))).all()
        return {int(r): str(c) for r, c in rows}

    def by_creators(self, creators: list[str], limit: int) -> dict[str, list[int]]:
        """Each creator's rows, the `limit` most recently ingested (index videos_by_creator)."""
        v = s.videos.c
        out: dict[str, list[int]] = {}
        with self.db.read() as conn:
            for creator in creators:
                rows = conn.execute(select(v.row_id).where(v.creator_id == creator)
                                    .order_by(v.ingested_at.desc()).limit(limit)).scalars()
                out[creator] = [int(r) for r in rows]
        return out

    def summaries(self, row_ids: list[int]) -> dict[int, tuple[str, str, str, float]]:
        """row id -> (video_id, creator_id, caption, duration_s) for search results."""
        if not row_ids:
            return {}
        # On every search's path: a driver-level statement, because building and compiling the SQLAlchemy
        # select (an expanding IN) cost 0.2 of its 0.3 ms on SQLite (benchmarks/search.py, per-layer latency).
        with self.db.read() as conn:
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            rows = conn.exec_driver_sql(_SUMMARIES + f"({', '.join([mark] * len(row_ids))})",
                                        tuple(int(i) for i in row_ids)).all()
        return {int(r[0]): (r[1], r[2], r[3], float(json.loads(r[4])["duration_s"])) for r in rows}

    def profiles(self, row_ids: list[int], vectors: bool = True) -> list[Profile]:
        """What routing needs to know about each existing row: embeddings, creator, sound, language.
        `vectors=False`: without the embeddings (None), for a caller that holds them in memory already."""
        v = s.videos.c
        blobs = (v.embedding, v.caption_embedding, v.transcript_embedding) if vectors else ()
        out = []
        for i in range(0, len(row_ids), 10_000):
            part = [int(r) for r in row_ids[i : i + 10_000]]
            with self.db.read() as conn:
                rows = conn.execute(
                    select(v.row_id, v.video_id, v.creator_id, v.sound_id, v.language, *blobs).where(v.row_id.in_(part))
                ).all()
            out += [
                Profile(
                    row=int(r[0]), video_id=r[1], creator_id=r[2], sound_id=r[3], language=r[4] or "",
                    visual=np.frombuffer(r[5], dtype=np.float32) if vectors else None,
                    caption=np.frombuffer(r[6], dtype=np.float32) if vectors and r[6] is not None else None,
                    spoken=np.frombuffer(r[7], dtype=np.float32) if vectors and r[7] is not None else None,
                )
                for r in rows
            ]
        return out

    def embedding(self, video_id: str, modality: str = "visual") -> np.ndarray | None:
        """A video's embedding of one modality; None for an unknown video or one without that content."""
        column = s.videos.c[EMBEDDING_COLUMNS[modality]]
        with self.db.read() as conn:
            blob = conn.execute(select(column).where(s.videos.c.video_id == video_id)).scalar()
        return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()

    def iter_embeddings(self, modality: str = "visual", batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (row ids, embeddings) of one modality in batches, for rebuilding its index."""
        v = s.videos.c
        column = v[EMBEDDING_COLUMNS[modality]]
        last = 0
        while True:
            with self.db.read() as conn:
                rows = conn.execute(
                    select(v.row_id, column).where(and_(v.row_id > last, column.is_not(None))).order_by(v.row_id).limit(batch)
                ).all()
            if not rows:
                return
            yield np.array([r[0] for r in rows], dtype=np.int64), np.stack([np.frombuffer(r[1], np.float32) for r in rows])
            last = int(rows[-1][0])

    def vectors(self, row_ids: list[int]) -> dict[int, RowVectors]:
        """The current vectors (None where the video has none) and filter attributes of the rows that exist."""
        v = s.videos.c
        out: dict[int, RowVectors] = {}
        for i in range(0, len(row_ids), 10_000):
            part = [int(r) for r in row_ids[i : i + 10_000]]
            with self.db.read() as conn:
                rows = conn.execute(
                    select(v.row_id, v.creator_id, v.language, v.sound_id, s.pool_members.c.row_id,
                           *(v[col] for col in EMBEDDING_COLUMNS.values()))
                    .select_from(s.videos.outerjoin(s.pool_members, s.pool_members.c.row_id == v.row_id))
                    .where(v.row_id.in_(part))
                ).all()
            for r in rows:
                out[int(r[0])] = RowVectors(
                    {m: (np.frombuffer(b, np.float32) if b is not None else None) for m, b in zip(EMBEDDING_COLUMNS, r[5:])},
                    {"creator": r[1], "language": r[2], "sound": r[3] or 0, "in_pool": r[4] is not None},
                )
        return out

    def fingerprint(self, video_id: str) -> tuple[int, Fingerprint | None] | None:
        """(row id, stored fingerprint or None when the clip had no audio), or None for an unknown video."""
        v = s.videos.c
        with self.db.read() as conn:
            row = conn.execute(select(v.row_id, v.fingerprint).where(v.video_id == video_id)).first()
        if row is None:
            return None
        return int(row[0]), (fingerprint_from_blob(row[1]) if row[1] is not None else None)

    def retire_old_fingerprints(self) -> int:
        """Fingerprints of an older hash format cannot be matched by this one: drop them (their videos keep
        their sound ids; re-ingesting a video fingerprints it again). Returns how many were dropped."""
        with self.db.write() as conn:
            if self._d.meta(conn, "fingerprint_format") == FINGERPRINT_FORMAT:
                return 0
            n = conn.execute(update(s.videos).where(s.videos.c.fingerprint.is_not(None)).values(fingerprint=None)).rowcount
            self._d.set_meta(conn, "fingerprint_format", FINGERPRINT_FORMAT)
            return n
