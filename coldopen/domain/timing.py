"""Per-request stage timings, in milliseconds, as reported in Ingest replies and logs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone


def utc_text(t: datetime | None = None) -> str:
    """A time (default: now) in UTC with milliseconds and a 'Z', the one format stored and logged, so stored
    times also sort as text."""
    t = datetime.now(timezone.utc) if t is None else t.astimezone(timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def since_ms(started: float) -> float:
    """Milliseconds since `started` (a time.perf_counter() value), rounded to 0.01."""
    return round((time.perf_counter() - started) * 1000, 2)


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record the block's wall time in milliseconds as timings[name]."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = since_ms(started)
