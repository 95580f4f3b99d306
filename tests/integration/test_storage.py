"""The SQL catalog on both stacks: migrations agree with the schema, a store written before Alembic is
imported whole, and two catalogs on one database (two replicas) keep ids unique and events counted once."""

from __future__ import annotations

import shutil
import sqlite3
import threading

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from coldopen.domain.engagement import Counters, EngagementEvent
from coldopen.domain.media import MediaInfo
from coldopen.domain.sounds import SoundLink
from coldopen.domain.transcripts import Transcript
from coldopen.domain.videos import Extraction, VideoMetadata
from coldopen.storage.catalog import Catalog, open_catalog
from coldopen.storage.database import Database
from coldopen.storage.schema import metadata
from testkit.paths import TEST_DATA

LEGACY = TEST_DATA / "legacy" / "store-before-alembic.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request) -> str:
    return "" if request.param == "sqlite" else request.getfixturevalue("postgres").new_database()


def test_migrations_create_exactly_the_schema(catalog_url, tmp_path):
    catalog = open_catalog(catalog_url, tmp_path)
    try:
        with catalog.db.read() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"storage/schema.py and the Alembic revisions disagree: {diff}"
        assert catalog.db.revision() == "0010"
    finally:
        catalog.close()
    again = open_catalog(catalog_url, tmp_path)  # a second start migrates nothing and keeps the data
    assert again.db.revision() == "0010"
    again.close()


def test_the_postings_upgrade_packs_each_sound_into_one_chunk(catalog_url, tmp_path):
    """Revision 0006 replaces the hash-keyed `sound_postings` rows with one packed chunk per sound, and a
    node's postings started on the upgraded catalog find exactly the old rows."""
    from alembic import command
    from alembic.config import Config

    from coldopen.sounds.postings import SoundPostings
    from coldopen.storage.database import _MIGRATIONS, sqlite_url

    db = Database(catalog_url or sqlite_url(tmp_path / "coldopen.sqlite3"))
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with db.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    rng = np.random.default_rng(4)
    old = sorted(
        {
            (int(h), int(sound), int(t))
            for sound in (1, 2, 5)
            for h, t in zip(rng.integers(-(2**31), 2**31, 300), rng.integers(0, 1875, 300))
        }
    )
    with db.write() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sounds (id, created_at, first_video, postings) VALUES "
            "(1, '2026', 'a', 300), (2, '2026', 'b', 300), (5, '2026', 'c', 300), (6, '2026', 'd', 0)"
        )
        for h, sound, t in old:
            conn.exec_driver_sql(f"INSERT INTO sound_postings (hash, sound, t) VALUES ({h}, {sound}, {t})")
    db.migrate()
    catalog = Catalog(db)
    try:
        assert db.revision() == "0010"
        chunks, _ = catalog.sounds.chunks_after(0)
        assert sorted(c.sound for c in chunks) == [1, 2, 5]  # one each; a sound without postings has none
        got = sorted(
            (int(h), c.sound, int(t)) for c in chunks for h, t in zip(c.hashes.astype(np.uint32).view(np.int32), c.times)
        )
        assert got == old
        node = SoundPostings(tmp_path / "node", catalog.sounds.chunks_after, key=catalog.catalog_id(), compact_every_s=3600)
        keys = np.array([h for h, _, _ in old[::7]], np.int64).astype(np.uint32)
        h, snd, t, _ = node.lookup(keys, cap=64)
        wanted = set(keys.view(np.int32).tolist())
        assert sorted(zip(h.astype(np.uint32).view(np.int32).tolist(), snd.tolist(), t.tolist())) == [
            p for p in old if p[0] in wanted
        ]
        node.close()
    finally:
        catalog.close()


