"""The reference ingest workload: 30-s 720p30 H.264 clips (GOP 1 s) with AAC speech over music,
panning over real photographs (scikit-image). Clip i rotates the photo order and the sentences,
so clips differ in pixels and words. Clips are cached in a directory and reused across runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PHOTOS = ["astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry"]
SENTENCES = ["fox", "coffee", "rocket", "cat", "astronaut", "weather"]


def make_reference_clip(path: Path, seconds: int = 30, size=(1280, 720), fps: int = 30, variant: int = 0) -> Path:
    from testkit import mediagen

    photos = PHOTOS[variant % len(PHOTOS):] + PHOTOS[: variant % len(PHOTOS)]
    per = seconds * fps // len(photos)
    frames = [f for name in photos for f in mediagen.pan_frames(mediagen.photo(name), per, size)]
    rate = 16000
    t = np.arange(seconds * rate) / rate
    base = 220 * 2 ** ((variant % 7) / 12)
    music = 0.1 * np.sin(2 * np.pi * base * t) + 0.05 * np.sin(2 * np.pi * base * 1.5 * t)
    audio = music.astype(np.float32)
    offset = 0
    names = SENTENCES[variant % len(SENTENCES):] + SENTENCES[: variant % len(SENTENCES)]
    for name in names * 2:
        voice, _ = mediagen.speech(name)
        start = offset + rate // 2
        if start + len(voice) > len(audio):
            break
        audio[start : start + len(voice)] += voice
        offset = start + len(voice)
    return mediagen.write_clip(path, frames, fps, np.clip(audio, -1, 1), rate, gop=fps)


def reference_clips(directory: Path, n: int) -> list[Path]:
    """n reference clips in `directory`, made on first use."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = directory / f"reference-{i:03d}.mp4"
        if not path.exists():
            tmp = path.with_suffix(".tmp.mp4")
            make_reference_clip(tmp, variant=i)
            tmp.rename(path)
        out.append(path)
    return out
