"""Durable storage in SQLite (WAL): video metadata, extraction results, transcripts and per-frame embeddings.

The store is the source of truth. Its integer row id is the int64 id used by the vector index;
a video keeps its row id when it is re-ingested, and ids of deleted videos are never reused
(AUTOINCREMENT), so an index rebuilt from the store maps back to the same video_id forever.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from models.whisper import Segment, Transcript
from models.fingerprint import FORMAT as FINGERPRINT_FORMAT, Fingerprint
from server.domain import EngagementEvent, Extraction, SoundStats, VideoMetadata, VideoRecord
from server.engagement import Counters
from server.media import MediaInfo
from server.timing import utc_text

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
    ingested_at TEXT NOT NULL,
    sound_id INTEGER REFERENCES sounds(id),
    fingerprint BLOB,
    caption_embedding BLOB,      -- sentence embedding of caption + hashtags; NULL when both are empty
    transcript_embedding BLOB    -- sentence embedding of the transcript; NULL without speech
);
CREATE TABLE IF NOT EXISTS engagement_events (
    event_id TEXT PRIMARY KEY,   -- idempotency: an event id is counted once, even after its video is deleted
    video_id TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS engagement (
    video INTEGER PRIMARY KEY REFERENCES videos(id) ON DELETE CASCADE,
    impressions INTEGER NOT NULL DEFAULT 0,
    plays INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    watch_time_s REAL NOT NULL DEFAULT 0,
    likes INTEGER NOT NULL DEFAULT 0,
    comments INTEGER NOT NULL DEFAULT 0,
    shares INTEGER NOT NULL DEFAULT 0,
    follows INTEGER NOT NULL DEFAULT 0,
    last_event_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS sounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: a sound id stays valid after its videos go
    created_at TEXT NOT NULL,
    first_video TEXT NOT NULL
);
-- The sound index: one row per index-side landmark hash of each sound, keyed by hash, so a lookup is a
-- batch of key seeks whose cost is set by the query, and nothing is rebuilt at start. Hashes are stored
-- as signed 32-bit values (4 bytes in SQLite's record format). A clip that reuses a known sound adds
-- rows only for the part of it the sound did not cover yet (server/sounds/identity.py).
CREATE TABLE IF NOT EXISTS sound_postings (
    hash INTEGER NOT NULL,
    sound INTEGER NOT NULL,
    t INTEGER NOT NULL,          -- anchor frame on the sound's own timeline
    PRIMARY KEY (hash, sound, t)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS frames (
    video INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    t_s REAL NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (video, idx)
);
"""

# Totals saturate here rather than overflow SQLite's int64 (events are validated to at most max_event_count each).
COUNTER_CAP = 2**62

# Text modality -> column holding its sentence embedding; EMBEDDING_COLUMNS adds the CLIP video embedding.
TEXT_COLUMNS = {"caption": "caption_embedding", "spoken": "transcript_embedding"}
EMBEDDING_COLUMNS = {"visual": "embedding", **TEXT_COLUMNS}