def test_a_store_written_before_alembic_is_imported_whole(tmp_path):
    """tests/data/legacy holds a data dir written by the SQLite-only store (`coldopen demo`, 8 sample clips)."""
    path = tmp_path / "coldopen.sqlite3"
    shutil.copy(LEGACY, path)
    old = sqlite3.connect(LEGACY)
    videos = old.execute("SELECT id, video_id, sound_id, caption, length(fingerprint) FROM videos ORDER BY id").fetchall()
    frames = dict(old.execute("SELECT v.video_id, count(*) FROM frames f JOIN videos v ON v.id = f.video GROUP BY v.video_id"))
    impressions = dict(old.execute("SELECT video, impressions FROM engagement"))
    postings = sorted(old.execute("SELECT hash, sound, t FROM sound_postings"))
    sounds = old.execute("SELECT id, first_video FROM sounds ORDER BY id").fetchall()
    old.close()

    catalog = open_catalog("", tmp_path)
    assert catalog.embedding_space() == ("ViT-B-32/none", 512)
    for row, video_id, sound_id, caption, _ in videos:
        assert catalog.videos.row_id(video_id) == row
        record = catalog.videos.get(video_id, include_embeddings=True)
        assert record.metadata.caption == caption and record.extraction.sound_id == sound_id
        assert len(record.frame_embeddings) == frames.get(video_id, 0)
        # Its fingerprints were made by the older hash format (triplet32-v1): they cannot be matched by this
        # one, so they are dropped at open (and counted, for the start-up log); the videos keep their sounds.
        assert catalog.videos.fingerprint(video_id)[1] is None
    assert catalog.stale_fingerprints == sum(fp is not None for *_, fp in videos) > 0
    assert {row: c.impressions for row, c in catalog.engagement.all_counters().items()} == impressions
    chunks, _ = catalog.sounds.chunks_after(0, limit=10**6)  # the postings, packed by sound
    assert (
        sorted(
            (int(h), c.sound, int(t))
            for c in chunks
            for h, t in zip(c.hashes.astype(np.int64).astype(np.uint32).view(np.int32), c.times)
        )
        == postings
    )
    assert [(s.sound_id, s.first_video) for s in sorted(catalog.sounds.stats("2000"), key=lambda s: s.sound_id)] == sounds
    # The routing profile's language came out of the transcript JSON.
    assert {p.language for p in catalog.videos.profiles([r for r, *_ in videos])} >= {"en"}
    # New ids continue after the old ones: vector ids and sound ids are never handed out twice.
    written = catalog.videos.upsert(*_video("new-one"), sound=_new_sound())
    assert (written.row, written.replaced, written.sound_id) == (len(videos) + 1, False, len(sounds) + 1)
    catalog.close()


def _video(video_id: str, dim: int = 512):
    media = MediaInfo(5.0, 320, 180, 30.0, True, "mp4", "h264", "aac")
    extraction = Extraction(media, 1, "ViT-B-32/none", dim, Transcript("hello", "en", 0.9, "tiny.en"))
    v = np.ones(dim, np.float32) / np.sqrt(dim)
    return VideoMetadata(video_id), extraction, v, [0.0], v[None, :]


def _new_sound(n: int = 3) -> SoundLink:
    return SoundLink(None, 0, 0, 100, np.arange(n, dtype=np.uint32) * 7919, np.arange(n))


@pytest.mark.parametrize("stack", ["postgresql"])
def test_two_replicas_writing_at_once_keep_ids_unique_and_count_events_once(stack, postgres, tmp_path):
    url = postgres.new_database()
    replicas = [Catalog(Database(url)), Catalog(Database(url))]
    results: list = []
    errors: list = []

    def work(catalog: Catalog, k: int) -> None:
        try:
            for i in range(12):
                # Every video twice (once per replica), and a new sound each time.
                results.append((f"v{i}", catalog.videos.upsert(*_video(f"v{i}", 8), sound=_new_sound())))
            catalog.engagement.record(
                [EngagementEvent(f"e{i}", f"v{i}", Counters(impressions=10), "2026-11-23T00:00:00.000Z") for i in range(12)]
            )
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(c, k)) for k, c in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    rows: dict[str, set[int]] = {}
    for video_id, (row, *_) in results:
        rows.setdefault(video_id, set()).add(row)
    assert all(len(r) == 1 for r in rows.values()), "a video got two row ids"
    assert len({next(iter(r)) for r in rows.values()}) == 12, "two videos share a row id"
    sounds = [w.sound_id for _, w in results]
    assert len(set(sounds)) == len(sounds) == 24, "two new sounds got one id"
    replaced = sorted(r[1] for _, r in results)
    assert replaced.count(False) == 12 and replaced.count(True) == 12
    counters = replicas[1].engagement.all_counters()
    assert sorted(c.impressions for c in counters.values()) == [10] * 12, "an event was counted twice"
    for c in replicas:
        c.close()


