"""The catalog: video metadata, extraction results, transcripts, per-frame embeddings, fingerprints,
sounds and their postings, engagement. SQL through SQLAlchemy Core, the same code on SQLite and
PostgreSQL (server/storage/schema.py); the source of truth every vector index is rebuilt from.

A video's int64 `row_id` is the id its vectors carry; it is kept when the video is re-ingested, and
row ids (like sound ids) are never reused, so an index rebuilt from the catalog maps back to the same
video_id forever.
"""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
from sqlalchemy import BigInteger, Connection, Text, and_, case, false, func, literal, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from models.fingerprint import FORMAT as FINGERPRINT_FORMAT, Fingerprint
from models.whisper import Segment, Transcript
from server.domain import EngagementEvent, Extraction, SoundStats, SoundUse, VideoMetadata, VideoRecord
from server.engagement import Counters
from server.media import MediaInfo
from server.storage import schema as s
from server.storage.database import Database
from server.storage.engagement_log import EngagementLog, add as add_delta
from server.timing import utc_text

# Totals saturate here rather than overflow int64 (events are validated to at most max_event_count each).
COUNTER_CAP = 2**62

# Text modality -> column holding its sentence embedding; EMBEDDING_COLUMNS adds the CLIP video embedding.
TEXT_COLUMNS = {"caption": "caption_embedding", "spoken": "transcript_embedding"}
EMBEDDING_COLUMNS = {"visual": "embedding", **TEXT_COLUMNS}
COUNTER_NAMES = ("impressions", "plays", "completions", "watch_time_s", "likes", "comments", "shares", "follows")


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


class EngagementWrite(NamedTuple):
    accepted: int
    duplicates: int
    rejected: list[tuple[str, str]]    # (event_id, reason)
    added: dict[int, Counters]         # row id -> what the batch added to the counters of the videos it changed
    published: tuple[str, list[int], list[int]] | None = None  # (version, moved, change seqs) of `then`'s moves


class PoolMoves(NamedTuple):
    """A change of the published pool: members that joined or whose score changed, with their scores, and
    rows that left, under a new head (prior, threshold). `ship`: log changes for an external vector store."""
    prior: float
    threshold: float
    scores: dict[int, float]
    left: list[int]
    ship: bool = False


class Written(NamedTuple):
    row: int                  # the video's row id (its vectors' id)
    replaced: bool            # it existed before
    sound_id: int | None
    change: int               # its vector_changes seq (server/storage/feed.py)


class RowVectors(NamedTuple):
    vectors: dict[str, np.ndarray | None]   # modality -> embedding
    attrs: dict                              # creator, language, sound, in_pool: filter fields of an external store


class Change(NamedTuple):
    seq: int
    row_id: int
    video_id: str


@dataclass(frozen=True)
class SoundLink:
    """A video's link to its primary sound, and the postings the link adds (server/sounds/identity.py decides it)."""

    sound_id: int | None     # None: a new sound
    offset: int              # sound frame = round(video frame x scale) + offset
    first: int               # the video's span on the sound's timeline
    last: int
    hashes: np.ndarray       # postings to add: uint32 hashes ...
    times: np.ndarray        # ... at these sound frames
    scale: float = 1.0
    matched_frames: int = 0  # the evidence of the link (a new sound: the clip's own anchor frames)
    confidence: float = 1.0


@dataclass(frozen=True)
class Chunk:
    """Postings one link write added (table sound_chunks): `seq` numbers it, so a chunk read twice counts once."""

    seq: int
    sound: int
    hashes: np.ndarray  # uint32
    times: np.ndarray   # frames on the sound's timeline


