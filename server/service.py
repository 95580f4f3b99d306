"""The ingest/search core: media -> models -> store -> index. No gRPC types here."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from models.clip import ClipEmbedder, ClipSpec, resolve_device
from models.fingerprint import Fingerprint, Fingerprinter
from models.text import TextEmbedder, TextSpec
from models.whisper import WhisperSpec, WhisperTranscriber
from server import engagement, routing
from server.coldstart import posterior, rollout
from server.coldstart.content import ContentPriors
from server.coldstart.prior import MIN_CALIBRATION, Prior
from server.datadir import DataDirLock
from server.metrics import Observer
from server.domain import (
    EngagementEvent,
    EngagementResult,
    Extraction,
    IngestResult,
    Neighbour,
    SearchQuery,
    SearchResult,
    SoundNeighbour,
    SoundStats,
    SoundUse,
    VideoMetadata,
    VideoRecord,
)
from server.errors import InvalidInput, ModelLoadError, NotFound, Overloaded, StorageUnavailable
from server.pipeline import Pipeline
from server.pool import PerformancePool
from server.settings import Settings
from server.sounds.identity import SoundIdentity
from server.sounds.postings import SoundPostings
from server.sounds.sharing import shared, use_of_match
from server.storage import EMBEDDING_COLUMNS, Catalog, open_catalog
from server.storage.catalog import Change
from server.storage.feed import KEEP_CHANGES_S, Follower
from server.storage import snapshots
from server.storage.vectors import FaissIndex, VectorIndex, open_indexes
from server.timing import timed, utc_text
from server.validation import (
    MAX_TEXT_CHARS,
    check_event,
    format_sound_id,
    parse_sound_id,
    validate_metadata,
    validate_video_id,
    window_start,
)

log = logging.getLogger(__name__)
PRIOR_WEIGHT_CAP = 10  # a stored content prior weighs at most this many times prior_impressions


@dataclass(frozen=True)
class Models:
    clip: ClipEmbedder
    whisper: WhisperTranscriber
    fingerprinter: Fingerprinter
    text: TextEmbedder

    @classmethod
    def load(cls, settings: Settings) -> "Models":
        clip = ClipEmbedder.load(
            ClipSpec(settings.clip_model, settings.clip_pretrained, settings.device, settings.clip_batch_size)
        )
        whisper = WhisperTranscriber.load(
            WhisperSpec(
                model=settings.whisper_model,
                device=settings.device,
                compute_type=settings.whisper_compute_type,
                beam_size=settings.whisper_beam_size,
                cpu_threads=settings.cpu_threads,
            )
        )
        device = resolve_device(settings.device)
        return cls(
            clip=clip,
            whisper=whisper,
            fingerprinter=Fingerprinter.load(device),
            text=TextEmbedder.load(TextSpec(settings.text_model, device)),
        )


def refresh_rows(store: Catalog, indexes: dict[str, VectorIndex], rows: list[int]) -> None:
    """Bring in-process indexes to the catalog's current state of `rows` (idempotent)."""
    current = store.vectors(rows)
    ids = np.array(rows, dtype=np.int64)
    for modality, index in indexes.items():
        index.remove(ids)
        have = [r for r in rows if r in current and current[r].vectors[modality] is not None]
        if have:
            index.add(np.array(have, dtype=np.int64), np.stack([current[r].vectors[modality] for r in have]))


