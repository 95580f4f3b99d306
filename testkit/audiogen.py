"""Real test audio for fingerprinting: synthesized music-like tracks (numpy), espeak-ng speech
(committed WAVs), and the distortions a reused sound goes through on a short-video platform.

Every distortion that involves a codec or a sample rate really encodes a file with PyAV and
decodes it back through ColdOpen's own audio decoder.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from testkit import mediagen

RATE = 44_100
_SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10], "penta": [0, 3, 5, 7, 10]}


def _note(freq: float, seconds: float, rate: int, rng, timbre: np.ndarray) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(a * np.sin(2 * np.pi * freq * (h + 1) * t + rng.uniform(0, 6.28)) for h, a in enumerate(timbre))
    attack = min(len(t), int(0.01 * rate))
    env = np.exp(-t * rng.uniform(1.5, 5.0))
    env[:attack] *= np.linspace(0, 1, attack)
    return wave * env


def music(seed: int, seconds: float = 20.0, rate: int = RATE) -> np.ndarray:
    """A random 'song': melody, bass, chords and drums at a random tempo and key (float32 mono, peak 0.7)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n + rate, dtype=np.float64)
    beat = 60.0 / rng.uniform(80, 160)
    root = 220 * 2 ** (rng.integers(-5, 7) / 12)
    scale = _SCALES[rng.choice(list(_SCALES))]
    lead_timbre = rng.uniform(0.05, 1.0, size=rng.integers(3, 7))
    bass_timbre = rng.uniform(0.2, 1.0, size=3)
    pad_timbre = rng.uniform(0.05, 0.5, size=4)

    def pitch(degree: int, octave: int) -> float:
        return root * 2 ** (octave + scale[degree % len(scale)] / 12 + degree // len(scale))

    t = 0.0
    while t < seconds:  # melody: eighths and quarters
        dur = beat * rng.choice([0.5, 0.5, 1.0, 1.5])
        if rng.random() > 0.15:
            s = int(t * rate)
            x = _note(pitch(int(rng.integers(0, 10)), 1), dur * 1.2, rate, rng, lead_timbre)
            out[s : s + len(x)] += 0.35 * x[: len(out) - s]
        t += dur
    t = 0.0
    while t < seconds:  # bass and chords every bar
        s = int(t * rate)
        degree = int(rng.choice([0, 3, 4, 5]))
        x = _note(pitch(degree, -1), beat * 4, rate, rng, bass_timbre)
        out[s : s + len(x)] += 0.4 * x[: len(out) - s]
        for step in (0, 2, 4):
            x = _note(pitch(degree + step, 0), beat * 4, rate, rng, pad_timbre)
            out[s : s + len(x)] += 0.12 * x[: len(out) - s]
        t += beat * 4
    t = 0.0
    hat = rng.normal(size=int(0.03 * rate)) * np.exp(-np.arange(int(0.03 * rate)) / (0.005 * rate))
    hat = np.diff(hat, prepend=0)  # brighter
    while t < seconds:  # drums: kick on beats, hats on offbeats
        s = int(t * rate)
        k = np.arange(int(0.15 * rate)) / rate
        kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-k * 30)) * k) * np.exp(-k * 20)
        out[s : s + len(kick)] += 0.5 * kick[: len(out) - s]
        h = int((t + beat / 2) * rate)
        out[h : h + len(hat)] += 0.15 * hat[: max(0, len(out) - h)]
        t += beat
    out = out[:n]
    return (0.7 * out / np.abs(out).max()).astype(np.float32)


def speech(name: str, rate: int = RATE) -> np.ndarray:
    voice, r = mediagen.speech(name)
    return resample(voice, r, rate)


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return x.astype(np.float32)
    n = int(round(len(x) * dst / src))
    return np.interp(np.arange(n) * src / dst, np.arange(len(x)), x).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def with_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=len(x))
    return (x + noise * rms(x) / 10 ** (snr_db / 20) / rms(noise)).astype(np.float32)


def overlay(x: np.ndarray, other: np.ndarray, snr_db: float, at: int = 0) -> np.ndarray:
    """x with `other` mixed in from sample `at`, scaled so x is snr_db above it (0 dB: equal loudness)."""
    other = other[: len(x) - at]
    y = x.astype(np.float64).copy()
    scaled = other * rms(x[at : at + len(other)]) / rms(other) / 10 ** (snr_db / 20)
    y[at : at + len(other)] += scaled
    peak = np.abs(y).max()
    return (y / peak * 0.9 if peak > 0.99 else y).astype(np.float32)


def gain(x: np.ndarray, db: float) -> np.ndarray:
    return np.clip(x * 10 ** (db / 20), -1, 1).astype(np.float32)


def encode(path: Path, x: np.ndarray, rate: int = RATE, codec: str = "aac", bitrate: int = 128_000,
           out_rate: int | None = None, channels: int = 1) -> Path:
    """Encode mono float audio with PyAV (AAC in .m4a, MP3 in .mp3, PCM in .wav), resampling and upmixing on the way."""
    fmt = {"aac": "mp4", "mp3": "mp3", "pcm_s16le": "wav"}[codec]
    layout = "stereo" if channels == 2 else "mono"
    out_rate = out_rate or rate
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec if codec != "mp3" else "libmp3lame", rate=out_rate)
        stream.layout = layout
        if codec != "pcm_s16le":
            stream.bit_rate = bitrate
        mediagen.encode_audio(out, stream, x, rate)
    return path


def one_hour_opus(path: Path) -> Path:
    """An hour of quiet tone as 6 kb/s Opus in Ogg: about 2.6 MB, far under max_upload_bytes."""
    rate = 48_000
    tone = (0.05 * np.sin(2 * np.pi * 440 * np.arange(rate * 10) / rate)).astype(np.float32)[None, :]
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=rate)
        stream.bit_rate = 6000
        stream.layout = "mono"
        stream.codec_context.options = {"compression_level": "0"}
        for i in range(360):
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, i * tone.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def ffmpeg_filter(x: np.ndarray, rate: int, chain: str) -> np.ndarray:
    """Mono float audio through an FFmpeg audio filter chain (PyAV's bundled FFmpeg), e.g. "atempo=1.03"
    (tempo without pitch), "asetrate=46722,aresample=44100,atempo=0.9439" (one semitone up, same tempo),
    "highpass=f=300,lowpass=f=3400" (a phone speaker)."""
    graph = av.filter.Graph()
    src = graph.add_abuffer(format="flt", sample_rate=rate, layout="mono")
    chain_nodes = [graph.add(*(step.split("=", 1) + [""])[:2]) for step in chain.split(",")]
    fmt = graph.add("aformat", f"sample_fmts=flt:sample_rates={rate}:channel_layouts=mono")
    sink = graph.add("abuffersink")
    nodes = [src, *chain_nodes, fmt, sink]
    for a, b in zip(nodes, nodes[1:]):
        a.link_to(b)
    graph.configure()
    out = []
    step = rate // 10
    for i in range(0, len(x), step):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, i : i + step], np.float32), format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = i
        frame.time_base = Fraction(1, rate)
        graph.push(frame)
        out += _pull(graph)
    graph.push(None)
    out += _pull(graph)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.float32)


def _pull(graph) -> list:
    frames = []
    while True:
        try:
            frames.append(graph.pull())
        except (av.BlockingIOError, av.EOFError):
            return frames
