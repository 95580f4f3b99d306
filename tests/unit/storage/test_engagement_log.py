"""SQLite's engagement counters written behind (storage/engagement_log.py): a batch is durable and
readable when it returns, a fold adds it to the counters table, and a crash at any point (before a fold,
or between two of a fold's transactions) neither loses nor double-counts an event."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from coldopen.domain.engagement import Counters, EngagementEvent
from coldopen.domain.media import MediaInfo
from coldopen.domain.transcripts import Transcript
from coldopen.domain.videos import Extraction, VideoMetadata
from coldopen.storage.catalog import Catalog, open_catalog
from testkit.paths import REPO

ROOT = REPO


def _video(video_id: str, dim: int = 8):
    media = MediaInfo(5.0, 320, 180, 30.0, True, "mp4", "h264", "aac")
    extraction = Extraction(media, 1, "ViT-B-32/none", dim, Transcript("hello", "en", 0.9, "tiny.en"))
    v = np.ones(dim, np.float32) / np.sqrt(dim)
    return VideoMetadata(video_id), extraction, v, [0.0], v[None, :]


def _events(tag: str, videos: list[str], impressions: int = 10, likes: int = 1) -> list[EngagementEvent]:
    return [EngagementEvent(f"{tag}-{v}", v, Counters(impressions=impressions, likes=likes),
                            f"2026-12-01T00:00:0{i % 10}.000Z") for i, v in enumerate(videos)]


def _table(path: Path) -> dict[str, tuple[int, int]]:
    """The counters table itself: video_id -> (impressions, likes)."""
    with sqlite3.connect(path) as conn:
        return {v: (i, likes) for v, i, likes in conn.execute("SELECT video_id, impressions, likes FROM engagement")}


def _log_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM engagement_log").fetchone()[0]


def _abandon(catalog: Catalog) -> None:
    """Stop using a catalog as a crash would: no fold at close (what it committed stays)."""
    log = catalog.engagement.log
    log._stop.set()
    log._wake.set()
    log._thread.join()
    catalog.db.dispose()


def _impressions(catalog: Catalog, video: str) -> int | None:
    c = catalog.engagement.counters(catalog.videos.row_id(video))
    return None if c is None else c.impressions


def _fail_fold_call(monkeypatch, catalog: Catalog, n: int) -> None:
    """The fold's n-th write of counter rows fails (as a full disk would), inside its transaction."""
    real, calls = catalog.engagement.log._apply, [0]

    def apply(conn, rows):
        calls[0] += 1
        if calls[0] == n:
            raise sqlite3.OperationalError("disk I/O error (injected)")
        real(conn, rows)

    monkeypatch.setattr(catalog.engagement.log, "_apply", apply)


@pytest.fixture
def store(tmp_path):
    catalog = open_catalog("", tmp_path)
    for i in range(6):
        catalog.videos.upsert(*_video(f"v{i}"))
    yield catalog, tmp_path / "coldopen.sqlite3"


def test_a_batch_is_logged_readable_at_once_and_folded_later(store):
    catalog, path = store
    videos = [f"v{i}" for i in range(6)]
    w = catalog.engagement.record(_events("a", videos) + _events("b", videos[:3], impressions=5))
    assert w.accepted == 9 and w.added[catalog.videos.row_id("v0")].impressions == 15  # the batch's sums
    assert _table(path) == {} and _log_rows(path) == 1  # nothing in the table yet: one log row
    assert [_impressions(catalog, v) for v in videos] == [15, 15, 15, 10, 10, 10]
    assert catalog.engagement.log.waiting() == 6
    assert catalog.engagement.fold() == 6
    assert _table(path) == {**{v: (15, 2) for v in videos[:3]}, **{v: (10, 1) for v in videos[3:]}}
    assert _log_rows(path) == 0 and catalog.engagement.log.waiting() == 0
    assert [_impressions(catalog, v) for v in videos] == [15, 15, 15, 10, 10, 10]  # the same after the fold
    catalog.engagement.record(_events("c", ["v0"]))
    assert _impressions(catalog, "v0") == 25  # table + unfolded
    assert {row: c.impressions for row, c in catalog.engagement.all_counters().items()}[catalog.videos.row_id("v0")] == 25
    catalog.close()


