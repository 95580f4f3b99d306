"""The ingest pipeline engine: decode in worker processes, models in cross-request batchers.

One upload's path through it (all on the request's thread, which mostly waits):

    decode pool (probe, sample frames, shrink, 16 kHz audio)
      -> CLIP batcher (frames of many uploads per image-tower call)     } in parallel
      -> Whisper batcher (30-s windows of many uploads per generate)    }
      -> fingerprint batcher (spectrograms of many uploads per call)    }
      -> text batcher (transcript and caption sentence embeddings)

Every stage records its wall time in the request's timings, and each batcher reports the batch
sizes the request rode in, so the Ingest reply and the log show where time went.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FuturesTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coldopen.config.settings import Settings
from coldopen.domain.errors import DeadlineExceeded
from coldopen.domain.media import MediaInfo
from coldopen.domain.sounds import Fingerprint
from coldopen.domain.timing import timed
from coldopen.domain.transcripts import Transcript
from coldopen.domain.videos import VideoMetadata
from coldopen.engine import media
from coldopen.engine.batching import Batcher, BatcherStats, BatchReport
from coldopen.engine.decode import AUDIO_ONLY, DecodedClip, DecodeJob, DecodePool, default_workers
from coldopen.engine.media import SampledFrames
from coldopen.models.clip import video_embedding
from coldopen.models.whisper import WINDOW_S, WindowTranscript, split_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Analysis:
    """Everything the models made of one upload; nothing is stored yet."""

    media: MediaInfo
    frames: SampledFrames
    sampling: str
    frame_embeddings: np.ndarray
    embedding: np.ndarray
    transcript: Transcript
    fingerprint: Fingerprint | None
    text_embeddings: dict[str, np.ndarray | None]
    queue_wait_ms: dict[str, float] = dataclasses.field(default_factory=dict)  # model stage -> wait before its first batch
    batch_sizes: dict[str, float] = dataclasses.field(default_factory=dict)  # model stage -> mean batch it rode in


def caption_text(meta: VideoMetadata) -> str:
    """What the caption embedding reads: the caption and the hashtags as words."""
    return " ".join([meta.caption.strip(), *(h.replace("_", " ") for h in meta.hashtags)]).strip()


class Pipeline:
    def __init__(self, settings: Settings, models, on_batch=None):
        self.settings = settings
        self.models = models
        workers = default_workers() if settings.decode_workers < 0 else settings.decode_workers
        self.decoder = DecodePool(workers, log_level=settings.log_level, log_json=settings.log_json)
        self._limits = media.Limits(
            settings.max_duration_s, settings.max_pixels, settings.max_audio_channels, settings.max_audio_sample_rate
        )
        wait = settings.batch_max_wait_ms / 1000.0
        depth = settings.batch_queue_depth

        def batcher(name, fn, size):
            return Batcher(name, fn, max_batch=size, max_wait_s=wait, max_queue=size * depth, on_batch=on_batch)

        # Whisper and fingerprint items are 30-s audio windows (bounded memory per batch, whatever the clips' length).
        self.clip = batcher("clip", models.clip.embed_frames, models.clip.batch_size)
        self.whisper = batcher("whisper", self._transcribe, settings.whisper_batch_size)
        self.fingerprint = batcher("fingerprint", models.fingerprinter.fingerprint_windows, settings.fingerprint_batch_size)
        self.text = batcher("text", models.text.embed, settings.text_batch_size)
        self._check_capacity()

    def _check_capacity(self) -> None:
        """Refuse to start when one upload within the limits could not fit a model's queue (it would fail every time)."""
        s = self.settings
        windows = math.ceil(s.max_duration_s / WINDOW_S) + 1
        needs = {
            "clip": (s.max_frames, "max_frames"),
            "whisper": (windows, "max_duration_s"),
            "fingerprint": (windows, "max_duration_s"),
            "text": (2, ""),
        }
        problems = []
        for b in self.batchers:
            need, setting = needs[b.name]
            if need > b.capacity:
                problems.append(
                    f"{setting}={getattr(s, setting)} needs {need} {b.name} items per upload but the {b.name} queue holds "
                    f"{b.capacity} ({b.name} batch size x batch_queue_depth {s.batch_queue_depth}): lower {setting} or "
                    f"raise the batch size or batch_queue_depth"
                )
        if problems:
            self.close()
            raise ValueError("invalid settings: " + "; ".join(problems))

    @property
    def batchers(self) -> tuple[Batcher, ...]:
        return (self.clip, self.whisper, self.fingerprint, self.text)

    def _transcribe(self, items: list[tuple[np.ndarray, str]]) -> list[WindowTranscript]:
        windows = self.models.whisper.transcribe_windows(items)
        fallbacks = sum(w.fallback for w in windows)
        if fallbacks:
            log.info("whisper batch: %d of %d windows re-decoded by the sequential path", fallbacks, len(windows))
        return windows

    def warm_up(self) -> None:
        self.decoder.warm_up()

    def stats(self) -> list[BatcherStats]:
        return [b.stats() for b in self.batchers]

    def close(self) -> None:
        for b in self.batchers:
            b.close()
        self.decoder.close()

    def decode(
        self, path: Path, timings: dict[str, float], deadline: float | None = None, mode: str | None = None
    ) -> DecodedClip:
        s = self.settings
        job = DecodeJob(
            str(path),
            mode or s.sampling,
            s.sample_fps,
            s.max_frames,
            self.models.clip.input_size,
            self._limits,
            s.max_decoded_frames,
            deadline,
            skip_threshold=s.frame_skip_threshold,
            skip_max_pan=s.frame_skip_max_pan,
            decoder=s.decoder,
        )
        with timed(timings, "decode"), _deadline_stage(deadline, "decoding"):
            decoded = self.decoder.decode(job, _left(deadline))
        timings.update(decoded.timings_ms)
        return decoded

    def enqueue_fingerprint(self, audio: np.ndarray) -> Callable[[float | None], tuple[Fingerprint, BatchReport]]:
        """Queue a clip's audio windows on the fingerprint batcher; call the result with a timeout to get it."""
        fp = self.models.fingerprinter
        ticket = self.fingerprint.enqueue(fp.split(audio))

        def result(timeout: float | None) -> tuple[Fingerprint, BatchReport]:
            parts, report = ticket.result(timeout)
            return fp.merge(parts, audio.size / media.AUDIO_SAMPLE_RATE), report

        return result

    def sound_fingerprint(self, path: Path, deadline: float | None = None) -> Fingerprint:
        """The fingerprint of an uploaded audio or video file (sound search): the same decode pool, limits
        and deadline as an ingest, audio only."""
        decoded = self.decode(path, {}, deadline, mode=AUDIO_ONLY)
        audio = decoded.audio if decoded.audio is not None else np.zeros(0, np.float32)
        with _deadline_stage(deadline, "fingerprinting"):
            return self.enqueue_fingerprint(audio)(_left(deadline))[0]

    def analyse(self, meta: VideoMetadata, path: Path, timings: dict[str, float], deadline: float | None = None) -> Analysis:
        """`deadline` (time.monotonic() seconds): past it, DeadlineExceeded names the stage it hit, and the
        work this upload still had queued on the batchers is dropped. Each model stage's timing is its own
        (the batches it rode in); its wait for them is in queue_wait_ms."""
        decoded = self.decode(path, timings, deadline)
        audio = decoded.audio if decoded.audio is not None and decoded.audio.size else None
        waits: dict[str, float] = {}
        batches: dict[str, float] = {}

        def report(stage: str, r: BatchReport) -> None:
            timings[stage], waits[stage], batches[stage] = r.busy_ms, r.wait_ms, round(r.mean_batch, 1)

        # Queue every model's work at once; the batchers run concurrently with each other.
        clip_ticket = self.clip.enqueue(decoded.frames.frames)
        whisper_ticket = (
            self.whisper.enqueue([(w, meta.language_hint) for w in split_windows(audio)]) if audio is not None else None
        )
        fp_result = self.enqueue_fingerprint(audio) if audio is not None else None
        with _deadline_stage(deadline, "CLIP embedding"):
            frame_embeddings, clip_report = clip_ticket.result(_left(deadline))
        frame_embeddings = np.asarray(frame_embeddings, dtype=np.float32)
        report("embed_frames", clip_report)
        transcript = Transcript(text="", language="", language_probability=0.0, model=self.models.whisper.name)
        fingerprint = None
        if whisper_ticket is not None and fp_result is not None:
            with _deadline_stage(deadline, "transcription"):
                windows, whisper_report = whisper_ticket.result(_left(deadline))
            transcript = self.models.whisper.join(windows)
            report("transcribe", whisper_report)
            with _deadline_stage(deadline, "fingerprinting"):
                fingerprint, fp_report = fp_result(_left(deadline))
            report("fingerprint", fp_report)
        texts = {"caption": caption_text(meta), "spoken": transcript.text.strip()}
        present = {m: t for m, t in texts.items() if t}
        with timed(timings, "embed_text"), _deadline_stage(deadline, "text embedding"):
            vectors, _ = self.text.enqueue(list(present.values())).result(_left(deadline))
        by_modality = dict(zip(present, vectors))
        return Analysis(
            media=dataclasses.replace(
                decoded.info, width=decoded.frames.width, height=decoded.frames.height, rotation=decoded.frames.rotation
            ),
            frames=decoded.frames,
            sampling=decoded.mode,
            frame_embeddings=frame_embeddings,
            embedding=video_embedding(frame_embeddings, decoded.frames.stands_for or None),
            transcript=transcript,
            fingerprint=fingerprint,
            text_embeddings={m: by_modality.get(m) for m in texts},
            queue_wait_ms=waits,
            batch_sizes=batches,
        )


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


@contextmanager
def _deadline_stage(deadline: float | None, stage: str):
    try:
        yield
    except (TimeoutError, FuturesTimeout):
        raise DeadlineExceeded.during(stage) from None