def test_milvus_hnsw_recall_at_10_against_exact_search(milvus):
    """The Milvus backend with the default index settings, against FAISS exact search on a seeded corpus
    (clustered like real embeddings: topics plus per-video variation)."""
    import json as _json

    from coldopen.config.settings import Settings
    from coldopen.storage.vectors import FaissIndex
    from coldopen.storage.vectors.milvus_index import MilvusIndex

    rng = np.random.default_rng(7)
    dim, n, topics = 64, 20_000, 40
    centres = rng.standard_normal((topics, dim))
    vectors = centres[rng.integers(0, topics, n)] + 0.6 * rng.standard_normal((n, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    queries = vectors[rng.choice(n, 200, replace=False)] + 0.05 * rng.standard_normal((200, dim)).astype(np.float32)
    defaults = Settings()
    index = MilvusIndex(
        milvus.uri,
        f"recall{rng.integers(1 << 30)}",
        dim,
        defaults.vector_index,
        _json.loads(defaults.vector_index_params),
        _json.loads(defaults.vector_search_params),
    )
    ids = np.arange(1, n + 1)
    for i in range(0, n, 2000):
        index.add(ids[i : i + 2000], vectors[i : i + 2000])
    index.flush()  # sealed: searched through HNSW (a growing segment is brute-forced, and would prove nothing)
    held = index.index_params()
    assert held["index_type"] == "HNSW" and held["params"] == _json.loads(defaults.vector_index_params), held
    exact = FaissIndex(dim)
    exact.add(ids, vectors)
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert len(index) == n and recall >= 0.95, recall
    index.close()


def test_the_change_feed_keeps_unshipped_changes_and_prunes_old_shipped_ones(tmp_path):
    catalog = open_catalog("", tmp_path)
    shipped = catalog.videos.upsert(*_video("a", 8)).change
    waiting = catalog.videos.upsert(*_video("b", 8), ship=True).change  # for an external store that was down
    assert [c.seq for c in catalog.feed.unshipped("9999")] == [waiting]
    with catalog.db.write() as conn:
        conn.exec_driver_sql("UPDATE vector_changes SET at = '2026-01-01T00:00:00.000Z'")
    assert catalog.feed.prune("2026-06-01T00:00:00.000Z") == 1
    changes, _ = catalog.feed.changes_after(0)
    assert [c.seq for c in changes] == [waiting] and shipped not in [c.seq for c in changes]
    catalog.feed.mark_shipped([waiting])
    assert catalog.feed.unshipped("9999") == [] and catalog.feed.unshipped_count() == 0
    catalog.close()


def test_pruning_every_old_change_never_numbers_new_changes_behind_a_cursor(catalog_url, tmp_path):
    """A quiet day: every change is shipped and older than the retention. The feed keeps its newest, so
    the next change is numbered after every cursor handed out, and a follower at that cursor sees it."""
    catalog = open_catalog(catalog_url, tmp_path)
    for name in "abc":
        catalog.videos.upsert(*_video(name, 8))
    cursor = catalog.feed.position()
    with catalog.db.write() as conn:
        conn.exec_driver_sql("UPDATE vector_changes SET at = '2026-01-01T00:00:00.000Z', shipped = TRUE")
    assert catalog.feed.prune("2026-06-01T00:00:00.000Z") == 2 and catalog.feed.position() >= cursor
    later = catalog.videos.upsert(*_video("d", 8)).change
    changes, _ = catalog.feed.changes_after(cursor)
    assert [c.video_id for c in changes] == ["d"] and changes[0].seq == later
    catalog.close()


@pytest.mark.parametrize("dtype, bytes_per_value", [("fp16", 2), ("fp32", 4), ("none", 0)])
def test_frame_embeddings_are_kept_as_set(tmp_path, dtype, bytes_per_value):
    """30 frames of a 512-d CLIP (a 30-s clip at 1 fps): 30 KB in fp16, 60 KB in fp32, nothing with none."""
    catalog = open_catalog("", tmp_path)
    meta, extraction, video, _, _ = _video("v", 512)
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((30, 512)).astype(np.float32)
    frames /= np.linalg.norm(frames, axis=1, keepdims=True)
    catalog.videos.upsert(meta, extraction, video, [float(i) for i in range(30)], frames, frame_dtype=dtype)
    with catalog.db.read() as conn:
        stored = conn.exec_driver_sql("SELECT coalesce(sum(length(embedding)), 0) FROM frames").scalar_one()
    assert stored == 30 * 512 * bytes_per_value
    got = catalog.videos.get("v", include_embeddings=True).frame_embeddings
    if dtype == "none":
        assert got.shape == (0, 512)
    else:
        assert np.allclose(got, frames, atol=0 if dtype == "fp32" else 2**-11, rtol=0)
    catalog.close()


def test_a_bulk_load_reads_back_as_ingested_rows_do(catalog_url, tmp_path):
    """What the benchmarks load through `Catalog.bulk` is what Ingest and ReportEngagement would have
    stored: the same records, a change per video that a follower sees, counters, and postings a node follows."""
    from coldopen.domain.errors import InvalidInput

    catalog = open_catalog(catalog_url, tmp_path)
    try:
        meta, extraction, v, _, _ = _video("ingested")
        catalog.videos.upsert(meta, extraction, v, [], np.empty((0, 512)))
        cursor = catalog.feed.position()
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((3, 512)).astype(np.float32)
        spoken = rng.standard_normal((3, 384)).astype(np.float32)
        metas = [VideoMetadata(f"b{i}", creator_id=f"c{i}", caption="bulk", hashtags=("x",)) for i in range(3)]
        rows = catalog.bulk.videos(metas, extraction, vectors, spoken=spoken)
        assert len(set(rows)) == 3 and catalog.videos.row_id("ingested") not in rows
        assert [catalog.videos.row_id(f"b{i}") for i in range(3)] == rows
        record, ingested = catalog.videos.get("b1"), catalog.videos.get("ingested")
        assert record is not None and ingested is not None
        assert record.metadata == VideoMetadata("b1", creator_id="c1", caption="bulk", hashtags=("x",))
        assert record.extraction == ingested.extraction
        np.testing.assert_array_equal(catalog.videos.embedding("b1"), vectors[1])
        np.testing.assert_array_equal(catalog.videos.embedding("b1", "spoken"), spoken[1])
        assert catalog.videos.embedding("b1", "caption") is None
        changes, _ = catalog.feed.changes_after(cursor)
        assert sorted(c.video_id for c in changes) == ["b0", "b1", "b2"]

        with pytest.raises(InvalidInput, match="only add new videos"):  # refused whole: nothing half-written
            catalog.bulk.videos([VideoMetadata("b3"), VideoMetadata("b0")], extraction, vectors[:2])
        assert catalog.videos.row_id("b3") is None

        assert catalog.bulk.counters([("b0", Counters(impressions=10, likes=2, last_event_at="2026-12-01T00:00:00.000Z"))]) == 1
        assert catalog.engagement.counters(rows[0]) == Counters(impressions=10, likes=2, last_event_at="2026-12-01T00:00:00.000Z")

        follower = catalog.sounds.position()
        ids = catalog.bulk.sounds([(np.array([5, 9], np.uint32), np.array([0, 3], np.int32)),
                                   (np.array([7], np.uint32), np.array([1], np.int32))], frames=1875)
        chunks, _ = catalog.sounds.chunks_after(follower)
        assert [(c.sound, c.hashes.tolist(), c.times.tolist()) for c in chunks] == [
            (ids[0], [5, 9], [0, 3]), (ids[1], [7], [1])]
        assert catalog.sounds.postings_total() == 3 and catalog.sounds.extent(ids[0]) == (0, 1875)
    finally:
        catalog.close()
