"""Decode workers: probe, sample frames and decode audio for one upload, in a process pool.

Decoding is CPU-bound and holds the GIL in places, so it runs in worker processes (spawn start
method: PyAV hangs in fork-started pools) while the request threads and the model batchers stay
in the server process. A worker that dies on a hostile file (a decoder crash) breaks only the pool:
a fresh pool replaces it, the jobs that were in flight are tried once more, and a file that kills the
fresh pool too gets INVALID_ARGUMENT naming the crash.
``workers=0`` decodes in the calling thread (handy for tests and debugging).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coldopen.domain.errors import InvalidInput
from coldopen.domain.timing import timed
from coldopen.engine import media, nvdec, repeats

log = logging.getLogger(__name__)

AUDIO_ONLY = "audio"


@dataclass(frozen=True)
class DecodeJob:
    path: str
    mode: str              # uniform | keyframes | auto | audio (sound search: audio only, no frames)
    fps: float
    max_frames: int
    short_side: int        # shrink frames to this shorter side as they are decoded (0 = keep)
    limits: media.Limits = media.Limits()
    max_decoded_frames: int = 1 << 62  # auto sampling: most frames decoded per clip
    deadline: float | None = None      # time.monotonic() past which the worker gives up (DeadlineExceeded)
    skip_threshold: float = 0.0        # frames this close to the last kept one are skipped (engine/repeats.py)
    skip_max_pan: float = 0.0          # ... after undoing a pan of at most this fraction of the frame's side
    decoder: str = "cpu"               # cpu | nvdec | auto (engine/nvdec.py: NVDEC, the CPU per clip where it cannot)


@dataclass(frozen=True)
class DecodedClip:
    info: media.MediaInfo
    frames: media.SampledFrames
    mode: str                       # the sampling mode actually used
    audio: np.ndarray | None        # 16 kHz mono float32, None without an audio track
    timings_ms: dict[str, float] = field(default_factory=dict)


def decode_clip(job: DecodeJob) -> DecodedClip:
    """Everything the models need from one file. Runs in a worker process (or inline)."""
    timings: dict[str, float] = {}
    path = Path(job.path)
    audio_only = job.mode == AUDIO_ONLY
    with timed(timings, "probe"):
        info = media.probe(path, job.limits, require_video=not audio_only)
    if audio_only:
        if not info.has_audio:
            raise InvalidInput(f"the upload has no audio track (container {info.container}); send a file with sound")
        sampled, mode = media.SampledFrames([], [], 0, 0, 0), AUDIO_ONLY
    else:
        with timed(timings, "decode_frames"):
            sampled, mode = nvdec.sample(
                path, info, job.mode, job.fps, job.max_frames, job.short_side, job.max_decoded_frames, job.deadline,
                job.decoder,
            )
            sampled = repeats.skip_repeats(sampled, job.skip_threshold, job.skip_max_pan)
    audio = None
    if info.has_audio:
        with timed(timings, "decode_audio"):
            audio = media.decode_audio(path, job.limits.max_duration_s, job.deadline)
    return DecodedClip(info=info, frames=sampled, mode=mode, audio=audio, timings_ms=timings)


def default_workers() -> int:
    return max(1, min(16, os.cpu_count() or 1))


class DecodePool:
    def __init__(self, workers: int, fn=decode_clip, log_level: str = "WARNING", log_json: bool = False):
        self.workers = workers
        self._log = (log_level, log_json)
        self._fn = fn  # a top-level function (pickled by name into the workers)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self.crashes = 0

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init, initargs=(os.getpid(), *self._log),
                )
            return self._pool

    def decode(self, job: DecodeJob, timeout: float | None = None) -> DecodedClip:
        if self.workers == 0:
            return self._fn(job)
        # A dead worker breaks every job in flight in its pool, not only the culprit's: each is tried
        # once more in a fresh pool, and a file that kills that one too is the culprit.
        for attempt in (1, 2):
            pool = self._executor()
            future = pool.submit(self._fn, job)
            try:
                return future.result(timeout)
            except FuturesTimeout:
                # Past the deadline: a job still queued is dropped; a running one stops itself at its
                # next deadline check (the job carries the deadline), so the worker is freed either way.
                future.cancel()
                raise
            except BrokenProcessPool:
                with self._lock:
                    if self._pool is pool:  # the first request to notice replaces the pool
                        self._pool = None
                        self.crashes += 1
                pool.shutdown(wait=False)
                log.error("a decode worker died while decoding %s (attempt %d); the pool was restarted", job.path, attempt)
        raise InvalidInput(
            "the decoder crashed on this upload twice; the file is corrupt or hostile: re-encode it "
            "(H.264/AAC in MP4) and retry"
        )

    def warm_up(self) -> None:
        """Start the worker processes now rather than on the first upload."""
        if self.workers:
            pool = self._executor()
            list(pool.map(_noop, range(self.workers)))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _noop(_: int) -> None:
    return None


def _worker_init(parent_pid: int, log_level: str, log_json: bool) -> None:
    """Worker initializer: log as the server does (JSON lines with --json), and exit with the server."""
    from coldopen.ops import logs

    logs.configure(log_level, log_json)
    _exit_with_parent(parent_pid)


def _exit_with_parent(parent_pid: int) -> None:
    """Exit as soon as the server process is gone, however it died.

    A spawn worker holds both ends of its job queue's pipe, so it never sees end-of-file when the server
    is killed with SIGKILL, and would sit orphaned for ever. Polling the parent pid is portable (prctl's
    PDEATHSIG is Linux-only, and fires when the *thread* that started the worker ends, which in a thread
    pool is not the server's death).
    """

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=watch, name="coldopen-parent-watch", daemon=True).start()

