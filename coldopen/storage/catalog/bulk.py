"""Bulk loads: many videos, counters or sounds in a few transactions, in the catalog's own row formats
(codecs.py) and id spaces, for benchmarks and imports. What a bulk load writes reads back exactly as
what Ingest and ReportEngagement write: each video's vectors get a change-feed entry (replicas and an
external vector store follow them), each sound's postings a chunk with its transaction's id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import exc

from coldopen.domain.engagement import COUNTER_NAMES, Counters
from coldopen.domain.errors import InvalidInput
from coldopen.domain.timing import utc_text
from coldopen.domain.videos import Extraction, VideoMetadata
from coldopen.storage import schema as s
from coldopen.storage.catalog.codecs import blob, extraction_columns, meta_columns
from coldopen.storage.catalog.dialect import Dialect
from coldopen.storage.database import Database

_FEED_COLUMNS = ("txid", "row_id", "video_id", "at", "shipped")
_COUNTER_COLUMNS = ("video_id", *COUNTER_NAMES, "last_event_at")
_SOUND_COLUMNS = ("id", "created_at", "first_video", "first_frame", "last_frame", "postings")
_CHUNK_COLUMNS = ("txid", "sound", "hashes", "times")


class BulkLoader:
    def __init__(self, db: Database, dialect: Dialect):
        self.db = db
        self._d = dialect

    def videos(
        self,
        metas: Sequence[VideoMetadata],
        extraction: Extraction,
        embeddings: np.ndarray,
        captions: np.ndarray | None = None,
        spoken: np.ndarray | None = None,
        ship: bool = False,
    ) -> list[int]:
        """New videos, one per metadata, that share one extraction (a synthetic corpus) and have their own
        vectors (rows of `embeddings`, and of the caption and spoken-text embeddings where given), in one
        transaction with a change-feed entry each (`ship`: as for `Videos.upsert`). Returns their row ids.
        Ids already stored are refused: re-ingest those to replace them."""
        n = len(metas)
        if embeddings.shape[0] != n or any(m is not None and m.shape[0] != n for m in (captions, spoken)):
            raise InvalidInput(f"a bulk load of {n} videos needs {n} rows of each embedding: pass one row per video")
        now = utc_text()
        shared = extraction_columns(extraction, now)
        columns = ("video_id", "row_id", *meta_columns(VideoMetadata("")), *shared, "embedding", "caption_embedding",
                   "transcript_embedding")
        try:
            with self.db.write() as conn:
                rows = self._d.reserve_ids(conn, "video_rows", n)
                txid = self._d.current_txid(conn)
                self._d.copy_rows(conn, s.videos, columns, (
                    (m.video_id, row, *meta_columns(m).values(), *shared.values(), blob(embeddings[i]),
                     None if captions is None else blob(captions[i]), None if spoken is None else blob(spoken[i]))
                    for i, (m, row) in enumerate(zip(metas, rows))
                ))
                self._d.copy_rows(conn, s.vector_changes, _FEED_COLUMNS,
                                  ((txid, row, m.video_id, now, not ship) for m, row in zip(metas, rows)))
        except exc.IntegrityError as e:
            raise InvalidInput(
                "a bulk load may only add new videos, and some of these ids are stored already (or repeat): "
                "load new ids, or re-ingest a video to replace it"
            ) from e
        return rows

    def counters(self, counters: Iterable[tuple[str, Counters]]) -> int:
        """Engagement counters of videos that have none yet, as they are, in one transaction; how many.
        Events are not recorded (no event id is claimed): these are counters imported whole."""
        values = [(video_id, *(getattr(c, n) for n in COUNTER_NAMES), c.last_event_at) for video_id, c in counters]
        try:
            with self.db.write() as conn:
                self._d.copy_rows(conn, s.engagement, _COUNTER_COLUMNS, values)
        except exc.IntegrityError as e:
            raise InvalidInput(
                "a bulk load of counters may only add videos that are stored and have no counters yet: "
                "report engagement events for the others"
            ) from e
        return len(values)

    def sounds(self, postings: Sequence[tuple[np.ndarray, np.ndarray]], frames: int) -> list[int]:
        """New sounds, one per (index-side hashes, their frames on the sound's timeline), each `frames`
        long and used by no video yet, in one transaction. Returns their ids."""
        now = utc_text()
        with self.db.write() as conn:
            ids = self._d.reserve_ids(conn, "sound_ids", len(postings))
            txid = self._d.current_txid(conn)
            self._d.copy_rows(conn, s.sounds, _SOUND_COLUMNS,
                              ((i, now, "", 0, frames, int(h.size)) for i, (h, _) in zip(ids, postings)))
            self._d.copy_rows(conn, s.sound_chunks, _CHUNK_COLUMNS, (
                (txid, i, np.asarray(h, "<u4").tobytes(), np.asarray(t, "<i4").tobytes()) for i, (h, t) in zip(ids, postings)
            ))
        return ids
