"""The performs-well pool's snapshot (storage/pool_snapshot.py): a start loads it and re-reads only
the videos whose counters changed after it (a later engagement fold) or that were re-ingested or deleted
(the change feed), and ends with the pool a process had when it was killed, the same as a full read of
the catalog gives; a damaged or mismatched snapshot costs a full read, never a wrong pool."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from coldopen.config.settings import Settings
from coldopen.domain.engagement import Counters, EngagementEvent
from coldopen.domain.media import MediaInfo
from coldopen.domain.transcripts import Transcript
from coldopen.domain.videos import Extraction, VideoMetadata
from coldopen.ranking.pool import PerformancePool, open_pool
from coldopen.storage import pool_snapshot
from coldopen.storage.catalog import Catalog, open_catalog
from tests.unit.storage.test_engagement_log import _abandon

DIM, TEXT_DIM = 8, 6
SETTINGS = Settings(pool_percentile=60.0, pool_min_impressions=20, score_half_life_h=48.0)
FIXED_PRIOR = dataclasses.replace(SETTINGS, prior_rate=0.1)
READ_AT = datetime.now(timezone.utc) + timedelta(hours=1)


def _ingest(catalog: Catalog, i: int, creator: str = "c", prior: tuple[float, float] | None = None, seed: int = 0):
    rng = np.random.default_rng(1000 * seed + i)
    v = rng.normal(size=DIM).astype(np.float32)
    v /= np.linalg.norm(v)
    spoken = rng.normal(size=TEXT_DIM).astype(np.float32)
    media = MediaInfo(5.0, 320, 180, 30.0, True, "mp4", "h264", "aac")
    extraction = Extraction(media, 1, "ViT-B-32/none", DIM, Transcript("hello", "en", 0.9, "tiny.en"))
    catalog.videos.upsert(VideoMetadata(f"v{i}", creator_id=creator), extraction, v, [0.0], v[None, :],
                   text_embeddings={"spoken": spoken / np.linalg.norm(spoken)},
                   prior=None if prior is None else (*prior, "{}"))


def _vectors(catalog: Catalog):
    """Members' embeddings as the service gives them from its indexes: here read from the catalog."""
    def read(rows: np.ndarray) -> dict[str, np.ndarray]:
        by_row = {p.row: p for p in catalog.videos.profiles([int(r) for r in rows])}
        out = {"visual": np.zeros((len(rows), DIM), np.float32), "spoken": np.zeros((len(rows), TEXT_DIM), np.float32),
               "caption": np.zeros((len(rows), TEXT_DIM), np.float32)}
        for k, r in enumerate(rows.tolist()):
            p = by_row[r]
            for m in out:
                if getattr(p, m) is not None:
                    out[m][k] = getattr(p, m)
        return out
    return read


def _pool(catalog: Catalog, directory, snapshots: bool = True, settings: Settings = SETTINGS) -> PerformancePool:
    pool = open_pool(settings, catalog, DIM, TEXT_DIM, vectors=_vectors(catalog), background=True,
                           snapshot_dir=directory if snapshots else None)
    assert pool.wait_ready(60)
    return pool


def _batch(tag: str, counts: dict[int, tuple[int, int]]) -> list[EngagementEvent]:
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [EngagementEvent(f"{tag}-{i}", f"v{i}", Counters(impressions=imp, likes=likes, last_event_at=at), at)
            for i, (imp, likes) in counts.items()]


def _state(pool: PerformancePool) -> dict:
    """What a route and GetVideo see: members and their scores, the view's rows, metadata and vectors."""
    now = READ_AT  # one instant for every pool compared: decayed alike
    with pool.reading() as view:
        order = np.argsort(view.rows)
        rows = view.rows[order]
        return {
            "members": sorted(pool._book.members().tolist()),
            "scores": np.round(pool._book.scores(rows, now), 9).tolist(),
            "threshold": round(pool._book.threshold(now), 9),
            "view": rows.tolist(),
            "meta": [(view.video_ids[k], view.creators[k], view.languages[k], int(view.sounds[k])) for k in order],
            "visual": view.visual[order].round(6).tolist(),
            "spoken": view.spoken[order].round(6).tolist(),
            "prior": round(pool._book.prior, 12),
        }


@pytest.fixture(params=["corpus-mean prior", "fixed prior"])
def world(tmp_path, request):
    settings = SETTINGS if request.param == "corpus-mean prior" else FIXED_PRIOR
    catalog = open_catalog("", tmp_path)
    for i in range(40):
        _ingest(catalog, i, prior=(0.02 + 0.001 * i, 50.0) if i % 3 == 0 else None)
    rng = np.random.default_rng(7)
    pool = _pool(catalog, tmp_path / "snapshots", settings=settings)
    for b in range(3):  # distinct counters: no ties, so a full read orders the pool as the live book does
        pool.record(_batch(f"b{b}", {i: (int(rng.integers(5, 60)), int(rng.integers(0, 9))) for i in range(30)}))
    yield catalog, pool, tmp_path, settings


