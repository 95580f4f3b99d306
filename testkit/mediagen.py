"""Real test media: H.264 + AAC clips made with PyAV from real photographs (scikit-image) and
synthesized speech (espeak-ng WAVs committed under tests/data/speech).

Regenerate the speech files with:  python -m testkit.mediagen speech
Regenerate the demo clips with:    python -m testkit.mediagen samples samples/
"""

from __future__ import annotations

import subprocess
import sys
import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from testkit.paths import TEST_DATA

SPEECH_DIR = TEST_DATA / "speech"
SENTENCES = {
    "fox": "The quick brown fox jumps over the lazy dog.",
    "coffee": "Here is my morning coffee, freshly brewed and very hot.",
    "rocket": "We are launching a rocket into space today.",
    "cat": "Meet my cat. She loves to sleep in the sun.",
    "astronaut": "An astronaut is floating above the planet.",
    "weather": "Tomorrow the weather will be cold with heavy rain.",
}


def photo(name: str) -> np.ndarray:
    """An RGB uint8 photograph shipped with scikit-image (astronaut, coffee, rocket, chelsea, ...)."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):
        img = img[0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def speech(name: str) -> tuple[np.ndarray, int]:
    """A committed espeak-ng recording as float32 mono samples and its sample rate."""
    with wave.open(str(SPEECH_DIR / f"{name}.wav")) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0, rate


def pan_frames(img: np.ndarray, n: int, size: tuple[int, int], zoom: float = 0.8) -> list[np.ndarray]:
    """A slow pan across the photo: n RGB frames of size (width, height)."""
    h, w = img.shape[:2]
    out_w, out_h = size
    aspect = out_w / out_h
    crop_h = int(min(h, w / aspect) * zoom)
    crop_w = int(crop_h * aspect)
    frames = []
    for i in range(n):
        a = i / max(1, n - 1)
        x = int(a * (w - crop_w))
        y = int((1 - a) * (h - crop_h) / 2)
        crop = img[y : y + crop_h, x : x + crop_w]
        frames.append(cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA))
    return frames


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    fps: float = 24,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    *,
    gop: int | None = None,
    crf: int = 23,
    frame_times: list[float] | None = None,
    display_rotation: int = 0,
    faststart: bool = False,
) -> Path:
    """Encode RGB frames as H.264 (and optional mono audio as AAC) into an MP4.

    `frame_times` (seconds) gives explicit presentation times for variable-frame-rate clips;
    `display_rotation` writes a display matrix (degrees counter-clockwise), as phones do;
    `faststart` puts the index (moov) before the media data, as streaming encoders do.
    """
    path = Path(path)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"} if faststart else {}) as out:
        vs = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast"}
        if gop:
            vs.codec_context.gop_size = gop
        if display_rotation:
            vs.set_display_rotation(display_rotation)
        time_base = Fraction(1, 1000) if frame_times else None
        if time_base:
            vs.time_base = time_base
        a_stream = None
        if audio is not None:
            a_stream = out.add_stream("aac", rate=44100 if audio_rate not in (16000, 22050, 44100, 48000) else audio_rate)
            a_stream.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if frame_times:
                frame.pts = int(round(frame_times[i] * 1000))
                frame.time_base = time_base
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if a_stream is not None:
            encode_audio(out, a_stream, audio, audio_rate)
    return path


def weird_audio_clip(path: Path, rate: int, channels: int) -> Path:
    """Two black 64x64 frames plus a PCM track at any sample rate and 1, 2 or 24 (22.2) channels, in Matroska."""
    with av.open(str(path), "w", format="matroska") as out:
        vs = out.add_stream("libx264", rate=1)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        a = out.add_stream("pcm_s16le", rate=rate)
        a.layout = {1: "mono", 2: "stereo", 24: "22.2"}[channels]
        black = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        packets = [p for frame in (black, black, None) for p in vs.encode(frame)]
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024 * channels), np.int16), format="s16", layout=a.layout)
        samples.sample_rate = rate
        packets += [*a.encode(samples), *a.encode(None)]
        for packet in packets:
            out.mux(packet)
    return path


def write_audio_only(path: Path, audio: np.ndarray, rate: int) -> Path:
    """An AAC-in-MP4 (.m4a) file with no video stream."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        encode_audio(out, stream, audio, rate)
    return Path(path)


