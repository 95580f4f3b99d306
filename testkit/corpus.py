"""Synthetic corpora for benchmarks and scale tests: videos with random unit vectors and counters, loaded
through the catalog's bulk loader (coldopen.storage.catalog.bulk) in its own row formats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import numpy as np

from coldopen.domain.engagement import Counters
from coldopen.domain.media import MediaInfo
from coldopen.domain.transcripts import Transcript
from coldopen.domain.videos import Extraction, VideoMetadata
from coldopen.storage.catalog import Catalog

MEDIA_720P_30S = MediaInfo(30.0, 1280, 720, 30.0, True, "mp4", "h264", "aac")


def extraction(model: str, dim: int, text: str = "") -> Extraction:
    """What the pipeline would have extracted from a 30-s 720p clip, vectors apart."""
    return Extraction(MEDIA_720P_30S, 30, model, dim, Transcript(text, "en", 1.0, ""))


def load_videos(catalog: Catalog, visual: np.ndarray, model: str, *, spoken: np.ndarray | None = None,
                captions: np.ndarray | None = None, first: int = 0, prefix: str = "v", creators: int = 50_000,
                batch: int = 100_000) -> Iterator[int]:
    """Videos `{prefix}{first + i}` with these vectors, `batch` per transaction; yields how many are loaded."""
    for lo in range(0, len(visual), batch):
        hi = min(len(visual), lo + batch)
        metas = [VideoMetadata(f"{prefix}{first + i}", creator_id=f"creator-{(first + i) % creators}", caption="a caption")
                 for i in range(lo, hi)]
        catalog.bulk.videos(metas, extraction(model, visual.shape[1], "words"), visual[lo:hi],
                            captions=None if captions is None else captions[lo:hi],
                            spoken=None if spoken is None else spoken[lo:hi])
        yield hi


def random_counters(video_ids: list[str], seed: int, within_s: int = 86_400) -> list[tuple[str, Counters]]:
    """Counters like a day of traffic: up to 5,000 impressions, half played, a quarter completed."""
    rng = np.random.default_rng(seed)
    now = datetime.now(timezone.utc)
    imp = rng.integers(0, 5000, len(video_ids))
    shares = rng.integers(0, 10, len(video_ids))
    ages = rng.integers(0, within_s, len(video_ids))
    return [
        (v, Counters(impressions=int(i), plays=int(i) // 2, completions=int(i) // 4, likes=int(i) // 20, shares=int(sh),
                     last_event_at=(now - timedelta(seconds=int(a))).isoformat(timespec="milliseconds").replace("+00:00", "Z")))
        for v, i, sh, a in zip(video_ids, imp, shares, ages)
    ]
