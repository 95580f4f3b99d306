"""Near-repeat frames skipped before they are embedded (settings.frame_skip_threshold)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from coldopen.engine.media import SampledFrames

THUMB = 32  # side of the grey thumbnail two frames are compared on


def skip_repeats(sampled: SampledFrames, threshold: float) -> SampledFrames:
    """Drop frames that barely differ from the last kept one: the mean absolute difference of their 32x32
    grey thumbnails, in [0, 1], at most `threshold` (0: keep every frame). Each kept frame then stands for
    itself and the frames skipped after it (`stands_for`; frames are sampled at a fixed rate, so this is
    the time it stands for), which the video's vector weighs it by: a still shot of 20 s counts as much as
    before while it is embedded once. A cut, a pan or motion keeps its frames."""
    frames, times = sampled.frames, sampled.times_s
    if threshold <= 0 or len(frames) <= 1:
        return sampled
    kept: list[int] = []
    last: np.ndarray | None = None
    for i, frame in enumerate(frames):
        grey = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
        thumb = grey.astype(np.float32) / 255.0
        if last is None or float(np.abs(thumb - last).mean()) > threshold:
            kept.append(i)
            last = thumb
    if len(kept) == len(frames):
        return sampled
    stands_for = [b - a for a, b in zip(kept, [*kept[1:], len(frames)])]
    return dataclasses.replace(sampled, frames=[frames[i] for i in kept], times_s=[times[i] for i in kept],
                               stands_for=stands_for, sampled=len(frames))
