"""Media decoding: probe the container (PyAV), sample video frames, decode audio (PyAV).

Two ways to sample frames, both by presentation time (so variable-frame-rate clips are sampled at
the right moments) and both upright for phone videos with a display rotation:
- ``uniform``: decode every frame (OpenCV) and keep the first at or after each target time: exact fps.
- ``keyframes``: decode only keyframes (PyAV ``skip_frame="NONKEY"``) and keep the first at or after each
  target time: several times faster, at the clip's keyframe spacing when that is sparser than the target.
``auto`` counts keyframes by demuxing (no decoding) and takes ``keyframes`` when they give at least half
the wanted frames, ``uniform`` otherwise.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from coldopen.domain.errors import DeadlineExceeded, InvalidInput
from coldopen.domain.media import MediaInfo

log = logging.getLogger(__name__)

AUDIO_SAMPLE_RATE = 16_000
# Decoded video that ends this much earlier than the container says means a truncated upload.
_TRUNCATION_TOLERANCE = 0.9
_TRUNCATION_SLACK_S = 1.0

_SUPPORTED_HINT = "upload a complete video file (MP4, MOV, MKV or WebM with H.264, H.265, VP8, VP9 or AV1 video)"
_AUDIO_HINT = "send audio or video (M4A, MP3, Opus, WAV, MP4, ...)"
# A decode loop looks at the clock this often (frames or audio packets).
_DEADLINE_EVERY = 16


@dataclass(frozen=True)
class SampledFrames:
    frames: list[np.ndarray]  # RGB uint8, H x W x 3, upright
    times_s: list[float]
    rotation: int
    width: int
    height: int
    stands_for: list[int] = field(default_factory=list)  # sampled frames each kept one stands for (empty: 1 each)
    sampled: int = -1  # frames sampled before near-repeats were skipped (-1: none were)


@dataclass(frozen=True)
class Limits:
    """What an upload may be; checked from the container headers before anything is decoded."""

    max_duration_s: float = math.inf
    max_pixels: int = 1 << 62
    max_audio_channels: int = 1 << 30
    max_audio_sample_rate: int = 1 << 30


def _open(path: Path, hint: str):
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise InvalidInput(f"the upload is not a readable media file ({_short(e)}); {hint}") from None


def probe(path: Path, limits: Limits = Limits(), require_video: bool = True) -> MediaInfo:
    """Read container facts without decoding; raise InvalidInput for anything that is not usable media or
    that is over a limit (so a decode bomb is refused before a single frame is decoded). Every stream's
    duration counts, not only the one ColdOpen decodes. With `require_video` False an audio-only file is
    fine (sound search); its MediaInfo has no frame size."""
    hint = _SUPPORTED_HINT if require_video else _AUDIO_HINT
    with _open(path, hint) as container:
        fmt = container.format.name
        if fmt in ("image2", "image2pipe") or fmt.endswith("_pipe"):
            raise InvalidInput(f"the upload is a still image ({fmt.removesuffix('_pipe')}), not a video; {hint}")
        vs = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if require_video and vs is None:
            kind = "an audio-only file" if audio is not None else "a file without a video stream"
            raise InvalidInput(f"the upload is {kind} (container {fmt}); {hint}")
        if vs is None and audio is None:
            raise InvalidInput(f"the upload has no audio or video stream (container {fmt}); {hint}")
        durations = [d for d in (_stream_duration(st) for st in container.streams) if d is not None]
        if container.duration:
            durations.append(container.duration / av.time_base)
        longest = max((d for d in durations if math.isfinite(d)), default=None)
        if longest is not None and longest > limits.max_duration_s:
            raise InvalidInput(
                f"the upload is {longest:.0f} s long; this server accepts at most {limits.max_duration_s:.0f} s "
                f"(max_duration_s): trim it or split it into parts",
                limit="max_duration_s",
            )
        main = vs if vs is not None else audio
        duration = _stream_duration(main)
        if duration is None and container.duration:
            duration = container.duration / av.time_base
        if vs is not None and (not duration or duration <= 0 or not math.isfinite(duration)):
            raise InvalidInput(f"the video has no duration in its container ({fmt}); {hint}")
        width = int(vs.codec_context.width or 0) if vs is not None else 0
        height = int(vs.codec_context.height or 0) if vs is not None else 0
        _check_limits(limits, width, height, container.streams.audio, vs is not None)
        rate = (vs.average_rate or vs.guessed_rate) if vs is not None else None
        return MediaInfo(
            duration_s=float(duration or 0.0),
            width=width,
            height=height,
            fps=float(rate) if rate else 0.0,
            has_audio=audio is not None,
            container=fmt.split(",")[0],
            video_codec=vs.codec_context.name or "" if vs is not None else "",
            audio_codec=audio.codec_context.name if audio is not None else "",
        )


def _check_limits(limits: Limits, width: int, height: int, audio_streams, has_video: bool) -> None:
    if width * height > limits.max_pixels:
        raise InvalidInput(
            f"the video is {width}x{height} ({width * height / 1e6:.1f} megapixels); this server accepts at most "
            f"{limits.max_pixels / 1e6:.1f} megapixels per frame (max_pixels): downscale it to 4K or less",
            limit="max_pixels",
        )
    if has_video and (width <= 0 or height <= 0):
        raise InvalidInput(f"the video stream has no frame size ({width}x{height}); {_SUPPORTED_HINT}")
    for audio in audio_streams:
        ctx = audio.codec_context
        channels = int(getattr(ctx, "channels", 0) or 0)
        rate = int(ctx.sample_rate or 0)
        if channels > limits.max_audio_channels:
            raise InvalidInput(
                f"an audio track has {channels} channels; this server accepts at most {limits.max_audio_channels} "
                f"(max_audio_channels): mix it down to stereo or mono",
                limit="max_audio_channels",
            )
        if rate > limits.max_audio_sample_rate:
            raise InvalidInput(
                f"an audio track is sampled at {rate} Hz; this server accepts at most {limits.max_audio_sample_rate} Hz "
                f"(max_audio_sample_rate): resample it to 48 kHz",
                limit="max_audio_sample_rate",
            )


def sample_times(duration_s: float, fps: float, max_frames: int) -> list[float]:
    """Times at `fps` per second over [0, duration); spread evenly instead when that exceeds max_frames."""
    wanted = max(1, math.ceil(duration_s * fps - 1e-9))
    if wanted <= max_frames:
        return [i / fps for i in range(wanted)]
    step = duration_s / max_frames
    return [i * step for i in range(max_frames)]


def sample_frames(
    path: Path, info: MediaInfo, fps: float, max_frames: int, short_side: int = 0, deadline: float | None = None
) -> SampledFrames:
    """Decode the video once and keep the first frame at or after each target time, shrunk as it is decoded."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise InvalidInput(f"the video stream could not be opened for decoding; {_SUPPORTED_HINT}")
    try:
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        rotation = int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 360
        targets = sample_times(info.duration_s, fps, max_frames)
        frames: list[np.ndarray] = []
        times: list[float] = []
        start_ms = None
        last_t = 0.0
        ti = 0
        size: tuple[int, int] | None = None
        decoded = 0
        while ti < len(targets) and cap.grab():
            decoded += 1
            if decoded % _DEADLINE_EVERY == 0:
                check_deadline(deadline, "decoding frames")
            pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            if start_ms is None:
                start_ms = pos_ms
            t = (pos_ms - start_ms) / 1000.0
            last_t = t
            if t + 1e-6 < targets[ti]:
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                continue
            if size is None:
                size = (bgr.shape[0], bgr.shape[1])
            frames.append(cv2.cvtColor(shrink_frame(bgr, short_side), cv2.COLOR_BGR2RGB))
            times.append(round(t, 6))
            while ti < len(targets) and targets[ti] <= t + 1e-6:
                ti += 1
        # Keep decoding to the end only to detect truncation when we stopped early on sampling.
        if ti >= len(targets):
            last_t = info.duration_s
    finally:
        cap.release()
    if not frames or size is None:
        raise InvalidInput(f"no video frame could be decoded (corrupt or truncated stream); {_SUPPORTED_HINT}")
    expected = info.duration_s
    if len(targets) > 1 and last_t + _TRUNCATION_SLACK_S < expected * _TRUNCATION_TOLERANCE:
        raise InvalidInput(
            f"the video is truncated: the container says {expected:.1f} s but decodable frames end at "
            f"{last_t:.1f} s; re-send the complete file"
        )
    h, w = size
    return SampledFrames(frames=frames, times_s=times, rotation=rotation, width=w, height=h)


