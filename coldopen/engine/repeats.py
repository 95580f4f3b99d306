"""Near-repeat frames skipped before they are embedded (settings.frame_skip_threshold, frame_skip_max_pan)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from coldopen.engine.media import SampledFrames

THUMB = 64  # side of the grey thumbnail two frames are compared on
BLUR_SIGMA = 1.0  # thumbnails are blurred a little: a pan moves fine texture by sub-pixel steps
_WINDOW = cv2.createHanningWindow((THUMB, THUMB), cv2.CV_32F)


def thumbnail(frame: np.ndarray) -> np.ndarray:
    grey = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(grey.astype(np.float32) / 255.0, (0, 0), BLUR_SIGMA)


def difference(last: np.ndarray, thumb: np.ndarray, max_pan: float) -> float:
    """Mean absolute difference of two thumbnails (0-1), after undoing a camera pan between them of at most
    `max_pan` of the side: a slow pan over one scene shows the same content moved, which a pixel-by-pixel
    difference counts as change. The pan is found by phase correlation (OpenCV's ``phaseCorrelate``, ~50 µs
    on 64x64) and the moved thumbnail is compared on the part both show."""
    plain = float(np.abs(thumb - last).mean())
    if max_pan <= 0:
        return plain
    (dx, dy), _ = cv2.phaseCorrelate(last, thumb, _WINDOW)
    if max(abs(dx), abs(dy)) > max_pan * THUMB:
        return plain
    back = np.array([[1, 0, -dx], [0, 1, -dy]], np.float32)
    moved = cv2.warpAffine(thumb, back, (THUMB, THUMB), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    shared = moved >= 0
    if not shared.any():
        return plain
    return min(plain, float(np.abs(moved - last)[shared].mean()))


def skip_repeats(sampled: SampledFrames, threshold: float, max_pan: float = 0.0) -> SampledFrames:
    """Drop frames that barely differ from the last kept one: the mean absolute difference of their blurred
    64x64 grey thumbnails, in [0, 1], after undoing a pan of at most `max_pan` of the frame's side, at most
    `threshold` (0: keep every frame). Each kept frame then stands for itself and the frames skipped after it
    (`stands_for`; frames are sampled at a fixed rate, so this is the time it stands for), which the video's
    vector weighs it by: a still shot of 20 s counts as much as before while it is embedded once. A cut,
    motion in the scene or a pan that has moved further than `max_pan` since the last kept frame keeps its
    frame. Measured (benchmarks/RESULTS.md): the ingest workload's slow pans over photographs keep 16 of 30
    frames at max_pan 0.2 (30 of 30 without), real static-camera footage the same frames either way."""
    frames, times = sampled.frames, sampled.times_s
    if threshold <= 0 or len(frames) <= 1:
        return sampled
    kept: list[int] = []
    last: np.ndarray | None = None
    for i, frame in enumerate(frames):
        thumb = thumbnail(frame)
        if last is None or difference(last, thumb, max_pan) > threshold:
            kept.append(i)
            last = thumb
    if len(kept) == len(frames):
        return sampled
    stands_for = [b - a for a, b in zip(kept, [*kept[1:], len(frames)])]
    return dataclasses.replace(sampled, frames=[frames[i] for i in kept], times_s=[times[i] for i in kept],
                               stands_for=stands_for, sampled=len(frames))
