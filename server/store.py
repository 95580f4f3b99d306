"""Durable storage in SQLite (WAL): video metadata, extraction results, transcripts and per-frame embeddings.

The store is the source of truth. Its integer row id is the int64 id used by the vector index;
a video keeps its row id when it is re-ingested, and ids of deleted videos are never reused
(AUTOINCREMENT), so an index rebuilt from the store maps back to the same video_id forever.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from models.whisper import Segment, Transcript
from server.domain import Extraction, VideoMetadata, VideoRecord
from server.media import MediaInfo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id TEXT NOT NULL UNIQUE,
    creator_id TEXT NOT NULL,
    caption TEXT NOT NULL,
    hashtags TEXT NOT NULL,
    language_hint TEXT NOT NULL,
    media TEXT NOT NULL,
    frames_sampled INTEGER NOT NULL,
    embedding_model TEXT NOT NULL,
    embedding BLOB NOT NULL,
    transcript TEXT NOT NULL,
    timings TEXT NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS frames (
    video INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    t_s REAL NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (video, idx)
);
"""

_VIDEO_COLUMNS = (
    "video_id, creator_id, caption, hashtags, language_hint, media, frames_sampled, "
    "embedding_model, embedding, transcript, timings, ingested_at"
)


class Store:
    def __init__(self, path: Path):
        self.path = path
        # One connection shared by gRPC worker threads, serialised by a lock: writes are
        # rare and short next to model inference, and this keeps transactions simple.
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # an acknowledged ingest survives power loss
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- embedding space -------------------------------------------------
    def embedding_space(self) -> tuple[str, int] | None:
        """(model name, dim) the stored embeddings were made with, or None for an empty store."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'embedding_space'").fetchone()
        if row is None:
            return None
        space = json.loads(row[0])
        return space["model"], int(space["dim"])

    def set_embedding_space(self, model: str, dim: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO meta(key, value) VALUES ('embedding_space', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (json.dumps({"model": model, "dim": dim}),),
            )

    # --- writes -----------------------------------------------------------
    def upsert(
        self,
        meta: VideoMetadata,
        extraction: Extraction,
        embedding: np.ndarray,
        frame_times_s: list[float],
        frame_embeddings: np.ndarray,
    ) -> tuple[int, bool]:
        """Insert or atomically replace a video and its frames. Returns (row id, replaced)."""
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        values = (
            meta.video_id,
            meta.creator_id,
            meta.caption,
            json.dumps(list(meta.hashtags)),
            meta.language_hint,
            json.dumps(dataclasses.asdict(extraction.media)),
            extraction.frames_sampled,
            extraction.embedding_model,
            _blob(embedding),
            json.dumps(dataclasses.asdict(extraction.transcript)),
            json.dumps(extraction.timings_ms),
            now,
        )
        with self._lock, _transaction(self._conn):
            row = self._conn.execute("SELECT id FROM videos WHERE video_id = ?", (meta.video_id,)).fetchone()
            if row is None:
                cur = self._conn.execute(
                    f"INSERT INTO videos ({_VIDEO_COLUMNS}) VALUES ({', '.join('?' * 12)})", values
                )
                rowid, replaced = int(cur.lastrowid), False
            else:
                rowid, replaced = int(row[0]), True
                sets = ", ".join(f"{c.strip()} = ?" for c in _VIDEO_COLUMNS.split(",")[1:])
                self._conn.execute(f"UPDATE videos SET {sets} WHERE id = ?", (*values[1:], rowid))
                self._conn.execute("DELETE FROM frames WHERE video = ?", (rowid,))
            self._conn.executemany(
                "INSERT INTO frames (video, idx, t_s, embedding) VALUES (?, ?, ?, ?)",
                [(rowid, i, float(t), _blob(e)) for i, (t, e) in enumerate(zip(frame_times_s, frame_embeddings))],
            )
        return rowid, replaced

    def delete(self, video_id: str) -> int | None:
        """Delete a video; returns its row id, or None if it was not stored."""
        with self._lock, _transaction(self._conn):
            row = self._conn.execute("SELECT id FROM videos WHERE video_id = ?", (video_id,)).fetchone()
            if row is None:
                return None
            self._conn.execute("DELETE FROM videos WHERE id = ?", (row[0],))
        return int(row[0])

    # --- reads ------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM videos").fetchone()[0])

    def row_id(self, video_id: str) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT id FROM videos WHERE video_id = ?", (video_id,)).fetchone()
        return None if row is None else int(row[0])

    def embedding(self, video_id: str) -> np.ndarray | None:
        with self._lock:
            row = self._conn.execute("SELECT embedding FROM videos WHERE video_id = ?", (video_id,)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def iter_embeddings(self, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (row ids, embeddings) in batches, for rebuilding the index."""
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT id, embedding FROM videos WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
                ).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vecs
            last = int(ids[-1])

    def summaries(self, row_ids: list[int]) -> dict[int, tuple[str, str, str, float]]:
        """row id -> (video_id, creator_id, caption, duration_s) for search results."""
        if not row_ids:
            return {}
        marks = ", ".join("?" * len(row_ids))
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, video_id, creator_id, caption, media FROM videos WHERE id IN ({marks})",
                [int(i) for i in row_ids],
            ).fetchall()
        return {int(r[0]): (r[1], r[2], r[3], float(json.loads(r[4])["duration_s"])) for r in rows}

    def get(self, video_id: str, include_embeddings: bool = False) -> VideoRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT id, {_VIDEO_COLUMNS} FROM videos WHERE video_id = ?", (video_id,)
            ).fetchone()
            frames = []
            if row is not None and include_embeddings:
                frames = self._conn.execute(
                    "SELECT t_s, embedding FROM frames WHERE video = ? ORDER BY idx", (row[0],)
                ).fetchall()
        if row is None:
            return None
        (_, vid, creator, caption, hashtags, hint, media, n_frames, model, emb, transcript, timings, at) = row
        t = json.loads(transcript)
        embedding = np.frombuffer(emb, dtype=np.float32).copy()
        extraction = Extraction(
            media=MediaInfo(**json.loads(media)),
            frames_sampled=int(n_frames),
            embedding_model=model,
            embedding_dim=int(embedding.shape[0]),
            transcript=Transcript(
                text=t["text"],
                language=t["language"],
                language_probability=t["language_probability"],
                model=t["model"],
                segments=[Segment(**s) for s in t["segments"]],
            ),
            timings_ms=json.loads(timings),
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
                frame_times_s=[float(f[0]) for f in frames],
                frame_embeddings=(
                    np.stack([np.frombuffer(f[1], dtype=np.float32) for f in frames])
                    if frames
                    else np.zeros((0, embedding.shape[0]), dtype=np.float32)
                ),
            )
        return record


def _blob(v: np.ndarray) -> bytes:
    return np.ascontiguousarray(v, dtype=np.float32).tobytes()


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (the connection is in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