class Catalog:
    def __init__(self, db: Database):
        self.db = db
        db.migrate()
        self._insert = sqlite.insert if db.is_sqlite else postgresql.insert
        self._least = func.min if db.is_sqlite else func.least        # two-argument scalar forms
        self._greatest = func.max if db.is_sqlite else func.greatest
        self.stale_fingerprints = self._retire_old_fingerprints()
        # Statements run once per engagement batch, built once (building one costs ~2 ms) and executed
        # with many parameter sets (SQLAlchemy's insertmanyvalues: still one round trip per ~1000 rows).
        self._claim_events = (
            self._insert(s.engagement_events).on_conflict_do_nothing(index_elements=[s.engagement_events.c.event_id])
            .returning(s.engagement_events.c.event_id)
        )
        add = self._insert(s.engagement)
        ex, cur = add.excluded, s.engagement.c
        self._add_counters = add.on_conflict_do_update(
            index_elements=[cur.video_id],
            set_={
                **{n: self._least(getattr(cur, n) + getattr(ex, n), COUNTER_CAP) for n in COUNTER_NAMES},
                "last_event_at": self._greatest(cur.last_event_at, ex.last_event_at),
            },
        )
        if db.is_sqlite:
            dialect = sqlite.dialect()
            self._sql_claim = str(
                self._insert(s.engagement_events).on_conflict_do_nothing()
                .compile(dialect=dialect, column_keys=["event_id", "video_id", "at"])
            )
            self._sql_seen = "SELECT event_id FROM engagement_events WHERE event_id IN ({marks})"
            self._sql_row_ids = ("SELECT video_id, row_id, prior_rate, prior_weight FROM videos INDEXED BY videos_key "
                                 "WHERE video_id IN ({marks})")
        # SQLite: counters written behind (server/storage/engagement_log.py); replays what a crash left
        self._log = EngagementLog(db, COUNTER_NAMES, COUNTER_CAP) if db.is_sqlite else None

    @property
    def shared(self) -> bool:
        """Other replicas may write to this catalog (PostgreSQL); a SQLite file has one server."""
        return not self.db.is_sqlite

    @property
    def description(self) -> str:
        url = self.db.url.split("@")[-1] if not self.db.is_sqlite else self.db.url
        return f"{self.db.dialect} ({url})"

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
        self.db.dispose()

    def fold_engagement(self) -> int:
        """Add every logged engagement delta to the counters table now (SQLite; a no-op on PostgreSQL)."""
        return self._log.fold() if self._log is not None else 0

    def engagement_generation(self) -> int | None:
        """The newest committed fold's generation (SQLite); None on PostgreSQL, which does not fold. Every
        counter change a later fold adds carries a greater one (`engagement_changed_since`)."""
        return self._log.generation if self._log is not None else None

    def engagement_changed_since(self, generation: int) -> np.ndarray:
        """Row ids of the videos whose counters a fold after `generation` added to (SQLite), after folding
        what is logged: one scan of the counters table, returning only the changed rows."""
        if self._log is None:
            raise RuntimeError("engagement_changed_since needs the SQLite catalog's engagement log")
        self.fold_engagement()
        e, v = s.engagement.c, s.videos.c
        with self.db.read() as conn:
            rows = conn.execute(select(v.row_id).select_from(s.engagement.join(s.videos, e.video_id == v.video_id))
                                .where(e.fold_gen > generation)).scalars().all()
        return np.array(rows, np.int64)

    def _retire_old_fingerprints(self) -> int:
        """Fingerprints of an older hash format cannot be matched by this one: drop them (their videos keep
        their sound ids; re-ingesting a video fingerprints it again). Returns how many were dropped."""
        with self.db.write() as conn:
            if self._meta(conn, "fingerprint_format") == FINGERPRINT_FORMAT:
                return 0
            n = conn.execute(update(s.videos).where(s.videos.c.fingerprint.is_not(None)).values(fingerprint=None)).rowcount
            self._set_meta(conn, "fingerprint_format", FINGERPRINT_FORMAT)
            return n

    def _meta(self, conn: Connection, key: str) -> str | None:
        return conn.execute(select(s.meta.c.value).where(s.meta.c.key == key)).scalar()

    def _set_meta(self, conn: Connection, key: str, value: str) -> None:
        stmt = self._insert(s.meta).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=[s.meta.c.key], set_={"value": stmt.excluded.value}))

    def _next_id(self, conn: Connection, name: str) -> int:
        """The next value of an id space that never hands a value out twice (rolled-back ones are skipped)."""
        if not self.db.is_sqlite:
            sequence = {"video_rows": s.VIDEO_ROWS, "sound_ids": s.SOUND_IDS}[name]
            return int(conn.execute(select(sequence.next_value())).scalar_one())
        stmt = self._insert(s.id_counters).values(name=name, last=1)
        stmt = stmt.on_conflict_do_update(index_elements=[s.id_counters.c.name], set_={"last": s.id_counters.c.last + 1})
        return int(conn.execute(stmt.returning(s.id_counters.c.last)).scalar_one())

    def catalog_id(self) -> str:
        """A random id given to this catalog the first time it is asked for, so a snapshot of in-process
        indexes is never loaded against another database than the one it was taken from."""
        with self.db.write() as conn:
            value = self._meta(conn, "catalog_id")
            if value is None:
                value = uuid.uuid4().hex
                stmt = self._insert(s.meta).values(key="catalog_id", value=value).on_conflict_do_nothing()
                conn.execute(stmt)
                value = self._meta(conn, "catalog_id")
        return value

    # --- embedding space -------------------------------------------------
    def embedding_space(self) -> tuple[str, int] | None:
        """(model name, dim) the stored embeddings were made with, or None for an empty catalog."""
        with self.db.read() as conn:
            value = self._meta(conn, "embedding_space")
        if value is None:
            return None
        space = json.loads(value)
        return space["model"], int(space["dim"])

    def set_embedding_space(self, model: str, dim: int) -> None:
        with self.db.write() as conn:
            self._set_meta(conn, "embedding_space", json.dumps({"model": model, "dim": dim}))

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
        ship: bool = False,
        frame_dtype: str = "fp16",
        prior: "tuple[float, float, str] | None" = None,
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
        values = dict(
            creator_id=meta.creator_id,
            caption=meta.caption,
            hashtags=json.dumps(list(meta.hashtags)),
            language_hint=meta.language_hint,
            language=extraction.transcript.language or "",
            media=json.dumps(dataclasses.asdict(extraction.media)),
            frames_sampled=extraction.frames_sampled,
            embedding_model=extraction.embedding_model,
            embedding=_blob(embedding),
            transcript=json.dumps(dataclasses.asdict(extraction.transcript)),
            timings=_timings_json(extraction),
            ingested_at=now,
            fingerprint=_fingerprint_blob(fingerprint) if fingerprint is not None and fingerprint.landmarks else None,
            caption_embedding=_blob(text["caption"]) if text.get("caption") is not None else None,
            transcript_embedding=_blob(text["spoken"]) if text.get("spoken") is not None else None,
            prior_rate=prior[0] if prior is not None else None,
            prior_weight=prior[1] if prior is not None else None,
            content_prior=prior[2] if prior is not None else None,
        )
        v = s.videos.c
        with self.db.write() as conn:
            sound_id = self._link_sound(conn, sound, meta.video_id, now) if sound is not None else None
            # The existing row, locked (PostgreSQL) so a concurrent re-ingest of this video on another replica waits.
            rowid = conn.execute(select(v.row_id).where(v.video_id == meta.video_id).with_for_update()).scalar()
            replaced = rowid is not None
            if not replaced:
                rowid = self._next_id(conn, "video_rows")
                inserted = conn.execute(
                    self._insert(s.videos)
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
            links = [_link_row(meta.video_id, sound_id, sound)] if sound is not None and sound_id is not None else []
            links += [_use_row(meta.video_id, u) for u in also if u.sound_id != sound_id]
            if links:
                conn.execute(s.sound_links.insert(), links)
            if len(frame_times_s) and frame_dtype != "none":
                dtype = np.float16 if frame_dtype == "fp16" else np.float32
                conn.execute(
                    s.frames.insert(),
                    [dict(video_id=meta.video_id, idx=i, t_s=float(t), embedding=_blob(e, dtype))
                     for i, (t, e) in enumerate(zip(frame_times_s, frame_embeddings))],
                )
            change = self._log_change(conn, int(rowid), meta.video_id, now, shipped=not ship)
        return Written(int(rowid), replaced, sound_id, change)

    def _log_change(self, conn: Connection, row: int, video_id: str, now: str, shipped: bool) -> int:
        txid = 0 if self.db.is_sqlite else select(func.pg_current_xact_id().cast(Text).cast(BigInteger)).scalar_subquery()
        stmt = s.vector_changes.insert().values(txid=txid, row_id=row, video_id=video_id, at=now, shipped=shipped)
        return int(conn.execute(stmt.returning(s.vector_changes.c.seq)).scalar_one())

    def _link_sound(self, conn: Connection, link: SoundLink, video_id: str, now: str) -> int:
        """Create the sound (when new) and add the link's postings; inside the caller's transaction."""
        c = s.sounds.c
        if link.sound_id is None:
            sound_id = self._next_id(conn, "sound_ids")
            conn.execute(s.sounds.insert().values(
                id=sound_id, created_at=now, first_video=video_id, first_frame=link.first, last_frame=link.last))
        else:
            sound_id = link.sound_id
            conn.execute(
                update(s.sounds).where(c.id == sound_id).values(
                    first_frame=self._least(func.coalesce(c.first_frame, link.first), link.first),
                    last_frame=self._greatest(func.coalesce(c.last_frame, link.last), link.last),
                )
            )
        if link.hashes.size:
            # One chunk per link write (server/sounds/postings.py follows them); a posting the link repeats
            # (same hash at the same frame) is kept once.
            pairs = np.unique(np.stack([link.hashes.astype(np.int64), link.times.astype(np.int64)], axis=1), axis=0)
            txid = 0 if self.db.is_sqlite else select(func.pg_current_xact_id().cast(Text).cast(BigInteger)).scalar_subquery()
            conn.execute(s.sound_chunks.insert().values(
                txid=txid, sound=sound_id, hashes=pairs[:, 0].astype("<u4").tobytes(), times=pairs[:, 1].astype("<i4").tobytes()))
            conn.execute(update(s.sounds).where(c.id == sound_id).values(postings=c.postings + len(pairs)))
        return sound_id

    def delete(self, video_id: str, ship: bool = False) -> tuple[int, int] | None:
        """Delete a video (its frames and counters go with it) and log the change of its vectors.
        Returns (row id, change seq), or None if it was not stored."""
        v = s.videos.c
        after_commit: list = []
        with self.db.write(after_commit) as conn:
            row = conn.execute(s.videos.delete().where(v.video_id == video_id).returning(v.row_id)).scalar()
            if row is None:
                return None
            if self._log is not None:
                self._log.void(conn, video_id, after_commit)
            return int(row), self._log_change(conn, int(row), video_id, utc_text(), shipped=not ship)

    # --- the change feed (server/storage/feed.py) -----------------------------
    def feed_position(self) -> int:
        """A cursor before every change not yet committed: take it before reading the vectors to index."""
        with self.db.read() as conn:
            if self.db.is_sqlite:
                return int(conn.execute(select(func.coalesce(func.max(s.vector_changes.c.seq), 0))).scalar_one())
            return int(conn.exec_driver_sql(_PG_XMIN).scalar_one())

    def pages_after(self, cursor: int) -> Iterator[tuple[list[Change], int]]:
        """`changes_after` page by page from `cursor` to the end of the feed (see `pages`)."""
        return pages(self.changes_after, cursor)

    def changes_after(self, cursor: int, limit: int = 50_000) -> tuple[list[Change], int]:
        """Changes committed since `cursor`, and the cursor after them. A change may come twice (applying
        one is idempotent), none is skipped (`_appended_after`)."""
        c = s.vector_changes.c
        rows, after = self._appended_after(s.vector_changes, (c.seq, c.row_id, c.video_id), cursor, limit)
        return [Change(*r) for r in rows], after

    def _appended_after(self, table, columns: tuple, cursor: int, limit: int) -> tuple[list[tuple], int]:
        """Rows of an append-only table with `seq` and `txid` columns (the change feed, the sound chunks)
        committed since `cursor`, and the cursor after them; a row may come twice, none is skipped.

        SQLite has one writer, so its rows commit in seq order. On PostgreSQL sequence values commit out
        of order, so the cursor is a transaction id instead: every transaction below the snapshot's xmin
        has ended, and every later one has a larger id. A page that ends inside a transaction resumes at
        it; one transaction that fills a whole page is read whole, and the cursor moves past it."""
        c = table.c
        with self.db.read() as conn:
            if self.db.is_sqlite:
                rows = conn.execute(select(*columns).where(c.seq > cursor).order_by(c.seq).limit(limit)).all()
                return [tuple(r) for r in rows], (int(rows[-1][0]) if rows else cursor)
            xmin = int(conn.exec_driver_sql(_PG_XMIN).scalar_one())
            rows = conn.execute(
                select(*columns, c.txid).where(c.txid >= cursor, c.txid < xmin).order_by(c.txid, c.seq).limit(limit)
            ).all()
            if len(rows) == limit and int(rows[-1][-1]) == cursor:
                rows = conn.execute(select(*columns).where(c.txid == cursor).order_by(c.seq)).all()
                return [tuple(r) for r in rows], cursor + 1
        if len(rows) == limit:
            return [tuple(r[:-1]) for r in rows], int(rows[-1][-1])
        return [tuple(r[:-1]) for r in rows], xmin

    def vectors(self, row_ids: list[int]) -> dict[int, "RowVectors"]:
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

    def latest_changes(self, row_ids: list[int]) -> dict[int, int]:
        """row id -> seq of its latest change."""
        c = s.vector_changes.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(c.row_id, func.max(c.seq)).where(c.row_id.in_([int(r) for r in row_ids])).group_by(c.row_id)
            ).all()
        return {int(r): int(seq) for r, seq in rows}

    def prune_changes(self, before: str) -> int:
        """Drop shipped changes written before `before` (UTC ISO time); a replica further behind rebuilds."""
        c = s.vector_changes.c
        with self.db.write() as conn:
            return conn.execute(s.vector_changes.delete().where(c.shipped == true(), c.at < before)).rowcount

    def unshipped(self, older_than: str, limit: int = 1000) -> list[Change]:
        """Changes not yet marked shipped, written before `older_than` (UTC ISO time): their writer
        crashed, or is still shipping them."""
        c = s.vector_changes.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(c.seq, c.row_id, c.video_id).where(c.shipped == false(), c.at < older_than).order_by(c.seq).limit(limit)
            ).all()
        return [Change(*r) for r in rows]

    def unshipped_count(self) -> int:
        c = s.vector_changes.c
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(s.vector_changes).where(c.shipped == false())).scalar_one())

    def mark_shipped(self, seqs: list[int]) -> None:
        if not seqs:
            return
        c = s.vector_changes.c
        with self.db.write() as conn:
            conn.execute(update(s.vector_changes).where(c.seq.in_([int(x) for x in seqs])).values(shipped=True))

    # --- engagement -------------------------------------------------------
    def record_engagement(
        self, events: list[EngagementEvent],
        then: Callable[[dict[int, Counters], dict[int, tuple[float, float]]], "PoolMoves | None"] | None = None,
    ) -> "EngagementWrite":
        """Add events' counters in one transaction. Returns accepted, duplicates, [(event_id, reason)] and
        what the batch added to each video it changed (by row id).

        Events are deduplicated by id (also across replicas: the event row is the claim), then summed per
        video, so a batch adds to each video's counters once however many of its events it carries. On
        PostgreSQL the counter rows are updated in this transaction; on SQLite the sums are logged and
        added to the table by a background fold (server/storage/engagement_log.py; reads include them).

        `then(the batch's per-video sums, {row: (prior rate, prior weight)} of those with a stored content
        prior)`, called inside the transaction when any counter changed, may return the pool moves those
        sums cause; they are published in the same transaction (one commit, one fsync per batch), and
        `EngagementWrite.published` is `publish_pool_moves`'s answer for them."""
        if not events:
            return EngagementWrite(0, 0, [], {})
        rejected: list[tuple[str, str]] = []
        first: dict[str, EngagementEvent] = {}
        for e in events:
            first.setdefault(e.event_id, e)
        duplicates = len(events) - len(first)
        after_commit: list = []
        with self.db.write(after_commit) as conn:
            ids = sorted({e.video_id for e in first.values()})
            known = self._row_ids(conn, ids)
            fresh = []
            for e in first.values():
                if e.video_id not in known:
                    rejected.append((e.event_id, f"video {e.video_id!r} is not indexed; ingest it before its engagement"))
                else:
                    fresh.append(e)
            claimed = self._claim(conn, fresh)
            duplicates += len(fresh) - len(claimed)
            sums: dict[str, list] = {}
            for e in fresh:
                if e.event_id in claimed:
                    c, total = e.counters, sums.get(e.video_id)
                    values = [c.impressions, c.plays, c.completions, c.watch_time_s, c.likes, c.comments, c.shares,
                              c.follows, e.at]
                    if total is None:  # most videos have one event per batch
                        sums[e.video_id] = values
                    else:
                        sums[e.video_id] = [*(a + b for a, b in zip(total[:8], values)), max(total[8], e.at)]
            for total in sums.values():
                if max(total[:8]) > COUNTER_CAP:
                    total[:8] = [min(x, COUNTER_CAP) for x in total[:8]]
            if self._log is not None:
                self._log.append(conn, sums, after_commit)  # SQLite: folded into the table later
            else:
                self._add(conn, [(video_id, *total) for video_id, total in sorted(sums.items())])  # rows locked in one order
            added = {int(known[video_id][0]): _counters(total) for video_id, total in sums.items()}
            priors = {int(known[video_id][0]): (known[video_id][1], known[video_id][2])
                      for video_id in sums if known[video_id][1] is not None}
            published = None
            moves = then(added, priors) if then is not None and added else None
            if moves is not None:
                published = self._publish_moves(conn, moves)
        return EngagementWrite(len(claimed), duplicates, rejected, added, published)

    def _row_ids(self, conn: Connection, video_ids: list[str]) -> dict[str, tuple[int, float | None, float | None]]:
        """video_id -> (row id, prior rate, prior weight) for those that exist (from the covering index `videos_key`)."""
        known: dict[str, tuple] = {}
        if self.db.is_sqlite:  # the driver: SQLAlchemy compiling 1,000 bound parameters costs ~10 ms a batch
            for i in range(0, len(video_ids), 900):
                part = video_ids[i : i + 900]
                for r in _driver(conn).execute(self._sql_row_ids.format(marks=",".join("?" * len(part))), part):
                    known[r[0]] = r[1:]
            return known
        v = s.videos.c
        for i in range(0, len(video_ids), 1000):
            known.update((vid, (row, rate, weight)) for vid, row, rate, weight in conn.execute(
                select(v.video_id, v.row_id, v.prior_rate, v.prior_weight).where(v.video_id.in_(video_ids[i : i + 1000]))))
        return known

    # The hot path of RecordEngagement: on SQLite (one writer, the write lock held) the claims go straight
    # to the driver as executemany of a statement SQLAlchemy compiled once, because
    # SQLAlchemy's per-row parameter handling cost ~60 ms per 1,000 events (of ~110 ms). PostgreSQL keeps
    # the portable path: ON CONFLICT ... RETURNING is how concurrent replicas learn which claims were theirs.
    def _claim(self, conn: Connection, events: list[EngagementEvent]) -> set[str]:
        """Insert the events' ids; returns those this transaction inserted (the others were counted before)."""
        if not self.db.is_sqlite:
            claimed: set[str] = set()
            for i in range(0, len(events), 1000):
                claimed |= set(conn.execute(
                    self._claim_events, [dict(event_id=e.event_id, video_id=e.video_id, at=e.at) for e in events[i : i + 1000]]
                ).scalars())
            return claimed
        seen: set[str] = set()
        ids = [e.event_id for e in events]
        for i in range(0, len(ids), 900):
            part = ids[i : i + 900]
            seen |= {r[0] for r in _driver(conn).execute(self._sql_seen.format(marks=",".join("?" * len(part))), part)}
        new = [e for e in events if e.event_id not in seen]
        _driver(conn).executemany(self._sql_claim, [(e.event_id, e.video_id, e.at) for e in new])
        return {e.event_id for e in new}

    def _add(self, conn: Connection, rows: list[tuple]) -> None:
        """PostgreSQL: add the summed counters, rows of (video_id, *COUNTER_NAMES, last_event_at), to the
        counter rows (SQLite logs them instead: server/storage/engagement_log.py)."""
        if rows:
            names = ("video_id", *COUNTER_NAMES, "last_event_at")
            conn.execute(self._add_counters, [dict(zip(names, row)) for row in rows])

    def stored_prior(self, row: int) -> tuple[float, float, str] | None:
        """(prior rate, prior weight, prior JSON) stored with a video, or None."""
        v = s.videos.c
        with self.db.read() as conn:
            r = conn.execute(select(v.prior_rate, v.prior_weight, v.content_prior).where(v.row_id == row)).first()
        return None if r is None or r[0] is None else (float(r[0]), float(r[1]), r[2] or "")

    def all_counters(self) -> dict[int, Counters]:
        self.fold_engagement()
        e, v = s.engagement.c, s.videos.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(v.row_id, *(getattr(e, n) for n in COUNTER_NAMES), e.last_event_at)
                .select_from(s.engagement.join(s.videos, e.video_id == v.video_id))
            ).all()
        return {int(r[0]): _counters(r[1:]) for r in rows}

    def engagement_arrays(self, weights: dict[str, float], rows: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
        """Every engaged video's (row ids, impressions, weighted engagement, last_event_at texts, prior rates and
        weights, nan where a video has no stored content prior), for
        building scores at start without a Python object per video. `weights`: counter name -> weight.
        `rows`: only these videos' (those of them that exist and have engagement).
        The weighting runs in SQL over counters cleaned as `_counters` cleans them (NULL/NaN -> 0,
        clamped to 0..COUNTER_CAP), so 10^6 rows come back as six columns."""
        self.fold_engagement()
        e, v = s.engagement.c, s.videos.c

        def clean(column):
            return self._least(self._greatest(func.coalesce(column, 0), 0), COUNTER_CAP)

        weighted = sum((clean(getattr(e, name)) * float(w) for name, w in weights.items()), literal(0.0))
        stmt = (select(v.row_id, clean(e.impressions), weighted, e.last_event_at, v.prior_rate, v.prior_weight)
                .select_from(s.engagement.join(s.videos, e.video_id == v.video_id))
                # SQLite's planner prefers the primary key, then reads each ~6 KB video row for its row id
                .with_hint(s.videos, "INDEXED BY videos_key", dialect_name="sqlite"))
        parts = [stmt] if rows is None else [
            stmt.where(v.row_id.in_([int(r) for r in rows[i : i + 10_000]])) for i in range(0, len(rows), 10_000)]
        with self.db.read() as conn:
            rows = [r for part in parts for r in _fetch_all(conn, part)]
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0), [], np.zeros(0), np.zeros(0)
        ids, imp, w, last, prior_rate, prior_weight = zip(*rows)
        imp = np.nan_to_num(np.array(imp, dtype=np.float64), nan=0.0, posinf=COUNTER_CAP)
        w = np.nan_to_num(np.array(w, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        return (np.array(ids, dtype=np.int64), np.floor(imp), w, [str(t or "") for t in last],
                np.array(prior_rate, dtype=np.float64), np.array(prior_weight, dtype=np.float64))

    def counters(self, row: int) -> Counters | None:
        """A video's counters (None: never engaged), with what the engagement log has not folded yet."""
        e, v = s.engagement.c, s.videos.c
        with self.db.read() as conn:
            r = conn.execute(
                select(v.video_id, *(getattr(e, n) for n in COUNTER_NAMES), e.last_event_at)
                .select_from(s.videos.outerjoin(s.engagement, e.video_id == v.video_id)).where(v.row_id == row)
            ).first()
        if r is None:
            return None
        table = None if r[1] is None else [*r[1:9], r[9] or ""]
        total = add_delta(table, self._log.unfolded(r[0]) if self._log is not None else None)
        return None if total is None else _counters(total)

    # --- the published pool (server/pool.py) ---------------------------------
    def publish_pool(
        self, prior: float, threshold: float, members: dict[int, float], ship: bool = False
    ) -> tuple[str, list[int], list[int]]:
        """Replace the published pool. Returns (its new version, rows that joined or left, change seqs).

        `ship`: an external vector store holds pool membership as a field, so a change is logged for each
        row that joined or left (shipped by the caller, or by the outbox sweeper after a crash)."""
        version = uuid.uuid4().hex
        with self.db.write() as conn:
            if not self.db.is_sqlite:  # replicas publish one at a time
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_POOL_LOCK})")
            before = set(conn.execute(select(s.pool_members.c.row_id)).scalars())
            moved = sorted(before.symmetric_difference(int(r) for r in members))
            conn.execute(s.pool_members.delete())
            rows = [dict(row_id=int(r), score=float(x)) for r, x in members.items()]
            for i in range(0, len(rows), 10_000):
                conn.execute(s.pool_members.insert(), rows[i : i + 10_000])
            changes = self._pool_published(conn, version, prior, threshold, moved, ship)
        return version, moved, changes

    def publish_pool_moves(
        self, prior: float, threshold: float, scores: dict[int, float], left: list[int], ship: bool = False
    ) -> tuple[str, list[int], list[int]]:
        """Change the published pool by what moved: `scores` are members that joined or whose score changed,
        `left` those that left. Returns (new version, rows that joined or left, change seqs); costs what
        moved, not the pool's size."""
        with self.db.write() as conn:
            return self._publish_moves(conn, PoolMoves(prior, threshold, scores, list(left), ship))

    def _publish_moves(self, conn: Connection, m: "PoolMoves") -> tuple[str, list[int], list[int]]:
        version = uuid.uuid4().hex
        pm = s.pool_members.c
        touched = sorted({int(r) for r in m.scores} | {int(r) for r in m.left})
        if not self.db.is_sqlite:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_POOL_LOCK})")
        before: set[int] = set()
        for i in range(0, len(touched), 10_000):
            before |= set(conn.execute(select(pm.row_id).where(pm.row_id.in_(touched[i : i + 10_000]))).scalars())
        gone = [int(r) for r in m.left if int(r) in before]
        for i in range(0, len(gone), 10_000):
            conn.execute(s.pool_members.delete().where(pm.row_id.in_(gone[i : i + 10_000])))
        rows = [dict(row_id=int(r), score=float(x)) for r, x in m.scores.items()]
        if rows:
            stmt = self._insert(s.pool_members)
            conn.execute(stmt.on_conflict_do_update(index_elements=[pm.row_id], set_={"score": stmt.excluded.score}), rows)
        moved = sorted(gone + [int(r) for r in m.scores if int(r) not in before])
        changes = self._pool_published(conn, version, m.prior, m.threshold, moved, m.ship)
        return version, moved, changes

    def _pool_published(
        self, conn: Connection, version: str, prior: float, threshold: float, moved: list[int], ship: bool
    ) -> list[int]:
        """The pool's new head (version, prior, threshold) and, for an external vector store, a change for
        each row that joined or left; inside the publishing transaction. Returns the change seqs."""
        threshold_text = "inf" if math.isinf(threshold) else repr(float(threshold))
        self._set_meta(conn, "pool", json.dumps({"version": version, "prior": prior, "threshold": threshold_text}))
        changes = []
        if ship and moved:
            v = s.videos.c
            now = utc_text()
            for i in range(0, len(moved), 10_000):
                for row, video_id in conn.execute(select(v.row_id, v.video_id).where(v.row_id.in_(moved[i : i + 10_000]))):
                    changes.append(self._log_change(conn, int(row), video_id, now, shipped=False))
        return changes

    def pool_version(self) -> str | None:
        with self.db.read() as conn:
            value = self._meta(conn, "pool")
        return None if value is None else json.loads(value)["version"]

    def published_members(self) -> np.ndarray:
        """The published pool's member rows (no scores: 10^5 rows in a fraction of a second)."""
        with self.db.read() as conn:
            return np.array([r[0] for r in _fetch_all(conn, select(s.pool_members.c.row_id))], np.int64)

    def published_pool(self) -> tuple[str, float, float, dict[int, float]] | None:
        """(version, prior, threshold, {row: score}) as last published, read in one transaction."""
        with self.db.snapshot() as conn:
            value = self._meta(conn, "pool")
            if value is None:
                return None
            members = {int(r): float(x) for r, x in conn.execute(select(s.pool_members.c.row_id, s.pool_members.c.score))}
        head = json.loads(value)
        return head["version"], float(head["prior"]), float(head["threshold"]), members

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

    # --- sounds -----------------------------------------------------------
    def sound_chunks_after(self, cursor: int, limit: int = 2_000) -> tuple[list[Chunk], int]:
        """Sound chunks committed since `cursor`, and the cursor after them: read as the change feed is
        (`_appended_after`; the migration that packed the old postings wrote every chunk in one transaction)."""
        c = s.sound_chunks.c
        rows, after = self._appended_after(s.sound_chunks, (c.seq, c.sound, c.hashes, c.times), cursor, limit)
        return [_chunk(r) for r in rows], after

    @contextmanager
    def new_sound_lock(self) -> Iterator[None]:
        """Held by a replica from its last check for a matching sound until its new sound is committed, so
        two replicas never both start a sound for one audio (server/sounds/identity.py). A session-level
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
        `sound_chunks_after` cursor: committed, but perhaps not yet followed, because an older
        transaction was still open when the follower last read. Empty on SQLite (one writer)."""
        keys = np.unique(hashes.astype(np.uint32))
        if keys.size == 0 or self.db.is_sqlite:
            return _NO_INT, _NO_INT, _NO_INT
        c = s.sound_chunks.c
        with self.db.read() as conn:
            rows = conn.execute(select(c.seq, c.sound, c.hashes, c.times).where(c.txid >= cursor)).all()
        parts = [(ch.hashes, np.full(ch.hashes.size, ch.sound, np.int64), ch.times) for ch in map(_chunk, rows)]
        if not parts:
            return _NO_INT, _NO_INT, _NO_INT
        h, snd, t = (np.concatenate([p[i] for p in parts]) for i in range(3))
        keep = np.isin(h, keys)
        return h[keep].astype(np.int64), snd[keep], t[keep]

    def sound_extent(self, sound_id: int) -> tuple[int, int] | None:
        """(first, last) anchor frame the sound's postings cover, or None for an unknown sound."""
        c = s.sounds.c
        with self.db.read() as conn:
            row = conn.execute(select(c.first_frame, c.last_frame).where(c.id == sound_id)).first()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def sound_postings_total(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.coalesce(func.sum(s.sounds.c.postings), 0))).scalar_one())

    def sound_uses(self, video_id: str) -> list[SoundUse]:
        """Every sound a video uses, the primary first (empty without usable audio or for an unknown video)."""
        with self.db.read() as conn:
            return self._uses(conn, [video_id]).get(video_id, [])

    def _uses(self, conn: Connection, video_ids: list[str]) -> dict[str, list[SoundUse]]:
        ln, so = s.sound_links.c, s.sounds.c
        rows = conn.execute(
            select(ln.video_id, *_USE_COLUMNS, so.first_video)
            .select_from(s.sound_links.outerjoin(s.sounds, so.id == ln.sound_id))
            .where(ln.video_id.in_(video_ids)).order_by(ln.video_id, ln.is_primary.desc(), ln.sound_id)
        ).all()
        out: dict[str, list[SoundUse]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(_use(r[1:-1], started=r[-1] == r[0]))
        return out

    def sharing(
        self, spans: list[tuple[int, int, int]], limit: int, exclude_video: str | None = None, pool_only: bool = False,
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
                query = select(v.row_id, v.video_id, *_USE_COLUMNS, so.first_video).select_from(joined).where(
                    ln.sound_id == sound_id, ln.first_frame <= last, ln.last_frame >= first)
                if exclude_video is not None:
                    query = query.where(v.video_id != exclude_video)
                rows = conn.execute(query.order_by(v.ingested_at, v.row_id).limit(limit)).all()
                out[sound_id] = [(int(r[0]), r[1], _use(r[2:-1], started=r[-1] == r[1])) for r in rows]
        return out

    def fingerprint(self, video_id: str) -> tuple[int, Fingerprint | None] | None:
        """(row id, stored fingerprint or None when the clip had no audio), or None for an unknown video."""
        v = s.videos.c
        with self.db.read() as conn:
            row = conn.execute(select(v.row_id, v.fingerprint).where(v.video_id == video_id)).first()
        if row is None:
            return None
        return int(row[0]), (_fingerprint_from_blob(row[1]) if row[1] is not None else None)

    def sound_stats(self, since: str, sound_id: int | None = None, limit: int = 100) -> list[SoundStats]:
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

    def sound_exists(self, sound_id: int) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(s.sounds.c.id).where(s.sounds.c.id == sound_id)).first() is not None

    def videos_of_sound(self, sound_id: int, limit: int) -> list[str]:
        v, ln = s.videos.c, s.sound_links.c
        with self.db.read() as conn:
            return list(conn.execute(
                select(v.video_id).select_from(s.sound_links.join(s.videos, v.video_id == ln.video_id))
                .where(ln.sound_id == sound_id).order_by(v.ingested_at.desc(), v.video_id).limit(limit)
            ).scalars())

    # --- reads ------------------------------------------------------------
    def row_id(self, video_id: str) -> int | None:
        with self.db.read() as conn:
            row = conn.execute(select(s.videos.c.row_id).where(s.videos.c.video_id == video_id)).scalar()
        return None if row is None else int(row)

    def summaries(self, row_ids: list[int]) -> dict[int, tuple[str, str, str, float]]:
        """row id -> (video_id, creator_id, caption, duration_s) for search results."""
        if not row_ids:
            return {}
        v = s.videos.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(v.row_id, v.video_id, v.creator_id, v.caption, v.media).where(v.row_id.in_([int(i) for i in row_ids]))
            ).all()
        return {int(r[0]): (r[1], r[2], r[3], float(json.loads(r[4])["duration_s"])) for r in rows}

    def get(self, video_id: str, include_embeddings: bool = False) -> VideoRecord | None:
        v, f = s.videos.c, s.frames.c
        with self.db.read() as conn:
            row = conn.execute(
                select(v.video_id, v.creator_id, v.caption, v.hashtags, v.language_hint, v.media, v.frames_sampled,
                       v.embedding_model, v.embedding, v.transcript, v.timings, v.ingested_at, v.sound_id,
                       func.length(v.fingerprint)).where(v.video_id == video_id)
            ).first()
            uses = self._uses(conn, [video_id]).get(video_id, []) if row is not None else []
            frames = []
            if row is not None and include_embeddings:
                frames = conn.execute(select(f.t_s, f.embedding).where(f.video_id == video_id).order_by(f.idx)).all()
        if row is None:
            return None
        (vid, creator, caption, hashtags, hint, media, n_frames, model, emb, transcript, timings, at, sound, fp_len) = row
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
                segments=[Segment(**seg) for seg in t["segments"]],
            ),
            **_timings_from_json(timings),
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
                    np.stack([_frame_vector(fr[1], embedding.shape[0]) for fr in frames])
                    if frames
                    else np.zeros((0, embedding.shape[0]), dtype=np.float32)
                ),
            )
        return record