def encode_audio(out, stream, audio: np.ndarray, rate: int) -> None:
    """Encode mono float samples at `rate` into `stream` (resampled and up-mixed to the stream's format)."""
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=stream.layout.name, rate=stream.rate)
    step = 1024
    pts = 0
    for start in range(0, len(audio), step):
        chunk = np.ascontiguousarray(audio[start : start + step], dtype=np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = pts
        pts += chunk.shape[1]
        for rf in resampler.resample(frame):
            for packet in stream.encode(rf):
                out.mux(packet)
    for rf in resampler.resample(None):
        for packet in stream.encode(rf):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def make_clip(
    path: Path,
    photo_name: str,
    seconds: float = 5.0,
    size: tuple[int, int] = (320, 180),
    fps: float = 12,
    speech_name: str | None = None,
    **kwargs,
) -> Path:
    """A clip panning over a photograph, optionally with a spoken sentence starting at 0.5 s."""
    frames = pan_frames(photo(photo_name), int(seconds * fps), size)
    audio, rate = None, 16000
    if speech_name:
        voice, rate = speech(speech_name)
        audio = np.zeros(int(seconds * rate), dtype=np.float32)
        start = int(0.5 * rate)
        voice = voice[: len(audio) - start]
        audio[start : start + len(voice)] = voice
    return write_clip(path, frames, fps, audio, rate, **kwargs)


def reencode(src: Path, dst: Path, size: tuple[int, int], crf: int = 30) -> Path:
    """Decode a clip and encode it again at another size and quality (video only)."""
    with av.open(str(src)) as inp:
        vs = inp.streams.video[0]
        fps = float(vs.average_rate)
        frames = [cv2.resize(f.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA) for f in inp.decode(vs)]
    return write_clip(dst, frames, fps, crf=crf)


# The clips that ship in samples/ for `make demo`: (file stem, photo, speech, creator, caption, hashtags).
SAMPLES = [
    ("coffee-morning", "coffee", "coffee", "barista_bo", "Morning brew", ["coffee", "morning"]),
    ("rocket-launch", "rocket", "rocket", "space_sam", "Launch day!", ["space", "rocket"]),
    ("cat-nap", "chelsea", "cat", "cat_carla", "Sunday nap", ["cats"]),
    ("astronaut-orbit", "astronaut", "astronaut", "space_sam", "Greetings from orbit", ["space"]),
    ("deep-field", "hubble_deep_field", "weather", "sky_sid", "Galaxies and a weather report", ["space", "weather"]),
    ("coffee-closeup", "coffee", None, "barista_bo", "Latte art, no talking", ["coffee", "asmr"]),
    # Two clips that use the same song: the second reuses part of it with a voice-over.
    ("song-original", "immunohistochemistry", "song", "dj_dana", "My new track", ["music"]),
    ("song-reuse", "stereo_motorcycle", "song+fox", "fox_fan", "Using this sound!", ["music", "challenge"]),
]


def make_samples(out_dir: Path) -> list[Path]:
    from testkit import audiogen

    out_dir.mkdir(parents=True, exist_ok=True)
    song = audiogen.resample(audiogen.music(7, 10.0), audiogen.RATE, 16000)
    paths = []
    for stem, photo_name, sound, *_ in SAMPLES:
        size = (480, 270) if stem != "coffee-closeup" else (360, 640)  # one portrait clip
        if sound and sound.startswith("song"):
            audio = song[: 8 * 16000] if sound == "song" else song[2 * 16000 :][: 6 * 16000]
            if "+" in sound:
                audio = audiogen.overlay(audio, speech(sound.split("+")[1])[0], 0.0, at=8000)
            frames = pan_frames(photo(photo_name), int(len(audio) / 16000 * 15), size)
            paths.append(write_clip(out_dir / f"{stem}.mp4", frames, 15, audio, 16000))
        else:
            paths.append(make_clip(out_dir / f"{stem}.mp4", photo_name, seconds=6, size=size, fps=15, speech_name=sound))
    return paths


def make_speech() -> None:
    """Regenerate tests/data/speech/*.wav with espeak-ng (16 kHz mono 16-bit)."""
    SPEECH_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in SENTENCES.items():
        raw = SPEECH_DIR / f"{name}.raw.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-ar", "16000", "-ac", "1", "-sample_fmt", "s16",
             str(SPEECH_DIR / f"{name}.wav")],
            check=True,
        )
        raw.unlink()


if __name__ == "__main__":
    if sys.argv[1:2] == ["speech"]:
        make_speech()
    elif sys.argv[1:2] == ["samples"]:
        for p in make_samples(Path(sys.argv[2] if len(sys.argv) > 2 else "samples")):
            print(p, p.stat().st_size)
    else:
        sys.exit(__doc__)
