"""The reference ingest workload: 30-s 720p30 H.264 clips (GOP 1 s) with AAC speech over music,
panning over real photographs (scikit-image). Clip i rotates the photo order and the sentences,
so clips differ in pixels and words. Clips are cached in a directory and reused across runs."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
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


def _make(path: Path, variant: int) -> Path:
    tmp = path.with_suffix(".tmp.mp4")
    make_reference_clip(tmp, variant=variant)
    return tmp.rename(path)


def reference_clips(directory: Path, n: int) -> list[Path]:
    """n reference clips in `directory`, the missing ones made on first use, one process per core (a clip
    takes 10-20 s to encode on one core; the GPU host makes its 64 in one call). Spawned, as PyAV hangs in
    fork-started pools."""
    directory.mkdir(parents=True, exist_ok=True)
    out = [directory / f"reference-{i:03d}.mp4" for i in range(n)]
    missing = [(path, i) for i, path in enumerate(out) if not path.exists()]
    if len(missing) > 1:
        workers = min(len(missing), os.cpu_count() or 1)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            list(ex.map(_make, *zip(*missing)))
    elif missing:
        _make(*missing[0])
    return out


if __name__ == "__main__":  # python -m benchmarks.workload DIR N: make the clips ahead (the GPU host, in background)
    import sys

    print(len(reference_clips(Path(sys.argv[1]), int(sys.argv[2]))), "clips in", sys.argv[1])