def _driver(conn: Connection):
    """The DB-API connection under a SQLAlchemy connection, inside the same transaction."""
    return conn.connection.driver_connection


def _fetch_all(conn: Connection, stmt) -> list[tuple]:
    """A statement's rows as the driver's own tuples: SQLAlchemy's row objects cost ~1 s per 10^6 rows."""
    return _fetch_sql(conn, *_inline(stmt, conn.dialect))


def pages(read_after: Callable[[int], tuple[list, int]], cursor: int) -> Iterator[tuple[list, int]]:
    """A feed read page by page from `cursor` to its end: (rows, cursor after them); the last page is the
    one after which nothing more was read (possibly empty)."""
    while True:
        batch, after = read_after(cursor)
        yield batch, after
        if not batch or after == cursor:
            return
        cursor = after


def _chunk(row) -> Chunk:
    """A sound_chunks row (seq, sound, hashes, times, ...) as a Chunk."""
    return Chunk(int(row[0]), int(row[1]), np.frombuffer(row[2], "<u4").astype(np.uint32),
                 np.frombuffer(row[3], "<i4").astype(np.int32))


def _fetch_sql(conn: Connection, sql: str, params) -> list[tuple]:
    """Rows of SQL text (in the driver's parameter style) as the driver's own tuples."""
    cursor = _driver(conn).cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        cursor.close()


