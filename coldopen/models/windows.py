"""Running a windowed model over whole clips: the one loop that fingerprints and Whisper share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

W = TypeVar("W")
R = TypeVar("R")


def run_in_windows(clips: Sequence[Sequence[W]], run: Callable[[list[W]], list[R]], per_call: int) -> list[list[R]]:
    """Run `run` over every window of every clip, at most `per_call` windows a call, and hand each clip
    its windows' results in order."""
    flat = [w for windows in clips for w in windows]
    results: list[R] = []
    for i in range(0, len(flat), per_call):
        results += run(flat[i : i + per_call])
    out, n = [], 0
    for windows in clips:
        out.append(results[n : n + len(windows)])
        n += len(windows)
    return out