class ColdOpenService:
    def __init__(
        self,
        settings: Settings,
        models: Models,
        store: Catalog,
        indexes: dict[str, VectorIndex],
        lock: DataDirLock | None = None,
        feed_cursor: int | None = None,
        snapshot_key: snapshots.SnapshotKey | None = None,
        snapshot_due: bool = False,
    ):
        self.settings = settings
        self.models = models
        self.observer: Observer = Observer()  # the server sets its metrics here when it attaches the service
        self._lock_file = lock
        self.pipeline = Pipeline(settings, models, on_batch=lambda *batch: self.observer.batch(*batch))
        self._store = store
        self._indexes = indexes  # target modality (visual, spoken, caption) -> vector index
        # This node's hash-addressed view of the sound postings, following the catalog's chunks.
        self._postings = SoundPostings(settings.data_dir / "sound-postings", store.sound_chunks_after,
                                       key=store.catalog_id())
        self._sounds = SoundIdentity(store, self._postings)
        # Updated by each engagement batch and published in the catalog (server/pool.py).
        self._ships = any(index.shared for index in indexes.values())
        self._pool = PerformancePool(
            settings, store, models.clip.dim, models.text.dim, on_publish=self._ship_rows if self._ships else None,
            # members' embeddings from the in-process indexes; with an external store, read with their profiles
            vectors=self._vectors_of if all(isinstance(i, FaissIndex) for i in indexes.values()) else None,
            background=True,
            snapshot_dir=settings.data_dir / "snapshots" if snapshot_key is not None else None,
        )
        self._pool_behind = 0  # re-ingests and deletes committed that the pool has not applied yet
        # What a video's content predicts, from neighbours among every video with impressions (server/coldstart/).
        self._priors = ContentPriors(settings, indexes, self._vectors_of, self._pool.rates, self._pool.rows_with,
                                     self._pool.count_with)
        self._write_lock = threading.Lock()
        self._engagement_lock = threading.Lock()
        self._ingest_slots = threading.BoundedSemaphore(settings.max_concurrent_ingests)
        self._in_flight = 0  # changed only while holding a slot; read for monitoring and tests
        self._tmp_dir = settings.data_dir / "tmp"
        # On a shared catalog other replicas write too: follow their writes into this replica's indexes.
        # A shared vector store (Milvus) gets each write from its writer, after the catalog commit; the feed
        # is its outbox, shipping what a crash left unshipped.
        self._feed: Follower | None = None
        if store.shared or self._ships:
            cursor = store.feed_position() if feed_cursor is None else feed_cursor
            self._feed = Follower(
                store, cursor, self._apply_changes, settings.replica_poll_s,
                ship=self._ship if self._ships else None, after_poll=self._pool.sync,
            ).start()
        # In-process FAISS indexes are snapshotted in the background (server/storage/snapshots.py).
        self._snapshot_key = snapshot_key
        self._dirty = 0  # writes applied to the in-process indexes since the last snapshot
        self._snapshot_write = threading.Lock()
        self._snapshot_stop = threading.Event()
        self._snapshotter: threading.Thread | None = None
        if snapshot_key is not None and settings.snapshot_interval_s > 0 and any(
            isinstance(i, FaissIndex) for i in indexes.values()
        ):
            first_now = snapshot_due and len(indexes["visual"]) > 0  # a full rebuild: keep its result at once
            self._snapshotter = threading.Thread(
                target=self._snapshot_loop, args=(first_now,), name="coldopen-snapshot", daemon=True
            )
            self._snapshotter.start()

    def _vectors_of(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Every modality's vectors of rows (zero rows where a video lacks one): from this process's indexes
        where it has them, else from the catalog."""
        rows = np.asarray(rows, np.int64)
        dims = {"visual": self.models.clip.dim, "spoken": self.models.text.dim, "caption": self.models.text.dim}
        out: dict[str, np.ndarray] = {}
        for modality, dim in dims.items():
            index = self._indexes.get(modality)
            got = index.get(rows) if isinstance(index, FaissIndex) else None
            if got is None or (modality == "visual" and not got[0].all()):
                break
            full = np.zeros((len(rows), dim), np.float32)
            full[got[0]] = got[1]
            out[modality] = full
        else:
            return out
        profiles = {p.row: p for p in self._store.profiles([int(r) for r in rows])}
        return {m: np.stack([getattr(profiles[int(r)], m) if int(r) in profiles and getattr(profiles[int(r)], m) is not None
                             else np.zeros(d, np.float32) for r in rows]) if len(rows) else np.zeros((0, d), np.float32)
                for m, d in dims.items()}

    @classmethod
    def open(cls, settings: Settings, models: Models, lock: DataDirLock | None = None,
             store: Catalog | None = None) -> "ColdOpenService":
        """Lock the data dir (unless the caller already holds `lock`), open the catalog (unless the caller
        opened it: `store`), check it matches the embedding model, rebuild the index from the store. The
        service releases the lock and closes the catalog when it closes."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        lock = lock or DataDirLock(settings.data_dir).acquire()  # before touching anything another server may use
        try:
            return cls._open_locked(settings, models, lock, store)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(cls, settings: Settings, models: Models, lock: DataDirLock,
                     store: Catalog | None) -> "ColdOpenService":
        tmp = settings.data_dir / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)  # partial uploads from a previous run
        tmp.mkdir()
        store = store or open_catalog(settings.database_url, settings.data_dir)
        space = store.embedding_space()
        clip = models.clip
        if space is None:
            store.set_embedding_space(clip.name, clip.dim)
        elif space != (clip.name, clip.dim):
            store.close()
            raise ModelLoadError(
                f"the catalog {store.description} holds embeddings from {space[0]} ({space[1]}-d) but the server "
                f"was started with {clip.name} ({clip.dim}-d); start with the same --clip-model/--clip-pretrained, "
                f"or use a new --data-dir (or --database-url)"
            )
        started = time.perf_counter()
        dims = {m: clip.dim if m == "visual" else models.text.dim for m in EMBEDDING_COLUMNS}
        try:
            indexes = open_indexes(settings, dims)
            key = snapshots.SnapshotKey(store.catalog_id(), clip.name, clip.dim, settings.index_type)
            cursor, how = cls._build_indexes(store, indexes, settings.data_dir / "snapshots", key)
        except Exception:
            store.close()
            raise
        index = indexes["visual"]
        # The change feed only matters for a while (replicas follow it, the outbox ships from it): drop old
        # shipped entries at start too, so a single server that never follows it does not grow it forever.
        pruned = store.prune_changes(utc_text(datetime.now(timezone.utc) - timedelta(seconds=KEEP_CHANGES_S)))
        if pruned:
            log.info("dropped %d shipped change-feed entries older than %d h", pruned, KEEP_CHANGES_S // 3600)
        if store.stale_fingerprints:
            log.warning(
                "%d stored fingerprints were made by an older landmark format and were dropped; those videos keep "
                "their sound ids, but their sounds no longer match new uploads: re-ingest a video to fingerprint it "
                "again (its sound then gets an id of the new format)", store.stale_fingerprints
            )
        log.info(
            "index ready: %d videos (%s), %d transcripts, %d captions, %s in %.0f ms (sound postings stay in the store)",
            len(index),
            index.description,
            len(indexes["spoken"]),
            len(indexes["caption"]),
            how,
            (time.perf_counter() - started) * 1000,
        )
        try:
            return cls(settings, models, store, indexes, lock, cursor, snapshot_key=key, snapshot_due=how.startswith("rebuilt"))
        except BaseException:
            store.close()
            raise

    @staticmethod
    def _build_indexes(
        store: Catalog, indexes: dict[str, VectorIndex], directory: Path, key: snapshots.SnapshotKey
    ) -> tuple[int, str]:
        """Fill the in-process indexes: from the snapshot plus the changes committed after it when there is
        a usable one, else from every row of the catalog. Returns the change-feed cursor they are current
        to, and how they were filled (for the log)."""
        local = {m: i for m, i in indexes.items() if not i.shared}  # a shared store keeps its own vectors
        if not local:
            return store.feed_position(), "vectors kept by the shared vector store"
        from_snapshot = {m: i for m, i in local.items() if isinstance(i, FaissIndex)}
        cursor = snapshots.load(directory, key, from_snapshot) if from_snapshot else None
        if cursor is None:
            cursor = store.feed_position()  # before reading: writes committed meanwhile come again from the feed
            for modality, index in local.items():
                for ids, vectors in store.iter_embeddings(modality):
                    index.add(ids, vectors)
            return cursor, "rebuilt from the catalog"
        for modality, index in local.items():
            if modality not in from_snapshot:  # e.g. torch's exact index on CUDA: not snapshotted
                for ids, vectors in store.iter_embeddings(modality):
                    index.add(ids, vectors)
        changes = rows = 0
        for batch, cursor in store.pages_after(cursor):
            if batch:
                touched = sorted({c.row_id for c in batch})
                refresh_rows(store, local, touched)
                changes, rows = changes + len(batch), rows + len(touched)
        return cursor, f"loaded from the snapshot + {changes} newer changes ({rows} rows) replayed"

    def write_snapshot(self) -> dict | None:
        """Snapshot the in-process FAISS indexes now (the snapshot thread and close() call this)."""
        local = {m: i for m, i in self._indexes.items() if isinstance(i, FaissIndex)}
        if not local or self._snapshot_key is None:
            return None
        with self._snapshot_write:
            with self._write_lock:  # every change up to the cursor is in the indexes; later ones may be too
                cursor = self._feed.cursor if self._feed is not None else self._store.feed_position()
                self._dirty = 0
            return snapshots.write(self.settings.data_dir / "snapshots", self._snapshot_key, cursor, local)

    def write_pool_snapshot(self) -> float | None:
        """Snapshot the performs-well pool now (server/storage/pool_snapshot.py); the seconds it took, None
        when it is not snapshotted here, not loaded yet, or a re-ingest or delete is still reaching it."""
        with self._snapshot_write:
            with self._write_lock:  # no change commits meanwhile: the pool has applied every one up to the cursor
                if self._pool_behind:
                    return None
                cursor = self._feed.cursor if self._feed is not None else self._store.feed_position()
                snap = self._pool.snapshot(cursor)
            return None if snap is None else self._pool.write_snapshot(snap)

    def _pool_caught_up(self) -> None:
        with self._write_lock:
            self._pool_behind -= 1

    def _snapshot_loop(self, first_now: bool) -> None:
        wait = 0.0 if first_now else self.settings.snapshot_interval_s
        while not self._snapshot_stop.wait(wait):
            wait = self.settings.snapshot_interval_s
            if self._dirty or first_now:
                first_now = False
                try:
                    self.write_snapshot()
                except Exception:  # e.g. the disk is full: the previous snapshot stays, starts replay more
                    log.exception("writing the index snapshot failed; retrying in %.0f s", wait)
            if self._pool.changes:
                try:
                    self.write_pool_snapshot()
                except Exception:
                    log.exception("writing the pool snapshot failed; retrying in %.0f s", wait)

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
        if self._snapshotter is not None:
            self._snapshot_stop.set()
            self._snapshotter.join(timeout=60)
            if self._dirty:
                try:
                    self.write_snapshot()
                except Exception:
                    log.exception("writing the index snapshot at shutdown failed; the next start replays or rebuilds")
            if self._pool.changes:
                try:  # folded first, so the next start finds no counter changed after the snapshot
                    self._store.fold_engagement()
                    self.write_pool_snapshot()
                except Exception:
                    log.exception("writing the pool snapshot at shutdown failed; the next start reads more of the catalog")
        self.pipeline.close()
        for index in self._indexes.values():
            index.close()
        self._postings.close()
        self._store.close()
        if self._lock_file is not None:
            self._lock_file.release()

    # --- ingest -------------------------------------------------------------
    @contextmanager
    def ingest_slot(self) -> Iterator[None]:
        """Admission control: at most max_concurrent_ingests uploads are received and processed at once."""
        if not self._ingest_slots.acquire(blocking=False):
            raise Overloaded(
                f"the server is already processing {self.settings.max_concurrent_ingests} uploads "
                f"(max_concurrent_ingests); retry in a few seconds with backoff",
                limit="max_concurrent_ingests",
            )
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._ingest_slots.release()

    @property
    def ingests_in_flight(self) -> int:
        """Uploads holding an ingest slot right now."""
        return self._in_flight

    def upload_file(self) -> "tempfile._TemporaryFileWrapper":
        """A temporary file under the data dir for one upload; removed when closed."""
        return tempfile.NamedTemporaryFile(dir=self._tmp_dir, prefix="upload-", suffix=".bin")

    def ingest(
        self, meta: VideoMetadata, path: Path, bytes_received: int, receive_ms: float = 0.0, deadline: float | None = None
    ) -> IngestResult:
        validate_metadata(meta, self.settings)
        if bytes_received == 0:
            raise InvalidInput(f"the upload for {meta.video_id!r} is empty (0 bytes): send a complete video file "
                               f"(API clients: its bytes in chunk messages after the metadata)")
        timings: dict[str, float] = {"receive": round(receive_ms, 2)}
        a = self.pipeline.analyse(meta, path, timings, deadline)
        with timed(timings, "content_prior"):
            prior = self._prior_to_store(a.embedding, a.text_embeddings, meta.video_id)
        fp = a.fingerprint if a.fingerprint is not None and a.fingerprint.landmarks else None
        with ExitStack() as matching:
            if fp is not None:
                with timed(timings, "match_sound"):  # no lock held: this is where the time goes
                    looked_up = matching.enter_context(self._sounds.lookup(fp, limit=5))
            extraction = Extraction(
                media=a.media,
                sampling=a.sampling,
                frames_sampled=len(a.frames.frames),
                embedding_model=self.models.clip.name,
                embedding_dim=int(a.embedding.shape[0]),
                transcript=a.transcript,
                timings_ms=timings,
                landmarks=fp.landmarks if fp is not None else 0,
                queue_wait_ms=a.queue_wait_ms,
                batch_sizes=a.batch_sizes,
            )
            with self._write_lock, ExitStack() as deciding:  # a new sound's lock is held until its write commits
                link, found = deciding.enter_context(self._sounds.deciding(fp, looked_up)) if fp else (None, [])
                also = SoundIdentity.others(link, found) if link is not None else []
                with timed(timings, "store"):
                    written = self._store.upsert(
                        meta, extraction, a.embedding, a.frames.times_s, a.frame_embeddings, a.fingerprint, link,
                        a.text_embeddings, ship=self._ships, frame_dtype=self.settings.frame_embeddings, prior=prior,
                        also=also,
                    )
                rowid, replaced, sound_id = written.row, written.replaced, written.sound_id
                if self._feed is not None:
                    self._feed.own(written.change)
                if link is not None and sound_id is not None:
                    self._sounds.written(sound_id, link)
                with timed(timings, "index"):
                    ids = np.array([rowid])
                    for modality, vector in {"visual": a.embedding, **a.text_embeddings}.items():
                        index = self._indexes[modality]
                        if index.shared:
                            continue  # shipped below, from the committed row
                        if replaced:
                            index.remove(ids)
                        if vector is not None:
                            index.add(ids, vector[None, :])
                    self._dirty += 1
                    self._pool_behind += replaced  # until the pool has it (a pool snapshot waits for that)
            pending = False
            if self._ships:
                with timed(timings, "ship_vectors"):
                    pending = not self._ship_committed([rowid], written.change, f"video_id={meta.video_id}")
        if replaced:
            try:
                self._pool.reprofile(rowid)  # a member's pool entry holds the old embedding; its prior changed
            finally:
                self._pool_caught_up()
        uses = tuple(self._store.sound_uses(meta.video_id)) if sound_id is not None else ()
        matches = self._shared_by(list(uses), exclude_video=meta.video_id, limit=5)
        self.observer.stages(timings)
        extraction = dataclasses.replace(extraction, sound_id=sound_id, sounds=uses)
        new_sound = extraction.new_sound
        log.info(
            "ingested video_id=%s replaced=%s bytes=%d duration_s=%.2f frames=%d words=%d sound=%s new_sound=%s "
            "sound_matches=%d timings_ms=%s",
            meta.video_id,
            replaced,
            bytes_received,
            a.media.duration_s,
            len(a.frames.frames),
            len(a.transcript.text.split()),
            format_sound_id(sound_id),
            new_sound,
            len(matches),
            timings,
        )
        return IngestResult(meta.video_id, replaced, bytes_received, extraction, matches, vectors_pending=pending)

    def _apply_changes(self, changes: list[Change]) -> None:
        """Other replicas' writes, from the change feed, into this replica's in-process indexes: each changed
        row's vectors as the catalog holds them now (read under the write lock, so an older state never
        overwrites a newer local write). A shared store got them from their writer already."""
        with self._write_lock:
            rows = sorted({c.row_id for c in self._feed.foreign(changes)})
            local = {m: i for m, i in self._indexes.items() if not i.shared}
            if rows and local:
                refresh_rows(self._store, local, rows)
                self._dirty += 1
        # The pool needs nothing here: the writing replica republishes it when a member changes, and this
        # replica loads the new version after the poll.
        if rows:
            log.info("applied %d changes from other replicas (%d rows)", len(changes), len(rows))

    def _ship_committed(self, rows: list[int], change: int, what: str) -> bool:
        """Ship a committed write to the shared vector store now; False (logged) when the store does not
        answer: the write stays in the change feed, and the outbox ships it once the store is back."""
        try:
            self._ship_rows(rows, [change])
            return True
        except StorageUnavailable as e:
            log.warning("%s is committed but not yet in the vector store (the outbox ships it when the store is "
                        "back): %s", what, e)
            return False

    def _ship(self, changes: list[Change]) -> None:
        """The sweeper's shipping of changes a writer left unshipped."""
        self._ship_rows(sorted({c.row_id for c in changes}), [])

    def _ship_rows(self, rows: list[int], changes: list[int], rounds: int = 5) -> None:
        """Write the rows' committed state to the shared vector store, then mark `changes` shipped.

        Idempotent, and safe against other shippers of the same rows: a row whose latest change moved while
        it was being shipped is shipped again, so the last state committed is also the last one shipped."""
        shared = {m: i for m, i in self._indexes.items() if i.shared}
        pending = list(rows)
        for _ in range(rounds):
            before = self._store.latest_changes(pending)  # then the state: it is at least as new as `before`
            current = self._store.vectors(pending)
            for modality, index in shared.items():
                have = [r for r in pending if r in current and current[r].vectors[modality] is not None]
                gone = [r for r in pending if r not in have]
                if have:
                    index.add(np.array(have, dtype=np.int64), np.stack([current[r].vectors[modality] for r in have]),
                              [current[r].attrs for r in have])
                if gone:
                    index.remove(np.array(gone, dtype=np.int64))
            after = self._store.latest_changes(pending)
            pending = [r for r in pending if after.get(r) != before.get(r)]
            if not pending:
                break
        self._store.mark_shipped(changes)

    # --- engagement ---------------------------------------------------------
    def record_engagement(self, events: list[EngagementEvent]) -> EngagementResult:
        """Validate every event, then add the valid ones' counters (idempotently per event id) in one
        transaction, then refresh scores and the pool. Nothing invalid is ever stored."""
        now = datetime.now(timezone.utc)
        valid, rejected = [], []
        for e in events:
            checked, problem = check_event(e, self.settings, now)
            if checked is None:
                rejected.append((e.event_id, problem))
            else:
                valid.append(checked)
        with self._engagement_lock:  # the pool gets batches' counters in commit order
            accepted, duplicates, unknown, *_ = self._pool.record(valid)
        log.info("engagement accepted=%d duplicates=%d rejected=%d pool=%d", accepted, duplicates,
                 len(rejected) + len(unknown), len(self._pool))
        return EngagementResult(accepted, duplicates, rejected + unknown, len(self._pool), self._pool.threshold)

    # --- sounds -------------------------------------------------------------
    def _shared_by(self, uses: list[SoundUse], exclude_video: str | None, limit: int) -> list[SoundNeighbour]:
        """The videos sharing a stretch of each sound the query uses (server/sounds/sharing.py): its
        strongest use first and, within a sound, the oldest video first."""
        found = self._store.sharing([(u.sound_id, u.first, u.last) for u in uses], limit, exclude_video)
        out = []
        for u in uses:
            for _, video_id, other in found.get(u.sound_id, []):
                n = shared(u, other, video_id)
                if n is not None:
                    out.append(n)
        return out[:limit]

    def _pool_sharing(self, uses: list[SoundUse], exclude_row: int | None) -> dict[int, tuple[int, float]]:
        """Performing videos sharing a stretch of sound with the query: row -> (the sound, the confidence of
        the shared stretch), the same stretches SearchBySound reports."""
        if not uses:
            return {}
        found = self._store.sharing([(u.sound_id, u.first, u.last) for u in uses], limit=len(self._pool) + 1,
                                    pool_only=True)
        out: dict[int, tuple[int, float]] = {}
        for u in uses:
            for row, video_id, other in found.get(u.sound_id, []):
                n = shared(u, other, video_id)
                if n is not None and row != exclude_row and n.confidence > out.get(row, (0, 0.0))[1]:
                    out[row] = (u.sound_id, n.confidence)
        return out

    def _query_uses(self, fingerprint: Fingerprint | None, limit: int) -> list[SoundUse]:
        """The sounds an upload's audio matches, as uses (strongest first)."""
        if fingerprint is None or not len(fingerprint):
            return []
        return [use_of_match(m) for m in self._sounds.match(fingerprint, limit=limit)]

    def search_by_sound(
        self, video_id: str | None = None, path: Path | None = None, limit: int = 10, deadline: float | None = None
    ) -> list[SoundNeighbour]:
        """Videos that reuse the sound of an indexed video, or of an uploaded audio/video file (not stored)."""
        if limit < 1 or limit > self.settings.max_k:
            raise InvalidInput(f"limit={limit} is out of range; ask for 1 to {self.settings.max_k} matches")
        if video_id is not None:
            validate_video_id(video_id)
            stored = self._store.fingerprint(video_id)
            if stored is None:
                raise NotFound(f"video {video_id!r} is not indexed; ingest it first or check the id")
            if stored[1] is None:
                raise InvalidInput(f"video {video_id!r} has no audio track, so it has no sound to search by")
            return self._shared_by(self._store.sound_uses(video_id), exclude_video=video_id, limit=limit)
        assert path is not None
        fingerprint = self.pipeline.sound_fingerprint(path, deadline)
        return self._shared_by(self._query_uses(fingerprint, limit), exclude_video=None, limit=limit)

    def sound_stats(self, sound_id: str, window_s: float, sample: int = 10) -> tuple[SoundStats, list[str]]:
        sid = parse_sound_id(sound_id)
        if not self._store.sound_exists(sid):
            raise NotFound(f"sound {sound_id!r} does not exist; sound ids come from Ingest or ListSounds")
        stats = self._store.sound_stats(window_start(window_s), sound_id=sid, limit=1)
        if not stats:  # every video that used it was deleted or re-ingested with another sound
            return SoundStats(sid, "", "", 0, 0), []
        return stats[0], self._store.videos_of_sound(sid, sample)

    def list_sounds(self, window_s: float, limit: int) -> list[SoundStats]:
        """Sounds by how many videos used them within the window (then in total): trend counting."""
        if limit < 1 or limit > self.settings.max_k:
            raise InvalidInput(f"limit={limit} is out of range; ask for 1 to {self.settings.max_k} sounds")
        return self._store.sound_stats(window_start(window_s), limit=limit)

    # --- queries ------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchResult:
        k = query.k or 10
        if k < 1 or k > self.settings.max_k:
            raise InvalidInput(f"k={query.k} is out of range; ask for 1 to {self.settings.max_k} neighbours")
        target = query.target
        if target not in self._indexes:
            raise InvalidInput(f"target {target!r} is unknown; use visual, spoken or caption")
        visual = target == "visual"
        model_name = self.models.clip.name if visual else self.models.text.name
        dim = self.models.clip.dim if visual else self.models.text.dim
        exclude: int | None = None
        given = [q is not None for q in (query.video_id, query.text, query.embedding)]
        if sum(given) != 1:
            raise InvalidInput("a search needs exactly one of video_id, text or embedding")
        if query.video_id is not None:
            validate_video_id(query.video_id)
            exclude = self._store.row_id(query.video_id)
            if exclude is None:
                raise NotFound(f"video {query.video_id!r} is not indexed; ingest it first or check the id")
            vector = self._store.embedding(query.video_id, target)
            if vector is None:
                what = "speech" if target == "spoken" else "caption or hashtags"
                raise InvalidInput(f"video {query.video_id!r} has no {what}, so it cannot be searched by target {target}")
        elif query.text is not None:
            text = query.text.strip()
            if not text:
                raise InvalidInput("text query is empty; send a few words describing what to find")
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidInput(f"text query is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
            vector = (self.models.clip.embed_texts if visual else self.models.text.embed)([text])[0]
        else:
            vector = np.asarray(query.embedding, dtype=np.float32).reshape(-1)
            if vector.shape[0] != dim:
                raise InvalidInput(
                    f"embedding has {vector.shape[0]} values but the {target} index holds {dim}-d {model_name} embeddings"
                )
            norm = float(np.linalg.norm(vector))
            if not np.isfinite(norm) or norm == 0.0:
                raise InvalidInput("embedding must be finite and non-zero")
            vector = vector / norm
        index = self._indexes[target]
        if index.shared:  # one store for every replica: it filters on its pool-membership field
            size = len(self._pool) if query.performing_only else len(index)
            search = lambda q, n: index.search(q, n, performing_only=query.performing_only)  # noqa: E731
        else:  # in process: the pool has its own indexes
            index = self._pool.index(target) if query.performing_only else index
            size, search = len(index), index.search
        fetch = min(k + (1 if exclude is not None else 0), max(size, 1))
        scores, ids = search(vector[None, :], fetch)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and i != exclude][:k]
        info = self._store.summaries([i for i, _ in hits])
        neighbours = [
            Neighbour(video_id=info[i][0], score=s, creator_id=info[i][1], caption=info[i][2], duration_s=info[i][3])
            for i, s in hits
            if i in info  # deleted between the index lookup and this read
        ]
        return SearchResult(neighbours, model_name, size)

    # --- routing ------------------------------------------------------------
    def route(
        self,
        options: routing.RouteOptions,
        video_id: str | None = None,
        upload: tuple[VideoMetadata, Path, int] | None = None,
        store: bool = False,
        deadline: float | None = None,
    ) -> tuple[routing.RouteResult, IngestResult | None]:
        """Performing neighbours of an indexed video, or of an upload (processed without being stored
        unless `store`). Returns the routing and, for a stored upload, its ingest result."""
        if options.k < 1 or options.k > self.settings.max_k:
            raise InvalidInput(f"k={options.k} is out of range; ask for 1 to {self.settings.max_k} neighbours")
        bad = [m for m in options.weights if m not in routing.MODALITIES]
        if bad:
            raise InvalidInput(f"unknown modality weights {bad}; use {', '.join(routing.MODALITIES)}")
        ingested = None
        if upload is not None and store:
            meta, path, size = upload
            ingested = self.ingest(meta, path, size, deadline=deadline)
            video_id, upload = meta.video_id, None
        if video_id is not None:
            validate_video_id(video_id)
            row = self._store.row_id(video_id)
            profiles = self._store.profiles([row]) if row is not None else []
            if not profiles:
                raise NotFound(f"video {video_id!r} is not indexed; ingest it first, or route an upload")
            p = profiles[0]
            uses = self._store.sound_uses(video_id)
            query = routing.RouteQuery(p.visual, p.spoken, p.caption, {}, p.creator_id, exclude_row=row)
        else:
            assert upload is not None
            meta, path, size = upload
            validate_metadata(meta, self.settings, require_id=False)
            if size == 0:
                raise InvalidInput("the route upload is empty (0 bytes): send a complete video file (API clients: its "
                                   "bytes in chunk messages after the query)")
            a = self.pipeline.analyse(meta, path, {}, deadline)
            uses = self._query_uses(a.fingerprint, limit=100)
            query = routing.RouteQuery(
                a.embedding, a.text_embeddings["spoken"], a.text_embeddings["caption"], {}, meta.creator_id
            )
        if options.learned:  # --route-weights learned and the request gave none
            learned = self._priors.learned_weights()
            if learned:
                sound = routing.DEFAULT_WEIGHTS["sound"]
                total = sum(learned.values())
                options = dataclasses.replace(
                    options, weights={**{m: (1 - sound) * w / total for m, w in learned.items()}, "sound": sound})
        content_prior = self._live_prior(query.visual, query.spoken, query.caption, query.exclude_row)
        sharing = self._pool_sharing(uses, query.exclude_row)
        with self._pool.reading() as view:  # held still against a concurrent engagement batch
            if sharing:
                query = dataclasses.replace(query, sound_confidence={r: c for r, (_, c) in sharing.items()},
                                            shared_sound={r: snd for r, (snd, _) in sharing.items()})

            try:
                result = routing.route(view, query, options, performance=self._pool.scores_now)
            except ValueError as e:
                raise InvalidInput(str(e)) from None
        return dataclasses.replace(result, content_prior=content_prior), ingested

    # --- the cold-start loop --------------------------------------------------------
    def outlook(self, video_id: str) -> engagement.Performance:
        """An indexed video's performance with its content prior and posterior."""
        validate_video_id(video_id)
        row = self._store.row_id(video_id)
        profiles = self._store.profiles([row]) if row is not None else []
        if not profiles:
            raise NotFound(f"video {video_id!r} is not indexed; ingest it first or check the id")
        return self._outlook(row, profiles[0])

    def _live_prior(self, visual, spoken, caption, exclude: int | None) -> Prior | None:
        """The content prior computed now; None (logged) while the vector store it searches is unavailable, so
        Route and GetVideo keep answering from what they hold."""
        try:
            return self._priors.prior({"visual": visual, "spoken": spoken, "caption": caption}, exclude=exclude)
        except StorageUnavailable as e:
            log.warning("content prior unavailable: %s", e)
            return None

    def _prior_to_store(self, visual: np.ndarray, text: dict, video_id: str) -> tuple[float, float, str] | None:
        """(prior rate, its weight in impressions, the prior as JSON) to store with a video: what its score
        smooths toward. None while the pool is still loading at start (ingests do not wait for it) and while
        the prior is not calibrated (too few engaged videos): the score then smooths toward the corpus mean."""
        if not self._pool.wait_ready(0) or self._priors.calibration()[0].samples < MIN_CALIBRATION:
            return None
        try:  # a re-ingest is not its own neighbour
            p = self._priors.prior({"visual": visual, "spoken": text.get("spoken"), "caption": text.get("caption")},
                                   exclude=self._store.row_id(video_id))
        except StorageUnavailable as e:  # the vector store is down: the video is still stored (and shipped later)
            log.warning("no content prior stored for this ingest: %s", e)
            return None
        if not p.calibrated:
            return None
        shape, rate = p.gamma()
        weight = min(rate, PRIOR_WEIGHT_CAP * self.settings.prior_impressions)  # never outweighs 10x the usual smoothing
        return shape / rate, weight, json.dumps(dataclasses.asdict(p))

    def _outlook(self, row: int, profile) -> engagement.Performance:
        """Performance with the content prior (as stored with the video, else computed now) and posterior."""
        perf = self._pool.performance(row)
        stored = self._store.stored_prior(row)
        if stored is not None and stored[2]:
            content_prior = Prior.from_json(stored[2])
        else:
            content_prior = self._live_prior(profile.visual, profile.spoken, profile.caption, row)
            if content_prior is None:  # the vector store is down: counters and score only
                return perf
        c = perf.counters
        # its rate against the threshold, both decayed to now
        threshold = perf.pool_threshold / max(engagement.decay(c, self.settings, datetime.now(timezone.utc)), 1e-300)
        shape, rate = content_prior.gamma()
        if stored is not None:  # the weight the score uses (capped)
            shape, rate = stored[0] * stored[1], stored[1]
        post = posterior.posterior(shape, rate, engagement.weighted(c, self.settings), float(c.impressions), threshold)
        return dataclasses.replace(perf, content_prior=content_prior, posterior=post)

    def rollout(self, video_id: str, audience: int = 0) -> tuple[rollout.Decision, engagement.Performance]:
        """WIDEN, HOLD or STOP for a video in its rollout (server/coldstart/rollout.py)."""
        if audience < 0:
            raise InvalidInput(f"audience must be >= 0 impressions (got {audience}); 0 = the tier its impressions reached")
        perf = self.outlook(video_id)
        if perf.posterior is None:
            raise StorageUnavailable(
                f"video {video_id!r} has no stored content prior and the vector store its prior is computed from is "
                f"unavailable; retry when it is back")
        s = self.settings
        decision = rollout.decide(perf.posterior, int(perf.counters.impressions), s.tiers(), audience, s.rollout_widen_at,
                                  s.rollout_stop_below, s.rollout_min_impressions)
        return decision, perf

    def get(self, video_id: str, include_embeddings: bool = False) -> VideoRecord:
        validate_video_id(video_id)
        record = self._store.get(video_id, include_embeddings)
        row = self._store.row_id(video_id)
        if record is None or row is None:
            raise NotFound(f"video {video_id!r} is not indexed; ingest it first or check the id")
        profiles = self._store.profiles([row])
        performance = self._outlook(row, profiles[0]) if profiles else self._pool.performance(row)
        return dataclasses.replace(record, performance=performance)

    def delete(self, video_id: str) -> None:
        validate_video_id(video_id)
        with self._write_lock:
            deleted = self._store.delete(video_id, ship=self._ships)
            if deleted is None:
                raise NotFound(f"video {video_id!r} is not indexed, so there is nothing to delete")
            rowid, change = deleted
            if self._feed is not None:
                self._feed.own(change)
            for index in self._indexes.values():
                if not index.shared:
                    index.remove(np.array([rowid]))
            self._dirty += 1
            self._pool_behind += 1
        try:
            self._pool.forget(rowid)
        finally:
            self._pool_caught_up()
        if self._ships:
            self._ship_committed([rowid], change, f"delete of video_id={video_id}")
        # The video's sound and its postings stay: the sound id remains valid for other videos and re-ingests.
        log.info("deleted video_id=%s", video_id)

    @property
    def size(self) -> int:
        return len(self._indexes["visual"])

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Whether the performs-well pool, loaded in the background at open, is ready (waits up to `timeout`)."""
        return self._pool.wait_ready(timeout)

    def index_sizes(self) -> dict[str, int]:
        """Vectors per index: the three modalities, the pool, and sound-index postings."""
        return {**{m: len(i) for m, i in self._indexes.items()}, "pool": len(self._pool), "sound_postings": self._sounds.postings}

    def replication(self) -> dict[str, float] | None:
        """For metrics, on a shared catalog or vector store: seconds since the change feed was last read (how
        stale this replica's view may be), changes read, and changes not yet shipped to the vector store."""
        if self._feed is None:
            return None
        return {
            "seconds_since_poll": time.monotonic() - self._feed.last_poll,
            "changes_read": self._feed.read,
            "unshipped": self._store.unshipped_count() if self._ships else 0,
        }

    @property
    def pool_size(self) -> int:
        return len(self._pool)

    @property
    def index_description(self) -> str:
        return self._indexes["visual"].description