def _inline(stmt, dialect) -> tuple:
    """(SQL text, parameters) for a driver cursor, in the driver's own parameter style."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})  # IN lists expanded
    params = compiled.construct_params()
    if compiled.positional:
        return str(compiled), tuple(params[name] for name in compiled.positiontup)
    return str(compiled), params


def _counters(values) -> Counters:
    """Stored counters as the API's types, whatever an older version left: counts that overflowed into
    floats are clamped into int64, non-finite or NULL values read as 0."""

    def count(v) -> int:
        v = float(v or 0)
        return int(min(max(v, 0.0), COUNTER_CAP)) if math.isfinite(v) else 0

    impressions, plays, completions, watch, likes, comments, shares, follows, last = values
    counts = (impressions, plays, completions, likes, comments, shares, follows)
    # what this version writes: nothing to clean (the common case, ~3x cheaper). SQLite hands back a REAL
    # that holds a whole number (the sum of whole watch seconds) as an int.
    if (all(type(v) is int and 0 <= v <= COUNTER_CAP for v in counts) and type(watch) in (float, int)
            and math.isfinite(watch)):
        return Counters(impressions, plays, completions, float(watch), likes, comments, shares, follows, str(last or ""))
    watch = float(watch or 0.0)
    return Counters(
        count(impressions), count(plays), count(completions), watch if math.isfinite(watch) else 0.0,
        count(likes), count(comments), count(shares), count(follows), str(last or ""),
    )


def _timings_json(e: Extraction) -> str:
    """A video's stage timings as stored: stage -> ms, with the model stages' queue waits and batch sizes."""
    return json.dumps({**e.timings_ms, "queue_wait": e.queue_wait_ms, "batches": e.batch_sizes})


_LEGACY_BATCHES = {"clip_batch": "embed_frames", "whisper_batch": "transcribe"}  # stored as stages before issue 28


def _timings_from_json(text: str) -> dict[str, dict[str, float]]:
    stored = json.loads(text)
    waits, batches = stored.pop("queue_wait", {}), stored.pop("batches", {})
    for key, stage in _LEGACY_BATCHES.items():
        if key in stored:
            batches.setdefault(stage, stored.pop(key))
    return {"timings_ms": stored, "queue_wait_ms": waits, "batch_sizes": batches}


_USE_COLUMNS = tuple(getattr(s.sound_links.c, n) for n in (
    "sound_id", "is_primary", "sound_offset", "scale", "first_frame", "last_frame", "matched_frames", "confidence"))


def _use(values, started: bool) -> SoundUse:
    sound, primary, offset, scale, first, last, frames, confidence = values
    return SoundUse(int(sound), bool(primary), int(offset), float(scale), int(first), int(last), int(frames),
                    float(confidence), started=bool(started))


def _link_row(video_id: str, sound_id: int, link: SoundLink) -> dict:
    return dict(video_id=video_id, sound_id=sound_id, is_primary=True, sound_offset=link.offset, scale=link.scale,
                first_frame=link.first, last_frame=link.last, matched_frames=link.matched_frames,
                confidence=link.confidence)


def _use_row(video_id: str, u: SoundUse) -> dict:
    return dict(video_id=video_id, sound_id=u.sound_id, is_primary=False, sound_offset=u.offset, scale=u.scale,
                first_frame=u.first, last_frame=u.last, matched_frames=u.matched_frames, confidence=u.confidence)


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
_NEW_SOUND_LOCK = 0x_C01D_5001  # pg_advisory_lock key: one new sound at a time across replicas
_POOL_LOCK = 0x_C01D_9001  # pg_advisory_xact_lock key for publishing the pool
_PG_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


def _blob(v: np.ndarray, dtype=np.float32) -> bytes:
    return np.ascontiguousarray(v, dtype=dtype).tobytes()


def _frame_vector(blob: bytes, dim: int) -> np.ndarray:
    """A stored frame embedding as float32: fp16 blobs are 2 bytes per value, fp32 ones (older rows, or
    --frame-embeddings fp32) 4."""
    return np.frombuffer(blob, dtype=np.float16 if len(blob) == 2 * dim else np.float32).astype(np.float32)