@dataclass(frozen=True)
class PacketCounts:
    keyframes: int
    packets: int


def count_packets(path: Path) -> PacketCounts:
    """Keyframes and all packets of the first video stream, from packet flags alone (demux, no decode)."""
    keyframes = packets = 0
    with _open(path, _SUPPORTED_HINT) as container:
        vs = container.streams.video[0]
        for packet in container.demux(vs):
            if packet.size:
                packets += 1
                keyframes += bool(packet.is_keyframe)
    return PacketCounts(keyframes, packets)


def choose_mode(mode: str, path: Path, info: MediaInfo, fps: float, max_frames: int, max_decoded: int) -> str:
    """`auto`: keyframes when they give at least half the wanted frames; otherwise every frame (uniform)
    unless that means decoding more than `max_decoded` frames, when the sparse keyframes are taken."""
    if mode != "auto":
        return mode
    wanted = len(sample_times(info.duration_s, fps, max_frames))
    counts = count_packets(path)
    if counts.keyframes * 2 >= wanted or counts.packets > max_decoded:
        return "keyframes"
    return "uniform"


def sample_keyframes(
    path: Path, info: MediaInfo, fps: float, max_frames: int, short_side: int = 0, deadline: float | None = None
) -> SampledFrames:
    """Decode keyframes only; keep the first at or after each target time (within half a sample period)."""
    targets = sample_times(info.duration_s, fps, max_frames)
    slack = 0.5 / fps
    frames: list[np.ndarray] = []
    times: list[float] = []
    rotation = 0
    last_t = 0.0
    size: tuple[int, int] | None = None
    with _open(path, _SUPPORTED_HINT) as container:
        vs = container.streams.video[0]
        vs.codec_context.skip_frame = "NONKEY"
        start = None
        ti = 0
        seen = 0
        try:
            for packet in container.demux(vs):
                seen += 1
                if seen % (_DEADLINE_EVERY * 8) == 0:
                    check_deadline(deadline, "decoding keyframes")
                if packet.pts is not None and packet.time_base is not None:
                    pt = float(packet.pts * packet.time_base)
                    start = pt if start is None else min(start, pt)
                    last_t = max(last_t, pt - start)
                if not packet.is_keyframe and packet.size:
                    continue
                for frame in packet.decode():
                    t = float(frame.time or 0.0) - (start or 0.0)
                    if ti >= len(targets) or t + slack < targets[ti]:
                        continue
                    ccw = int(frame.rotation or 0) % 360  # display matrix, counter-clockwise
                    rotation = (-ccw) % 360  # reported clockwise, as OpenCV (the uniform path) reports it
                    rgb = frame.to_ndarray(format="rgb24")
                    if ccw:
                        rgb = np.ascontiguousarray(np.rot90(rgb, k=ccw // 90))
                    if size is None:
                        size = (rgb.shape[0], rgb.shape[1])
                    frames.append(shrink_frame(rgb, short_side))
                    times.append(round(max(t, 0.0), 6))
                    while ti < len(targets) and targets[ti] <= t + slack:
                        ti += 1
        except av.error.FFmpegError as e:
            if not frames:
                raise InvalidInput(f"the video stream could not be decoded ({_short(e)}); {_SUPPORTED_HINT}") from None
            log.warning("keyframe decode stopped early: %s", _short(e))
    if not frames or size is None:
        raise InvalidInput(f"no video frame could be decoded (corrupt or truncated stream); {_SUPPORTED_HINT}")
    if len(targets) > 1 and last_t + _TRUNCATION_SLACK_S < info.duration_s * _TRUNCATION_TOLERANCE:
        raise InvalidInput(
            f"the video is truncated: the container says {info.duration_s:.1f} s but its packets end at "
            f"{last_t:.1f} s; re-send the complete file"
        )
    h, w = size
    return SampledFrames(frames=frames, times_s=times, rotation=rotation, width=w, height=h)


def sample(
    path: Path, info: MediaInfo, mode: str, fps: float, max_frames: int, short_side: int = 0,
    max_decoded: int = 1 << 62, deadline: float | None = None,
) -> tuple[SampledFrames, str]:
    """Frames by the given sampling mode, each shrunk to `short_side` as it is decoded; returns the frames
    and the mode actually used."""
    used = choose_mode(mode, path, info, fps, max_frames, max_decoded)
    if used == "keyframes":
        return sample_keyframes(path, info, fps, max_frames, short_side, deadline), used
    return sample_frames(path, info, fps, max_frames, short_side, deadline), used


def shrink_frame(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Downscale a frame whose shorter side exceeds `short_side` (area interpolation: antialiased).

    Decoders call this on each frame as it is decoded, so a clip's memory is its sampled frames at the
    model's input size (a 4K frame is never kept), and frames cross the process boundary small.
    """
    h, w = frame.shape[:2]
    s = min(h, w)
    if short_side <= 0 or s <= short_side:
        return frame
    scale = short_side / s
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def decode_audio(path: Path, max_duration_s: float = math.inf, deadline: float | None = None) -> np.ndarray:
    """The first audio track as 16 kHz mono float32, skipping bad packets (as faster-whisper's decoder does).

    Written on PyAV directly rather than calling faster_whisper.audio.decode_audio, which decodes the whole
    track before returning: this one stops as soon as the track runs past `max_duration_s` (a header can
    lie about the duration), and looks at the request's deadline while it works.
    """
    limit = int(max_duration_s * AUDIO_SAMPLE_RATE) + AUDIO_SAMPLE_RATE if math.isfinite(max_duration_s) else None
    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=AUDIO_SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidInput(f"the upload has no audio track (container {container.format.name}); send a file with sound")
            frames = container.decode(audio=0)
            n = 0
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    frame = None
                except av.error.InvalidDataError:
                    continue
                n += 1
                if n % _DEADLINE_EVERY == 0:
                    check_deadline(deadline, "decoding audio")
                for out in resampler.resample(frame):
                    array = out.to_ndarray().reshape(-1)
                    chunks.append(array)
                    total += array.size
                if limit is not None and total > limit:
                    raise InvalidInput(
                        f"the audio runs past {max_duration_s:.0f} s; this server accepts at most "
                        f"{max_duration_s:.0f} s (max_duration_s): trim it or split it into parts",
                        limit="max_duration_s",
                    )
                if frame is None:
                    break
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise InvalidInput(f"the audio track could not be decoded ({_short(e)}); re-encode it as AAC or Opus") from None
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def check_deadline(deadline: float | None, stage: str) -> None:
    """DeadlineExceeded once time.monotonic() (system-wide, so valid in decode workers) passes `deadline`."""
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded.during(stage)


def _stream_duration(stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _short(e: Exception) -> str:
    """What a decoder said, for the caller: never the server's temporary path or an errno number."""
    if isinstance(e, av.error.FFmpegError):
        text = (e.strerror or "").strip() or type(e).__name__
    else:
        text = str(e).strip() or type(e).__name__
    text = _ERRNO.sub("", _PATH.sub("the upload", text)).strip(" :;")
    return text if len(text) <= 200 else text[:200] + "…"


_PATH = re.compile(r"'?(?:/[^\s'/]+)+/?'?")
_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