def test_a_start_loads_the_snapshot_and_replays_what_changed_after_a_kill(world):
    catalog, pool, tmp_path, settings = world
    directory = tmp_path / "snapshots"
    snap = pool.snapshot(catalog.feed.position())
    pool.write_snapshot(snap)
    assert pool.changes == 0

    # After the snapshot: engagement (new videos among it, some of it still unfolded at the kill), a
    # member deleted, a member re-ingested under another creator with a content prior, a folded batch.
    pool.record(_batch("after1", {**{i: (40, 6) for i in range(30, 36)}, 3: (100, 30)}))
    catalog.engagement.fold()
    member = sorted(pool._book.members().tolist())
    gone, changed = member[0], member[1]
    video_of = {catalog.videos.row_id(f"v{i}"): i for i in range(40)}
    catalog.videos.delete(f"v{video_of[gone]}")
    pool.forget(gone)
    _ingest(catalog, video_of[changed], creator="someone-else", prior=(0.5, 400.0), seed=1)
    pool.reprofile(changed)
    pool.record(_batch("after2", {5: (30, 1), 36: (25, 20)}))  # logged, not folded: the kill loses nothing
    before = _state(pool)
    assert gone not in before["view"] and changed in before["members"]
    _abandon(catalog)  # kill -9: no fold, no snapshot at close

    again = open_catalog("", tmp_path)
    restored = _pool(again, directory, settings=settings)
    assert restored.loaded_from.startswith("the snapshot + "), restored.loaded_from
    after = _state(restored)
    assert set(again.pool.published()[3]) == set(after["members"])  # the published pool moved with it

    # A full read of the catalog (no snapshot) gives the same pool.
    full = _pool(again, directory, snapshots=False, settings=settings)
    assert full.loaded_from == "the catalog"
    assert after == _state(full)
    if settings.prior_rate > 0:
        # and the pool the killed process had (a corpus-mean prior: the live book re-keys for the mean
        # only once it drifted by 1%, a start keys with the mean itself)
        assert after == before
    again.close()


def test_snapshot_after_a_clean_close_replays_nothing_and_keeps_the_published_version(world):
    catalog, pool, tmp_path, settings = world
    catalog.engagement.fold()
    pool.write_snapshot(pool.snapshot(catalog.feed.position()))
    before, version = _state(pool), catalog.pool.version()
    catalog.close()

    again = open_catalog("", tmp_path)
    restored = _pool(again, tmp_path / "snapshots", settings=settings)
    assert restored.loaded_from.startswith("the snapshot + 0 videos changed after it"), restored.loaded_from
    assert _state(restored) == before
    assert again.pool.version() == version == restored.version  # nothing republished
    again.close()


@pytest.mark.parametrize("damage", ["truncated", "other catalog", "other weights"])
def test_a_damaged_or_mismatched_pool_snapshot_costs_a_full_read(world, caplog, damage):
    catalog, pool, tmp_path, settings = world
    directory = tmp_path / "snapshots"
    snap = pool.snapshot(catalog.feed.position())
    if damage == "other catalog":
        snap = dataclasses.replace(snap, catalog_id="another")
    elif damage == "other weights":
        snap = dataclasses.replace(snap, weights={**snap.weights, "shares": 99.0})
    pool.write_snapshot(snap)
    if damage == "truncated":
        path = directory / pool_snapshot.FILE
        path.write_bytes(path.read_bytes()[:1000])
    before = _state(pool)
    catalog.close()

    again = open_catalog("", tmp_path)
    with caplog.at_level(logging.WARNING, logger="coldopen.storage.pool_snapshot"):
        restored = _pool(again, directory, settings=settings)
    assert restored.loaded_from == "the catalog"
    assert "reading the pool from the catalog" in caplog.text
    assert _state(restored) == before
    again.close()


def test_the_fold_generation_grows_across_folds_replays_and_reopens(tmp_path):
    catalog = open_catalog("", tmp_path)
    for i in range(3):
        _ingest(catalog, i)
    assert catalog.engagement.generation() == 0
    catalog.engagement.record(_batch("a", {0: (10, 1), 1: (10, 1)}))
    catalog.engagement.fold()
    assert catalog.engagement.generation() == 1
    assert sorted(catalog.engagement.changed_since(0).tolist()) == sorted(catalog.videos.row_id(f"v{i}") for i in (0, 1))
    catalog.engagement.record(_batch("b", {2: (10, 1)}))
    _abandon(catalog)  # the next open replays the unfolded batch under a new generation
    again = open_catalog("", tmp_path)
    assert again.engagement.generation() == 2
    assert again.engagement.changed_since(1).tolist() == [again.videos.row_id("v2")]
    again.close()
    third = open_catalog("", tmp_path)
    assert third.engagement.generation() == 2 and third.engagement.changed_since(2).size == 0
    third.close()