@dataclass(frozen=True)
class Profile:
    row: int
    video_id: str
    creator_id: str
    sound_id: int | None
    language: str
    visual: np.ndarray
    caption: np.ndarray | None
    spoken: np.ndarray | None


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
            self._migrate()
            self._conn.execute("CREATE INDEX IF NOT EXISTS videos_by_sound ON videos(sound_id, ingested_at)")
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()
        self.stale_fingerprints = self._retire_old_fingerprints()

    def _migrate(self) -> None:
        """Add columns that data dirs made by earlier versions lack."""
        for table, columns in (
            ("videos", (
                ("sound_id", "INTEGER REFERENCES sounds(id)"),
                ("fingerprint", "BLOB"),
                ("caption_embedding", "BLOB"),
                ("transcript_embedding", "BLOB"),
                ("sound_offset", "INTEGER"),   # sound frame = video frame + sound_offset
                ("sound_first", "INTEGER"),    # the video's span on the sound's timeline
                ("sound_last", "INTEGER"),
            )),
            ("sounds", (("first_frame", "INTEGER"), ("last_frame", "INTEGER"), ("postings", "INTEGER NOT NULL DEFAULT 0"))),
        ):
            have = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            for column, kind in columns:
                if column not in have:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _retire_old_fingerprints(self) -> int:
        """Fingerprints of an older hash format cannot be matched by this one: drop them (their videos keep
        their sound ids; re-ingesting a video fingerprints it again). Returns how many were dropped."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'fingerprint_format'").fetchone()
            if row is not None and row[0] == FINGERPRINT_FORMAT:
                return 0
            with _transaction(self._conn):
                n = self._conn.execute("UPDATE videos SET fingerprint = NULL WHERE fingerprint IS NOT NULL").rowcount
                self._conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('fingerprint_format', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (FINGERPRINT_FORMAT,),
                )
            return n

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection: lookups run beside the writer (WAL), not behind its lock."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._readers:
                conn.close()
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
        fingerprint: Fingerprint | None = None,
        sound: SoundLink | None = None,
        text_embeddings: dict[str, np.ndarray | None] | None = None,
    ) -> tuple[int, bool, int | None]:
        """Insert or atomically replace a video, its frames, its audio fingerprint and its link to a sound
        (with the postings the link adds), all in one transaction.

        A `sound` with sound_id None starts a new sound. Returns (row id, replaced, sound id).
        """
        now = utc_text()
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
            sound_id = self._link_sound(sound, meta.video_id, now) if sound is not None else None
            text = text_embeddings or {}
            self._conn.execute(
                "UPDATE videos SET sound_id = ?, sound_offset = ?, sound_first = ?, sound_last = ?, fingerprint = ?, "
                "caption_embedding = ?, transcript_embedding = ? WHERE id = ?",
                (
                    sound_id,
                    *((sound.offset, sound.first, sound.last) if sound is not None else (None, None, None)),
                    _fingerprint_blob(fingerprint) if fingerprint is not None and fingerprint.landmarks else None,
                    *(_blob(text[k]) if text.get(k) is not None else None for k in TEXT_COLUMNS),
                    rowid,
                ),
            )
        return rowid, replaced, sound_id

    def _link_sound(self, link: SoundLink, video_id: str, now: str) -> int:
        """Create the sound (when new) and add the link's postings; inside the caller's transaction."""
        if link.sound_id is None:
            sound_id = int(
                self._conn.execute(
                    "INSERT INTO sounds (created_at, first_video, first_frame, last_frame) VALUES (?, ?, ?, ?)",
                    (now, video_id, link.first, link.last),
                ).lastrowid
            )
        else:
            sound_id = link.sound_id
            self._conn.execute(
                "UPDATE sounds SET first_frame = min(coalesce(first_frame, ?), ?), "
                "last_frame = max(coalesce(last_frame, ?), ?) WHERE id = ?",
                (link.first, link.first, link.last, link.last, sound_id),
            )
        if link.hashes.size:
            added = self._conn.executemany(
                "INSERT OR IGNORE INTO sound_postings (hash, sound, t) VALUES (?, ?, ?)",
                zip(link.hashes.astype(np.uint32).view(np.int32).tolist(), itertools.repeat(sound_id),
                    link.times.tolist()),
            ).rowcount
            self._conn.execute("UPDATE sounds SET postings = postings + ? WHERE id = ?", (added, sound_id))
        return sound_id

    def delete(self, video_id: str) -> int | None:
        """Delete a video; returns its row id, or None if it was not stored."""
        with self._lock, _transaction(self._conn):
            row = self._conn.execute("SELECT id FROM videos WHERE video_id = ?", (video_id,)).fetchone()
            if row is None:
                return None
            self._conn.execute("DELETE FROM videos WHERE id = ?", (row[0],))
        return int(row[0])

    # --- engagement -------------------------------------------------------
    def record_engagement(self, events: list[EngagementEvent]) -> tuple[int, int, list[tuple[str, str]]]:
        """Add events' counters in one transaction. Returns (accepted, duplicates, [(event_id, reason)])."""
        accepted, duplicates, rejected = 0, 0, []
        with self._lock, _transaction(self._conn):
            for e in events:
                row = self._conn.execute("SELECT id FROM videos WHERE video_id = ?", (e.video_id,)).fetchone()
                if row is None:
                    rejected.append((e.event_id, f"video {e.video_id!r} is not indexed; ingest it before its engagement"))
                    continue
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO engagement_events (event_id, video_id, at) VALUES (?, ?, ?)",
                    (e.event_id, e.video_id, e.at),
                )
                if cur.rowcount == 0:
                    duplicates += 1
                    continue
                c = e.counters
                self._conn.execute(
                    """INSERT INTO engagement (video, impressions, plays, completions, watch_time_s, likes, comments,
                           shares, follows, last_event_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(video) DO UPDATE SET
                           impressions = min(impressions + excluded.impressions, {cap}),
                           plays = min(plays + excluded.plays, {cap}),
                           completions = min(completions + excluded.completions, {cap}),
                           watch_time_s = min(watch_time_s + excluded.watch_time_s, {cap}),
                           likes = min(likes + excluded.likes, {cap}),
                           comments = min(comments + excluded.comments, {cap}),
                           shares = min(shares + excluded.shares, {cap}),
                           follows = min(follows + excluded.follows, {cap}),
                           last_event_at = max(last_event_at, excluded.last_event_at)""".format(cap=COUNTER_CAP),
                    (int(row[0]), c.impressions, c.plays, c.completions, c.watch_time_s, c.likes, c.comments,
                     c.shares, c.follows, e.at),
                )
                accepted += 1
        return accepted, duplicates, rejected

    def all_counters(self) -> dict[int, Counters]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT video, impressions, plays, completions, watch_time_s, likes, comments, shares, follows, "
                "last_event_at FROM engagement"
            ).fetchall()
        return {int(r[0]): _counters(r[1:]) for r in rows}

    def profiles(self, row_ids: list[int]) -> list[Profile]:
        """What routing needs to know about each existing row: embeddings, creator, sound, language."""
        out = []
        for i in range(0, len(row_ids), 10_000):
            part = [int(r) for r in row_ids[i : i + 10_000]]
            with self._lock:
                rows = self._conn.execute(
                    "SELECT id, video_id, creator_id, sound_id, json_extract(transcript, '$.language'), embedding, "
                    f"caption_embedding, transcript_embedding FROM videos WHERE id IN ({', '.join('?' * len(part))})",
                    part,
                ).fetchall()
            out += [
                Profile(
                    row=int(r[0]), video_id=r[1], creator_id=r[2], sound_id=r[3], language=r[4] or "",
                    visual=np.frombuffer(r[5], dtype=np.float32),
                    caption=np.frombuffer(r[6], dtype=np.float32) if r[6] is not None else None,
                    spoken=np.frombuffer(r[7], dtype=np.float32) if r[7] is not None else None,
                )
                for r in rows
            ]
        return out

    def embedding(self, video_id: str, modality: str = "visual") -> np.ndarray | None:
        """A video's embedding of one modality; None for an unknown video or one without that content."""
        column = EMBEDDING_COLUMNS[modality]
        with self._lock:
            row = self._conn.execute(f"SELECT {column} FROM videos WHERE video_id = ?", (video_id,)).fetchone()
        return None if row is None or row[0] is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def iter_embeddings(self, modality: str = "visual", batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (row ids, embeddings) of one modality in batches, for rebuilding its index."""
        column = EMBEDDING_COLUMNS[modality]
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT id, {column} FROM videos WHERE id > ? AND {column} IS NOT NULL ORDER BY id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            yield np.array([r[0] for r in rows], dtype=np.int64), np.stack([np.frombuffer(r[1], np.float32) for r in rows])
            last = int(rows[-1][0])

    # --- sounds -----------------------------------------------------------
    def lookup_postings(self, hashes: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Postings (uint32 hash, sound, frame) of the given hashes, on this thread's read connection.

        Hashes holding `cap` or more postings are left out (a hash that many sounds share identifies none
        of them, and gets no more postings); they are returned as the fourth value."""
        keys = np.unique(hashes.astype(np.uint32)).view(np.int32)
        if keys.size == 0:
            return _NO_INT, _NO_INT, _NO_INT, _NO_INT
        rows = self._reader().execute(
            "SELECT hash, sound, t FROM sound_postings WHERE hash IN (SELECT value FROM json_each(?))",
            (json.dumps(keys.tolist()),),
        ).fetchall()
        if not rows:
            return _NO_INT, _NO_INT, _NO_INT, _NO_INT
        post = np.array(rows, dtype=np.int64)
        h = post[:, 0]
        values, counts = np.unique(h, return_counts=True)
        common = values[counts >= cap]
        if common.size:
            keep = ~np.isin(h, common)
            post = post[keep]
        unsigned = post[:, 0].astype(np.int32).view(np.uint32).astype(np.int64)
        return unsigned, post[:, 1], post[:, 2], common.astype(np.int32).view(np.uint32).astype(np.int64)

    def sound_extent(self, sound_id: int) -> tuple[int, int] | None:
        """(first, last) anchor frame the sound's postings cover, or None for an unknown sound."""
        with self._lock:
            row = self._conn.execute("SELECT first_frame, last_frame FROM sounds WHERE id = ?", (sound_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def sound_postings_total(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT coalesce(sum(postings), 0) FROM sounds").fetchone()[0])

    def videos_of_sounds(
        self, spans: list[tuple[int, int, int]], limit: int, exclude_row: int | None = None
    ) -> dict[int, list[tuple[int, str, int]]]:
        """sound -> [(row, video_id, sound_offset)] of the videos linked to it whose span overlaps (first, last)
        on its timeline, oldest first, at most `limit` per sound."""
        out: dict[int, list[tuple[int, str, int]]] = {}
        with self._lock:
            for sound_id, first, last in spans:
                rows = self._conn.execute(
                    "SELECT id, video_id, sound_offset FROM videos WHERE sound_id = ? AND sound_first <= ? "
                    "AND sound_last >= ? AND id IS NOT ? ORDER BY ingested_at, id LIMIT ?",
                    (sound_id, last, first, exclude_row, limit),
                ).fetchall()
                out[sound_id] = [(int(r[0]), r[1], int(r[2] or 0)) for r in rows]
        return out

    def fingerprint(self, video_id: str) -> tuple[int, Fingerprint | None] | None:
        """(row id, stored fingerprint or None when the clip had no audio), or None for an unknown video."""
        with self._lock:
            row = self._conn.execute("SELECT id, fingerprint FROM videos WHERE video_id = ?", (video_id,)).fetchone()
        if row is None:
            return None
        return int(row[0]), (_fingerprint_from_blob(row[1]) if row[1] is not None else None)

    def sound_stats(self, since: str, sound_id: int | None = None, limit: int = 100) -> list[SoundStats]:
        """Per sound: videos using it, and how many of those were ingested at or after `since` (UTC ISO time)."""
        where = "WHERE v.sound_id = ?" if sound_id is not None else ""
        params: list = [since] + ([sound_id] if sound_id is not None else []) + [limit]
        with self._lock:
            rows = self._conn.execute(
                f"""SELECT s.id, s.created_at, s.first_video, COUNT(v.id), COALESCE(SUM(v.ingested_at >= ?), 0)
                    FROM sounds s JOIN videos v ON v.sound_id = s.id {where}
                    GROUP BY s.id ORDER BY 5 DESC, 4 DESC, s.id LIMIT ?""",
                params,
            ).fetchall()
        return [SoundStats(int(r[0]), r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def sound_exists(self, sound_id: int) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM sounds WHERE id = ?", (sound_id,)).fetchone() is not None

    def videos_of_sound(self, sound_id: int, limit: int) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT video_id FROM videos WHERE sound_id = ? ORDER BY ingested_at DESC LIMIT ?", (sound_id, limit)
            ).fetchall()
        return [r[0] for r in rows]

    # --- reads ------------------------------------------------------------
    def row_id(self, video_id: str) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT id FROM videos WHERE video_id = ?", (video_id,)).fetchone()
        return None if row is None else int(row[0])

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
                f"SELECT id, {_VIDEO_COLUMNS}, sound_id, length(fingerprint) FROM videos WHERE video_id = ?",
                (video_id,),
            ).fetchone()
            frames = []
            if row is not None and include_embeddings:
                frames = self._conn.execute(
                    "SELECT t_s, embedding FROM frames WHERE video = ? ORDER BY idx", (row[0],)
                ).fetchall()
        if row is None:
            return None
        (_, vid, creator, caption, hashtags, hint, media, n_frames, model, emb, transcript, timings, at, sound, fp_len) = row
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
            sound_id=sound,
            landmarks=max(0, ((fp_len or 4) - 4) // 8),
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


def _counters(values) -> Counters:
    """Stored counters as the API's types, whatever an older version left: counts that overflowed into
    floats are clamped into int64, non-finite or NULL values read as 0."""

    def count(v) -> int:
        v = float(v or 0)
        return int(min(max(v, 0.0), COUNTER_CAP)) if math.isfinite(v) else 0

    impressions, plays, completions, watch, likes, comments, shares, follows, last = values
    watch = float(watch or 0.0)
    return Counters(
        count(impressions), count(plays), count(completions), watch if math.isfinite(watch) else 0.0,
        count(likes), count(comments), count(shares), count(follows), str(last or ""),
    )


def _fingerprint_blob(fp: Fingerprint) -> bytes:
    """The index side of a fingerprint (the query side is recomputed from audio, never stored)."""
    return np.concatenate([fp.index_hashes.astype(np.uint32).view(np.int32), fp.index_times.astype(np.int32)]).tobytes() + np.float32(
        fp.duration_s
    ).tobytes()


def _fingerprint_from_blob(blob: bytes) -> Fingerprint:
    data = np.frombuffer(blob[:-4], dtype=np.int32)
    n = data.shape[0] // 2
    return Fingerprint.stored(
        data[:n].view(np.uint32).copy(), data[n:].copy(), float(np.frombuffer(blob[-4:], dtype=np.float32)[0])
    )


_NO_INT = np.zeros(0, np.int64)


@dataclass(frozen=True)
class SoundLink:
    """A video's link to a sound, and the postings the link adds (server/sounds/identity.py decides it)."""

    sound_id: int | None     # None: a new sound
    offset: int              # sound frame = video frame + offset
    first: int               # the video's span on the sound's timeline
    last: int
    hashes: np.ndarray       # postings to add: uint32 hashes ...
    times: np.ndarray        # ... at these sound frames


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
