"""The four models a server runs, loaded from the settings (each family's own `load` says how)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from coldopen.config.settings import Settings
from coldopen.models.clip import ClipEmbedder, ClipSpec, resolve_device
from coldopen.models.fingerprint import Fingerprinter
from coldopen.models.text import TextEmbedder, TextSpec
from coldopen.models.whisper import WhisperSpec, WhisperTranscriber

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Models:
    clip: ClipEmbedder
    whisper: WhisperTranscriber
    fingerprinter: Fingerprinter
    text: TextEmbedder

    @classmethod
    def load(cls, settings: Settings) -> Models:
        clip_threads, whisper_threads = thread_budget(settings.clip_precision, settings.clip_threads,
                                                      settings.cpu_threads, usable_cores())
        if (clip_threads, whisper_threads) != (settings.clip_threads, settings.cpu_threads):
            log.info("CPU threads: %d for CLIP int8, %d for Whisper (the cores split between them; --clip-threads "
                     "and --cpu-threads choose)", clip_threads, whisper_threads)
        clip = ClipEmbedder.load(
            ClipSpec(settings.clip_model, settings.clip_pretrained, settings.device, settings.clip_batch_size,
                     settings.clip_precision, clip_threads, settings.data_dir / "models")
        )
        whisper = WhisperTranscriber.load(
            WhisperSpec(
                model=settings.whisper_model,
                device=settings.device,
                compute_type=settings.whisper_compute_type,
                beam_size=settings.whisper_beam_size,
                cpu_threads=whisper_threads,
            )
        )
        device = resolve_device(settings.device)
        return cls(
            clip=clip,
            whisper=whisper,
            fingerprinter=Fingerprinter.load(device, speed_search=settings.sound_speed_search == "on"),
            text=TextEmbedder.load(TextSpec(settings.text_model, device)),
        )

    def dims(self) -> dict[str, int]:
        """Each embedded modality's vector width."""
        return {"visual": self.clip.dim, "spoken": self.text.dim, "caption": self.text.dim}


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. a container's cpuset), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_budget(clip_precision: str, clip_threads: int, whisper_threads: int, cores: int) -> tuple[int, int]:
    """CLIP's and Whisper's CPU threads (0 = the library's default, every core).

    Threads set by the operator are kept. With both left at 0 and CLIP int8 (ONNX Runtime), the cores are
    split: half to CLIP, the rest to Whisper (CTranslate2). An upload's frames and its audio windows are
    embedded and transcribed at the same time, and two libraries each spinning a thread per core fight
    over them: on 2 cores the int8 service ingested 20.1 video-s/s split against 16.3 with both on every
    core (median of 3 alternated runs; +17-23% over three such runs; Whisper's greedy decode is even faster
    on 1 thread than on 2).
    torch fp32 CLIP gains nothing from the split there (13.0 vs 13.6), so it keeps its defaults
    (benchmarks/RESULTS.md, 2026-12-06, "CLIP and Whisper on their own cores").
    """
    if clip_threads or whisper_threads or clip_precision != "int8" or cores < 2:
        return clip_threads, whisper_threads
    clip = cores // 2
    return clip, cores - clip
