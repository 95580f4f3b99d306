"""Audio fingerprints: the robustness bar, false matches, and sound ids end to end over gRPC."""

from __future__ import annotations


import numpy as np
import pytest

from coldopen.v1 import coldopen_pb2 as pb
from models.fingerprint import Fingerprinter
from server import media, sounds
from server.sound_index import SoundIndex
from tests import audiogen as ag
from tests import mediagen, soundsuite
from tests.conftest import upload

N_TRACKS = 21          # 21 x 20 = 420 unrelated (query, reference) pairs per distortion
TRACK_SECONDS = 15.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Reference songs uploaded as AAC, fingerprinted, and put in the production sound index."""
    folder = tmp_path_factory.mktemp("sounds")
    tracks = soundsuite.make_tracks(N_TRACKS, TRACK_SECONDS)
    fp = Fingerprinter.load("cpu")
    refs = fp.fingerprint([media.decode_audio(soundsuite.reference_file(i, tracks, folder)) for i in range(N_TRACKS)])
    index = SoundIndex()
    rows = {}
    for i, f in enumerate(refs):
        index.add(100 + i, f)
        rows[100 + i] = i
    return tracks, folder, fp, index, rows


def _query(world, path) -> list[sounds.SoundMatch]:
    _, _, fp, index, _ = world
    q = fp.fingerprint([media.decode_audio(path)])[0]
    return sounds.match(q, *index.lookup(q.hashes), fp.params.frame_seconds, limit=N_TRACKS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(soundsuite.DISTORTIONS))
def test_reused_sound_is_found_and_unrelated_sounds_are_not(world, kind):
    tracks, folder, _, _, rows = world
    _, make = soundsuite.DISTORTIONS[kind]
    missed, false = [], []
    for i in range(N_TRACKS):
        found = {rows[m.video_row] for m in _query(world, make(i, tracks, folder))}
        if i not in found:
            missed.append(i)
        false += [(i, j) for j in found - {i} - soundsuite.also_contains(kind, i, N_TRACKS)]
    assert not missed, f"{kind}: reference not found for queries {missed}"
    pairs = N_TRACKS * (N_TRACKS - 1)
    assert len(false) / pairs <= 0.01, f"{kind}: {len(false)} false matches over {pairs} unrelated pairs: {false}"


@pytest.mark.slow
def test_match_reports_offsets_and_span(world):
    tracks, folder, _, _, rows = world
    i = 3
    start = soundsuite.excerpt_start(i, tracks[i])
    clip = np.concatenate([np.zeros(2 * ag.RATE, np.float32), tracks[i][start:][: 6 * ag.RATE]])
    best = _query(world, ag.encode(folder / "offsets.m4a", clip))[0]
    assert rows[best.video_row] == i
    assert best.query_start_s == pytest.approx(2.0, abs=0.5)
    assert best.reference_start_s - best.query_start_s == pytest.approx(start / ag.RATE - 2.0, abs=0.05)
    assert 4.0 <= best.duration_s <= 6.1 and 0.5 <= best.confidence <= 1.0


def test_sound_index_replaces_removes_and_merges():
    fp = Fingerprinter.load("cpu")
    a, b = fp.fingerprint([ag.resample(ag.music(s, 5.0), ag.RATE, 16000) for s in (3, 4)])
    index = SoundIndex(merge_at=1)  # merge after every add
    index.add(1, a)
    index.add(2, b)
    _, rows, _ = index.lookup(a.hashes)
    assert set(rows.tolist()) >= {1} and (rows == 1).sum() >= len(a)
    index.add(1, b)  # re-ingest row 1 with other audio: a's postings are gone
    assert index.postings == 2 * len(b)  # the merge after that add dropped a's retired postings
    assert sounds.match(a, *index.lookup(a.hashes), fp.params.frame_seconds) == []
    index.remove(2)
    assert {m.video_row for m in sounds.match(b, *index.lookup(b.hashes), fp.params.frame_seconds)} == {1}


def test_fingerprint_is_batched_and_deterministic():
    fp = Fingerprinter.load("cpu")
    a, b = ag.resample(ag.music(1, 6.0), ag.RATE, 16000), ag.resample(ag.music(2, 4.0), ag.RATE, 16000)
    one = fp.fingerprint([a])[0]
    both = fp.fingerprint([a, b])
    assert np.array_equal(one.hashes, both[0].hashes) and np.array_equal(one.times, both[0].times)
    assert len(both[1]) > 100 and both[1].duration_s == pytest.approx(4.0, abs=0.01)
    assert len(fp.fingerprint([np.zeros(16000 * 3, np.float32)])[0]) == 0  # silence has no landmarks


# --- end to end over gRPC ----------------------------------------------------------------

@pytest.fixture(scope="module")
def song():
    return ag.music(42, 12.0)


def _clip_with_sound(path, photo, audio44k):
    audio = ag.resample(audio44k, ag.RATE, 16000)
    frames = mediagen.pan_frames(mediagen.photo(photo), int(len(audio) / 16000 * 8), (160, 96))
    return mediagen.write_clip(path, frames, 8, audio, 16000)


@pytest.mark.slow
def test_reused_sound_under_voice_over_end_to_end(start_server, clips, song, tmp_path):
    server = start_server()
    original = server.ingest(_clip_with_sound(tmp_path / "orig.mp4", "astronaut", song), "dance-original")
    assert original.new_sound and original.extraction.sound_id.startswith("snd-") and original.extraction.landmarks > 500
    # Someone reuses seconds 3-11 of the song and talks over it at equal loudness (with sentences
    # that the speech-only clips below do not contain: those would rightly match this voice-over).
    voice = np.concatenate([ag.speech("cat"), ag.speech("astronaut")])
    reuse = ag.overlay(song[3 * ag.RATE : 11 * ag.RATE], voice, 0.0)
    reply = server.ingest(_clip_with_sound(tmp_path / "reuse.mp4", "coffee", reuse), "dance-reuse")
    assert not reply.new_sound and reply.extraction.sound_id == original.extraction.sound_id
    top = reply.sound_matches[0]
    assert top.video_id == "dance-original" and top.sound_id == original.extraction.sound_id
    assert top.reference_start_s - top.query_start_s == pytest.approx(3.0, abs=0.05)
    assert reply.extraction.transcript.text  # the voice-over was transcribed too

    # Speech-only clips each get their own sound; they do not collapse into one.
    speech_ids = {server.ingest(clips[name], name).extraction.sound_id for name in ("fox", "coffee", "rocket", "hubble")}
    assert len(speech_ids) == 4 and original.extraction.sound_id not in speech_ids
    assert server.ingest(clips["cat"], "cat").extraction.sound_id == ""  # no audio track

    # SearchBySound by video id, and by an uploaded audio-only file that is not stored.
    by_id = server.stub.SearchBySound(iter([pb.SoundSearchRequest(query=pb.SoundQuery(video_id="dance-reuse"))]))
    assert [m.video_id for m in by_id.matches] == ["dance-original"]
    excerpt = ag.encode(tmp_path / "excerpt.m4a", ag.with_noise(song[6 * ag.RATE : 11 * ag.RATE], 10))
    first = pb.SoundSearchRequest(query=pb.SoundQuery(upload=pb.UploadInfo(filename="excerpt.m4a"), limit=5))
    chunks = (pb.SoundSearchRequest(chunk=m.chunk) for m in list(upload(excerpt.read_bytes(), "x"))[1:])
    by_upload = server.stub.SearchBySound(iter([first, *chunks]))
    assert {m.video_id for m in by_upload.matches} == {"dance-original", "dance-reuse"}
    assert server.stub.GetVideo(pb.GetVideoRequest(video_id="dance-original")).extraction.sound_id == original.extraction.sound_id
    with pytest.raises(Exception):
        server.stub.GetVideo(pb.GetVideoRequest(video_id="x"))  # the upload was not stored

    # Trend counting: the reused sound has two videos, both recent.
    sound = server.stub.GetSound(pb.GetSoundRequest(sound_id=original.extraction.sound_id, window_s=3600))
    assert (sound.video_count, sound.recent_video_count) == (2, 2)
    assert set(sound.recent_video_ids) == {"dance-original", "dance-reuse"} and sound.first_video_id == "dance-original"
    listed = server.stub.ListSounds(pb.ListSoundsRequest(window_s=3600, limit=3))
    assert listed.sounds[0].sound_id == original.extraction.sound_id and len(listed.sounds) == 3

    # Deleting a video removes its postings: the sound keeps one video and matches only that one.
    server.stub.DeleteVideo(pb.DeleteVideoRequest(video_id="dance-original"))
    assert server.stub.GetSound(pb.GetSoundRequest(sound_id=original.extraction.sound_id)).video_count == 1
    chunks = (pb.SoundSearchRequest(chunk=m.chunk) for m in list(upload(excerpt.read_bytes(), "x"))[1:])
    assert [m.video_id for m in server.stub.SearchBySound(iter([first, *chunks])).matches] == ["dance-reuse"]

    # A restart rebuilds the sound index from the stored fingerprints: same answers, same sound ids.
    server.stop()
    restarted = start_server()
    chunks = (pb.SoundSearchRequest(chunk=m.chunk) for m in list(upload(excerpt.read_bytes(), "x"))[1:])
    assert [m.video_id for m in restarted.stub.SearchBySound(iter([first, *chunks])).matches] == ["dance-reuse"]
    again = restarted.ingest(_clip_with_sound(tmp_path / "orig.mp4", "astronaut", song), "dance-again")
    assert again.extraction.sound_id == original.extraction.sound_id and not again.new_sound


@pytest.mark.slow
def test_sound_api_errors(start_server, clips):
    import grpc

    server = start_server()
    server.ingest(clips["cat"], "silent")
    cases = [
        (lambda: server.stub.GetSound(pb.GetSoundRequest(sound_id="42")), grpc.StatusCode.INVALID_ARGUMENT, "look like 'snd-42'"),
        (lambda: server.stub.GetSound(pb.GetSoundRequest(sound_id="snd-999")), grpc.StatusCode.NOT_FOUND, "does not exist"),
        (lambda: server.stub.ListSounds(pb.ListSoundsRequest(window_s=-5)), grpc.StatusCode.INVALID_ARGUMENT, "window_s"),
        (
            lambda: server.stub.SearchBySound(iter([pb.SoundSearchRequest(query=pb.SoundQuery(video_id="silent"))])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "no audio track",
        ),
        (
            lambda: server.stub.SearchBySound(iter([pb.SoundSearchRequest(query=pb.SoundQuery(video_id="nope"))])),
            grpc.StatusCode.NOT_FOUND,
            "'nope'",
        ),
        (
            lambda: server.stub.SearchBySound(
                iter([pb.SoundSearchRequest(query=pb.SoundQuery(upload=pb.UploadInfo())),
                      pb.SoundSearchRequest(chunk=clips["cat"].read_bytes())])
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "no audio track",
        ),
        (lambda: server.stub.SearchBySound(iter([])), grpc.StatusCode.INVALID_ARGUMENT, "must carry a query"),
    ]
    for call, code, text in cases:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == code and text in e.value.details(), (code, e.value.details())
