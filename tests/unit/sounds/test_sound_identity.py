"""Sound identity over the real store: postings keyed by hash, links instead of copies, the per-hash cap,
and the check that gives two clips of one new sound, matched at the same time, a single sound id."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np
import pytest

from coldopen.domain.media import MediaInfo
from coldopen.domain.transcripts import Transcript
from coldopen.domain.videos import Extraction, VideoMetadata
from coldopen.models.fingerprint import Fingerprinter
from coldopen.sounds.identity import SoundIdentity
from coldopen.sounds.postings import SoundPostings
from coldopen.storage.catalog import open_catalog
from testkit import audiogen as ag

R = 16_000


@pytest.fixture(scope="module")
def fingerprints():
    fp = Fingerprinter.load("cpu")
    song = ag.resample(ag.music(11, 40.0), ag.RATE, R)
    other = ag.resample(ag.music(12, 20.0), ag.RATE, R)
    parts = {
        "full": song[: 20 * R],            # seconds 0-20 of the song
        "again": song[2 * R : 18 * R],     # a reuse inside it
        "longer": song[10 * R : 40 * R],   # overlaps 10-20, then brings 20-40
        "tail": song[30 * R : 38 * R],     # only in the part "longer" added
        "other": other,
    }
    return fp, dict(zip(parts, fp.fingerprint(list(parts.values()))))


class World:
    def __init__(self, path, cap: int = 64, url: str = ""):
        self.store = open_catalog(url, path)
        self.postings = SoundPostings(Path(path) / "sound-postings", self.store.sounds.chunks_after,
                                      key=self.store.catalog_id(), compact_every_s=3600)
        self.identity = SoundIdentity(self.store, self.postings, cap=cap)
        self.write_lock = threading.Lock()

    def store_clip(self, video_id: str, fp, looked_up):
        """What ColdOpenService.ingest does once the clip is analysed: decide under the lock, then write."""
        with self.write_lock, self.identity.deciding(fp, looked_up) as (link, matches):
            media = MediaInfo(fp.duration_s, 0, 0, 0.0, True, "m4a", "", "aac")
            extraction = Extraction(media, 0, "none", 2, Transcript("", "", 0.0, "none"))
            sound = self.store.videos.upsert(
                VideoMetadata(video_id), extraction, np.zeros(2, np.float32), [], np.zeros((0, 2), np.float32), fp, link
            ).sound_id
            self.identity.written(sound, link)
        return sound, link, matches

    def ingest(self, video_id: str, fp):
        with self.identity.lookup(fp, limit=5) as looked_up:
            return self.store_clip(video_id, fp, looked_up)


def test_two_clips_of_one_new_sound_matched_at_once_get_one_sound(tmp_path, fingerprints):
    _, fps = fingerprints
    world = World(tmp_path)
    # Both clips are looked up before either is stored: neither finds anything.
    with world.identity.lookup(fps["full"], limit=5) as first, world.identity.lookup(fps["again"], limit=5) as second:
        assert first.matches == [] and second.matches == []
        sound_a, link_a, _ = world.store_clip("a", fps["full"], first)
        sound_b, link_b, matches = world.store_clip("b", fps["again"], second)
    assert link_a.sound_id is None and link_b.sound_id == sound_a == sound_b
    assert matches and matches[0].sound == sound_a
    assert world.identity.joined_in_flight == 1
    assert link_b.hashes.size == 0  # "again" lies inside what "full" covered: a link, no postings
    # An unrelated song started at the same time is not pulled in.
    with world.identity.lookup(fps["other"], limit=5) as third:
        sound_c, link_c, _ = world.store_clip("c", fps["other"], third)
    assert link_c.sound_id is None and sound_c != sound_a


@pytest.mark.parametrize("old_transaction", [False, True], ids=["quiet", "an-older-transaction-open"])
def test_two_replicas_matching_one_new_sound_at_once_get_one_sound(tmp_path, fingerprints, postgres, old_transaction):
    """Replicas keep no common memory: the check goes through the catalog (the new-sound lock, then the
    chunks committed since the lookup began). With an older transaction still open, a follower cannot
    take in the newer chunks yet (its cursor stops below that transaction): the check reads them itself."""
    _, fps = fingerprints
    url = postgres.new_database()
    one, two = World(tmp_path / "one", url=url), World(tmp_path / "two", url=url)
    holder = contextlib.ExitStack()
    if old_transaction:
        conn = holder.enter_context(one.store.db.read())
        conn.exec_driver_sql("SELECT pg_current_xact_id()")  # an id, so it holds the snapshots' xmin back
    with holder, one.identity.lookup(fps["full"], limit=5) as first, two.identity.lookup(fps["again"], limit=5) as second:
        assert first.matches == [] and second.matches == []
        sound_a, link_a, _ = one.store_clip("a", fps["full"], first)
        sound_b, link_b, matches = two.store_clip("b", fps["again"], second)
        if old_transaction:  # the follower could not take "a" in: it came from the catalog
            assert two.postings.lookup(fps["again"].hashes, 64)[0].size == 0
    assert link_a.sound_id is None and link_b.sound_id == sound_a == sound_b
    assert matches and matches[0].sound == sound_a and link_b.hashes.size == 0
    # Unrelated audio still starts its own sound.
    with two.identity.lookup(fps["other"], limit=5) as third:
        sound_c, link_c, _ = two.store_clip("c", fps["other"], third)
    assert link_c.sound_id is None and sound_c != sound_a
    one.store.close()
    two.store.close()


def test_reuse_adds_a_link_and_only_the_part_the_sound_lacked(tmp_path, fingerprints):
    fp, fps = fingerprints
    world = World(tmp_path)
    sound, link, _ = world.ingest("full", fps["full"])
    stored = world.store.sounds.postings_total()
    assert stored == fps["full"].landmarks == link.hashes.size
    # A reuse inside the sound adds nothing.
    again, link, _ = world.ingest("again", fps["again"])
    assert again == sound and link.hashes.size == 0 and world.store.sounds.postings_total() == stored
    assert link.offset * fp.params.frame_seconds == pytest.approx(2.0, abs=0.05)
    # A clip that overlaps the sound and runs past it adds postings for the new part only, on the sound's timeline.
    longer, link, _ = world.ingest("longer", fps["longer"])
    assert longer == sound and 0 < link.hashes.size < fps["longer"].landmarks
    assert link.times.min() * fp.params.frame_seconds >= 19.5
    first, last = world.store.sounds.extent(sound)
    assert last * fp.params.frame_seconds == pytest.approx(40.0, abs=1.0) and first * fp.params.frame_seconds < 0.5
    # So audio from the added part, never uploaded on its own, is now this sound too.
    before = world.store.sounds.postings_total()
    tail, link, _ = world.ingest("tail", fps["tail"])
    assert tail == sound and link.hashes.size == 0 and world.store.sounds.postings_total() == before
    # The videos behind a match are those whose span overlaps it.
    spans = world.store.sounds.sharing([(sound, int(30 / fp.params.frame_seconds), int(38 / fp.params.frame_seconds))], 10)
    assert {v[1] for v in spans[sound]} == {"longer", "tail"}


def test_hashes_at_the_cap_are_left_out_and_get_no_more_postings(tmp_path, fingerprints):
    _, fps = fingerprints
    world = World(tmp_path, cap=2)
    # Three videos of the same audio under different ids would link, not copy; so to fill a hash's postings
    # three *different* sounds must share it: store one song's fingerprint as three separate new sounds.
    fp = fps["other"]
    for i in range(2):
        with world.identity.lookup(fp, limit=5) as looked_up:
            pass  # decided outside: force a new sound each time by deciding with no matches
        world.store_clip(f"copy-{i}", fp, type(looked_up)([], 10**9, looked_up.common))
    h, s, t, common = world.postings.lookup(fp.hashes, cap=2)
    assert h.size == 0 and np.isin(fp.index_hashes, common).mean() > 0.9  # every hash now has 2 sounds: all left out
    with world.identity.lookup(fp, limit=5) as looked_up:
        sound, link, _ = world.store_clip("copy-2", fp, looked_up)
    assert link.sound_id is None and link.hashes.size < 0.1 * fp.landmarks  # a new sound, but no postings for capped hashes
