"""One video, one answer to "which sound is this, where does it start, who else uses it", whichever RPC asks.

Real recordings (tests/data/music/LICENSES.md): a CC BY song, JFK's inaugural address (public domain), the
song under that speech at equal loudness (a clip reusing two sounds), and an unrelated CC BY song. Every
RPC that speaks of sounds is asked about each: Ingest, GetVideo, SearchBySound by id and by upload,
GetSound, ListSounds, Route's sound reasons and the CLI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coldopen.engine import media
from coldopen.v1 import coldopen_pb2 as pb
from testkit import audiogen as ag
from testkit import mediagen
from testkit.paths import REPO, TEST_DATA
from tests.conftest import upload

pytestmark = pytest.mark.slow

R = 16_000
MUSIC = TEST_DATA / "music"
ROOT = REPO
SONG_AT = 20.0     # the song clip is the recording's seconds 20-40 ...
MIXED_AT = 25.0    # ... the mixed clip reuses its seconds 25-36, under the speech: 5 s into the song clip
TOLERANCE_S = 0.1


def _clip(path: Path, audio: np.ndarray, photo: str) -> Path:
    frames = mediagen.pan_frames(mediagen.photo(photo), int(len(audio) / R * 4), (160, 96))
    return mediagen.write_clip(path, frames, 4, audio, R)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("sound-answers")
    song = media.decode_audio(MUSIC / "hobbs-lets-go-fishin.ogg")
    speech = media.decode_audio(MUSIC / "jfk-inaugural-address.opus")
    other = media.decode_audio(MUSIC / "macleod-vibe-ace.ogg")
    files = {
        "song": _clip(d / "song.mp4", song[int(SONG_AT * R) : int((SONG_AT + 20) * R)], "coffee"),
        "speech": _clip(d / "speech.mp4", speech, "astronaut"),
        "mixed": _clip(d / "mixed.mp4", ag.overlay(song[int(MIXED_AT * R) :][: len(speech)], speech, 0.0), "rocket"),
        "unrelated": _clip(d / "unrelated.mp4", other[: 12 * R], "chelsea"),
    }
    return files, ag.encode(d / "song-whole.m4a", ag.resample(song[: 60 * R], R, ag.RATE))


def _sound_search(stub, video_id: str | None = None, path: Path | None = None):
    if video_id is not None:
        return list(stub.SearchBySound(iter([pb.SoundSearchRequest(query=pb.SoundQuery(video_id=video_id))])).matches)
    first = pb.SoundSearchRequest(query=pb.SoundQuery(upload=pb.UploadInfo(filename=path.name)))
    chunks = (pb.SoundSearchRequest(chunk=m.chunk) for m in list(upload(path.read_bytes(), "x"))[1:])
    return list(stub.SearchBySound(iter([first, *chunks])).matches)


def _key(matches) -> dict[tuple[str, str], tuple[float, float, float]]:
    return {(m.video_id, m.sound_id): (m.query_start_s, m.reference_start_s, m.duration_s) for m in matches}


def _close(a: tuple, b: tuple) -> bool:
    return all(abs(x - y) <= TOLERANCE_S for x, y in zip(a, b))


def test_every_rpc_gives_one_answer_for_a_clip_with_two_sounds(start_server, world):
    files, whole_song = world
    server = start_server(pool_min_impressions=1, pool_percentile=0.0)
    stub = server.stub
    replies = {v: server.ingest(f, v, creator_id=f"by-{v}") for v, f in files.items()}
    durations = {v: r.extraction.media.duration_s for v, r in replies.items()}
    sound = {v: replies[v].extraction.sound_id for v in ("song", "speech", "unrelated")}
    assert len(set(sound.values())) == 3 and all(replies[v].new_sound for v in sound)

    # The mixed clip reuses both sounds: its primary one is the one covering more of it (README: Sounds).
    mixed = replies["mixed"]
    uses = {u.sound_id: u for u in mixed.extraction.sounds}
    assert set(uses) == {sound["song"], sound["speech"]} and not mixed.new_sound
    assert [u.primary for u in mixed.extraction.sounds] == [True, False]
    assert mixed.extraction.sound_id == mixed.extraction.sounds[0].sound_id
    song_use = uses[sound["song"]]
    assert song_use.sound_start_s - song_use.start_s == pytest.approx(MIXED_AT - SONG_AT, abs=TOLERANCE_S)

    # GetVideo says the same as Ingest did, for every clip: which sounds, which is primary, who started them.
    for v, r in replies.items():
        got = stub.GetVideo(pb.GetVideoRequest(video_id=v)).extraction
        assert got.sound_id == r.extraction.sound_id and got.new_sound == r.new_sound
        assert list(got.sounds) == list(r.extraction.sounds)

    # Ingest's matches are SearchBySound by the clip's id; both sounds' videos are there, at their offsets.
    by_id = _key(_sound_search(stub, video_id="mixed"))
    assert _key(mixed.sound_matches).keys() == by_id.keys()
    assert all(_close(_key(mixed.sound_matches)[k], by_id[k]) for k in by_id)
    assert set(by_id) == {("song", sound["song"]), ("speech", sound["speech"])}
    q, ref, _ = by_id[("song", sound["song"])]
    assert ref - q == pytest.approx(MIXED_AT - SONG_AT, abs=TOLERANCE_S)  # the mixed clip's 0 s is the song clip's 5 s

    # Asked from the other side, and by uploading each clip's file instead of naming it: the same stretches.
    for v, f in files.items():
        named = _key(_sound_search(stub, video_id=v))
        uploaded = _key(_sound_search(stub, path=f))
        own = {k: x for k, x in uploaded.items() if k[0] == v}
        assert own and all(x[0] == pytest.approx(x[1], abs=TOLERANCE_S) for x in own.values())  # itself, in place
        others = {k: x for k, x in uploaded.items() if k[0] != v}
        assert others.keys() == named.keys(), v
        assert all(_close(others[k], named[k]) for k in named), (v, others, named)
        for (other, _), (q, ref, dur) in named.items():  # never negative, within both clips, no longer than either
            assert q >= 0 and ref >= 0 and dur > 0
            assert q + dur <= durations[v] + TOLERANCE_S and ref + dur <= durations[other] + TOLERANCE_S
    assert ("mixed", sound["song"]) in _key(_sound_search(stub, video_id="song"))
    assert _key(_sound_search(stub, video_id="unrelated")) == {}

    # The whole recording, uploaded: the song clip at 20 s of it and the mixed clip at 25 s.
    found = _key(_sound_search(stub, path=whole_song))
    assert found[("song", sound["song"])][0] - found[("song", sound["song"])][1] == pytest.approx(SONG_AT, abs=0.2)
    assert found[("mixed", sound["song"])][0] - found[("mixed", sound["song"])][1] == pytest.approx(MIXED_AT, abs=0.2)

    # GetSound and ListSounds count the mixed clip for both of its sounds.
    for v in ("song", "speech"):
        s = stub.GetSound(pb.GetSoundRequest(sound_id=sound[v], window_s=3600))
        assert s.video_count == 2 and set(s.recent_video_ids) == {v, "mixed"} and s.first_video_id == v
    listed = {s.sound_id: s.video_count for s in stub.ListSounds(pb.ListSoundsRequest(window_s=3600)).sounds}
    assert listed == {sound["song"]: 2, sound["speech"]: 2, sound["unrelated"]: 1}

    # Route: the performing clips sharing a stretch of a sound with the mixed clip get a sound reason naming it.
    events = [pb.EngagementEvent(event_id=f"e-{v}", video_id=v, impressions=5000, likes=400) for v in files]
    assert stub.RecordEngagement(iter(events)).accepted == 4
    query = pb.RouteQuery(video_id="mixed", k=3, weights=pb.RouteWeights(visual=0.0, spoken=0.0, caption=0.0, sound=1.0))
    routed = {n.video_id: n for n in stub.Route(iter([pb.RouteRequest(query=query)])).neighbours}
    assert routed["song"].shared_sound_id == sound["song"] and routed["speech"].shared_sound_id == sound["speech"]
    assert routed["song"].contributions.sound > 0 and routed["speech"].contributions.sound > 0
    assert routed["unrelated"].shared_sound_id == "" and routed["unrelated"].contributions.sound <= 0

    # The CLI tells who started a sound and who reused it, as GetVideo does.
    out = subprocess.run([sys.executable, "-m", "coldopen.cli", "get", "--server", server.server.address, "mixed"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
    assert "reused" in out and "new: this video started it" not in out
    out = subprocess.run([sys.executable, "-m", "coldopen.cli", "get", "--server", server.server.address, "song"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
    assert "new: this video started it" in out
