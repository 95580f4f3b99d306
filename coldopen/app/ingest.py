"""Ingest and delete: admission control, an upload's analysis, and its write: the catalog commit (with its
sound links, decided under the write lock: sounds/identity.py), the in-process indexes, the pool, and the
shared vector store when there is one."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from coldopen.app.core import Core
from coldopen.app.outlook import Outlook
from coldopen.app.replication import Replication
from coldopen.app.sounds import SoundQueries
from coldopen.app.validation import validate_metadata
from coldopen.domain.errors import InvalidInput, NotFound, Overloaded
from coldopen.domain.modalities import CAPTION, SPOKEN, VISUAL
from coldopen.domain.sounds import SoundLink, format_sound_id
from coldopen.domain.timing import timed
from coldopen.domain.videos import Extraction, IngestResult, VideoMetadata, validate_video_id
from coldopen.engine.pipeline import Analysis
from coldopen.sounds.identity import Lookup, SoundIdentity
from coldopen.sounds.sharing import use_of_match
from coldopen.storage.catalog import Written

log = logging.getLogger(__name__)


class Ingest:
    def __init__(self, core: Core, replication: Replication, sounds: SoundQueries, outlook: Outlook):
        self._core = core
        self._replication = replication
        self._sounds = sounds
        self._outlook = outlook
        self._slots = threading.BoundedSemaphore(core.settings.max_concurrent_ingests)
        self.in_flight = 0  # changed only while holding a slot; read for monitoring and tests

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Admission control: at most max_concurrent_ingests uploads are received and processed at once."""
        if not self._slots.acquire(blocking=False):
            raise Overloaded(
                f"the server is already processing {self._core.settings.max_concurrent_ingests} uploads "
                f"(max_concurrent_ingests); retry in a few seconds with backoff",
                limit="max_concurrent_ingests",
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()

    def upload_file(self) -> IO[bytes]:
        """A temporary file under the data dir for one upload; removed when closed."""
        return tempfile.NamedTemporaryFile(dir=self._core.settings.data_dir / "tmp", prefix="upload-", suffix=".bin")

    def ingest(
        self, meta: VideoMetadata, path: Path, bytes_received: int, receive_ms: float = 0.0, deadline: float | None = None
    ) -> IngestResult:
        core = self._core
        validate_metadata(meta, core.settings)
        if bytes_received == 0:
            raise InvalidInput(f"the upload for {meta.video_id!r} is empty (0 bytes): send a complete video file "
                               f"(API clients: its bytes in chunk messages after the metadata)")
        timings: dict[str, float] = {"receive": round(receive_ms, 2)}
        a = core.pipeline.analyse(meta, path, timings, deadline)
        fp = a.fingerprint if a.fingerprint is not None and a.fingerprint.landmarks else None
        extraction = Extraction(
            media=a.media, sampling=a.sampling, frames_sampled=len(a.frames.frames),
            frames_skipped=max(0, a.frames.sampled - len(a.frames.frames)),
            embedding_model=core.models.clip.name, embedding_dim=int(a.embedding.shape[0]), transcript=a.transcript,
            timings_ms=timings, landmarks=fp.landmarks if fp is not None else 0, queue_wait_ms=a.queue_wait_ms,
            batch_sizes=a.batch_sizes,
        )
        with ExitStack() as matching:
            looked_up = None
            if fp is not None:
                with timed(timings, "match_sound"):  # no lock held: this is where the time goes
                    looked_up = matching.enter_context(core.sounds.lookup(fp, limit=5))
            with timed(timings, "content_prior"):  # from its vectors, the sounds it was just matched to, its creator
                vectors = {VISUAL: a.embedding, SPOKEN: a.text_embeddings.get(SPOKEN), CAPTION: a.text_embeddings.get(CAPTION)}
                matched = [use_of_match(m) for m in looked_up.matches] if looked_up is not None else []
                prior = self._outlook.to_store(vectors, matched, meta)
            written = self._write(meta, a, extraction, prior, looked_up, timings)
            pending = False
            if core.ships:
                with timed(timings, "ship_vectors"):
                    pending = not self._replication.ship_committed([written.row], written.change,
                                                                   f"video_id={meta.video_id}")
        if written.replaced:
            try:
                core.pool.reprofile(written.row)  # a member's pool entry holds the old embedding; its prior changed
            finally:
                core.pool_caught_up()
        uses = tuple(core.store.sounds.uses(meta.video_id)) if written.sound_id is not None else ()
        matches = self._sounds.shared_by(list(uses), exclude_video=meta.video_id, limit=5)
        core.observer.stages(timings)
        extraction = dataclasses.replace(extraction, sound_id=written.sound_id, sounds=uses)
        log.info(
            "ingested video_id=%s replaced=%s bytes=%d duration_s=%.2f frames=%d words=%d sound=%s new_sound=%s "
            "sound_matches=%d timings_ms=%s", meta.video_id, written.replaced, bytes_received, a.media.duration_s,
            len(a.frames.frames), len(a.transcript.text.split()), format_sound_id(written.sound_id),
            extraction.new_sound, len(matches), timings,
        )
        return IngestResult(meta.video_id, written.replaced, bytes_received, extraction, matches, vectors_pending=pending)

    def _write(self, meta: VideoMetadata, a: Analysis, extraction: Extraction, prior: tuple[float, float, str] | None,
               looked_up: Lookup | None, timings: dict[str, float]) -> Written:
        """Under the write lock: decide the sound links, commit the video, then index it in process."""
        core = self._core
        with core.write_lock, ExitStack() as deciding:  # a new sound's lock is held until its write commits
            link: SoundLink | None = None
            also = []
            if looked_up is not None:
                assert a.fingerprint is not None
                link, found = deciding.enter_context(core.sounds.deciding(a.fingerprint, looked_up))
                also = SoundIdentity.others(link, found)
            with timed(timings, "store"):
                written = core.store.videos.upsert(
                    meta, extraction, a.embedding, a.frames.times_s, a.frame_embeddings, a.fingerprint, link,
                    a.text_embeddings, ship=core.ships, frame_dtype=core.settings.frame_embeddings, prior=prior,
                    also=also,
                )
            if core.feed is not None:
                core.feed.own(written.change)
            if link is not None and written.sound_id is not None:
                core.sounds.written(written.sound_id, link)
            with timed(timings, "index"):
                ids = np.array([written.row])
                for modality, vector in {"visual": a.embedding, **a.text_embeddings}.items():
                    index = core.indexes[modality]
                    if index.shared:
                        continue  # shipped after the lock, from the committed row
                    if written.replaced:
                        index.remove(ids)
                    if vector is not None:
                        index.add(ids, vector[None, :])
                core.dirty += 1
                core.pool_behind += written.replaced  # until the pool has it (a pool snapshot waits for that)
        return written

    def delete(self, video_id: str) -> None:
        core = self._core
        validate_video_id(video_id)
        with core.write_lock:
            deleted = core.store.videos.delete(video_id, ship=core.ships)
            if deleted is None:
                raise NotFound(f"video {video_id!r} is not indexed, so there is nothing to delete")
            rowid, change = deleted
            if core.feed is not None:
                core.feed.own(change)
            for index in core.local_indexes().values():
                index.remove(np.array([rowid]))
            core.dirty += 1
            core.pool_behind += 1
        try:
            core.pool.forget(rowid)
        finally:
            core.pool_caught_up()
        if core.ships:
            self._replication.ship_committed([rowid], change, f"delete of video_id={video_id}")
        # The video's sound and its postings stay: the sound id remains valid for other videos and re-ingests.
        log.info("deleted video_id=%s", video_id)