def test_a_fold_interrupted_between_its_transactions_is_finished_exactly_once(store, monkeypatch):
    catalog, path = store
    videos = [f"v{i}" for i in range(6)]
    catalog.engagement.record(_events("a", videos))
    catalog.engagement.record(_events("b", videos, impressions=1))
    catalog.engagement.log._chunk = 2  # three transactions of two videos
    _fail_fold_call(monkeypatch, catalog, 2)
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        catalog.engagement.fold()
    monkeypatch.undo()
    assert _table(path) == {"v0": (11, 2), "v1": (11, 2)}  # the first transaction's two videos
    assert [_impressions(catalog, v) for v in videos] == [11] * 6  # readers still see every event once

    # A crash now: the next open finishes the fold from the mark, without adding v0 and v1 again.
    _abandon(catalog)
    again = open_catalog("", path.parent)
    assert again.engagement.log.replayed == 4
    assert _table(path) == {v: (11, 2) for v in videos} and _log_rows(path) == 0
    again.close()


def test_a_failed_fold_is_resumed_by_the_next_one(store, monkeypatch):
    catalog, path = store
    videos = [f"v{i}" for i in range(6)]
    catalog.engagement.record(_events("a", videos))
    catalog.engagement.log._chunk = 2
    _fail_fold_call(monkeypatch, catalog, 3)
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        catalog.engagement.fold()
    monkeypatch.undo()
    catalog.engagement.record(_events("b", videos[:1], impressions=100))  # arrives while the fold is half done
    assert [_impressions(catalog, v) for v in videos] == [110] + [10] * 5
    catalog.engagement.fold()
    assert _table(path) == {"v0": (110, 2), **{v: (10, 1) for v in videos[1:]}} and _log_rows(path) == 0
    catalog.close()


def test_a_deleted_video_does_not_pass_its_unfolded_counts_to_its_reingest(store):
    catalog, path = store
    catalog.engagement.record(_events("a", ["v0", "v1"]))
    catalog.videos.delete("v0")
    catalog.videos.upsert(*_video("v0"))  # the same id again, a new video
    assert _impressions(catalog, "v0") is None
    catalog.engagement.record(_events("b", ["v0"], impressions=3))
    _abandon(catalog)  # crash: the log holds v0's old deltas, its deletion, then the new ones
    again = open_catalog("", path.parent)
    assert _table(path) == {"v0": (3, 1), "v1": (10, 1)}
    again.close()


def test_batches_acknowledged_before_a_kill_9_are_counted_after_restart(tmp_path):
    """A real SIGKILL, in a child process, after batches the fold has not seen."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.unit.storage.test_engagement_log import _events, _video
        from coldopen.storage.catalog import open_catalog
        catalog = open_catalog("", {str(tmp_path)!r})
        for i in range(6):
            catalog.videos.upsert(*_video(f"v{{i}}"))
        for b in range(5):
            catalog.engagement.record(_events(f"b{{b}}", [f"v{{i}}" for i in range(6)], impressions=b + 1))
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL and "acknowledged" in child.stdout, child.stderr
    path = tmp_path / "coldopen.sqlite3"
    assert _table(path) == {} and _log_rows(path) == 5
    catalog = open_catalog("", tmp_path)
    assert catalog.engagement.log.replayed == 6
    assert _table(path) == {f"v{i}": (15, 5) for i in range(6)}
    # the events' ids were claimed with their batches: a retry after the restart counts nothing twice
    again = catalog.engagement.record(_events("b4", ["v0"], impressions=5))
    assert (again.accepted, again.duplicates) == (0, 1)
    catalog.close()
    assert os.path.exists(path)
