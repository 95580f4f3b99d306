"""Decoding real clips: time-based sampling (also for variable frame rate), rotation, limits."""

from __future__ import annotations

import numpy as np
import pytest

from coldopen.engine import media, repeats
from testkit import mediagen


def test_sample_times_uniform_and_capped():
    assert media.sample_times(5.0, 1.0, 64) == [0, 1, 2, 3, 4]
    assert media.sample_times(0.4, 1.0, 64) == [0]  # a clip shorter than the interval still gets a frame
    capped = media.sample_times(100.0, 1.0, 10)
    assert len(capped) == 10 and capped[1] == pytest.approx(10.0)
    assert media.sample_times(2.0, 4.0, 64) == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75])


def _frames_for(times: list[float], size=(160, 96)) -> list[np.ndarray]:
    """One frame per time; content depends on the time, so a frame can be matched back to it."""
    img = mediagen.photo("astronaut")
    total = 200
    pans = mediagen.pan_frames(img, total, size)
    return [pans[min(total - 1, int(t / 5.0 * total))] for t in times]


def test_variable_frame_rate_is_sampled_by_presentation_time(tmp_path):
    # 30 fps for 2 s, then 4 fps for 2 s, then 12 fps for 1 s: frame indices and times disagree.
    times = [i / 30 for i in range(60)] + [2 + i / 4 for i in range(8)] + [4 + i / 12 for i in range(12)]
    frames = _frames_for(times)
    path = mediagen.write_clip(tmp_path / "vfr.mp4", frames, fps=30, frame_times=times, crf=12)
    info = media.probe(path)
    sampled = media.sample_frames(path, info, 1.0, 64)
    assert sampled.times_s == pytest.approx([0, 1, 2, 3, 4], abs=1e-3)
    for t, got in zip(sampled.times_s, sampled.frames):
        want = frames[times.index(min(times, key=lambda x: abs(x - t)))]
        others = [np.abs(f.astype(int) - got).mean() for f in frames]
        assert np.abs(want.astype(int) - got).mean() == pytest.approx(min(others), abs=1e-9)


def test_rotated_phone_video_is_decoded_upright(tmp_path):
    upright = [f for f in mediagen.pan_frames(mediagen.photo("chelsea"), 24, (180, 320))]
    stored = [np.ascontiguousarray(np.rot90(f, k=-1)) for f in upright]  # sensor orientation: landscape
    path = mediagen.write_clip(tmp_path / "rot.mp4", stored, fps=12, display_rotation=90, crf=14)
    info = media.probe(path)
    sampled = media.sample_frames(path, info, 1.0, 64)
    assert (sampled.width, sampled.height) == (180, 320) and sampled.rotation in (90, 270)
    diff = np.abs(sampled.frames[0].astype(int) - upright[0]).mean()
    assert diff < 8, diff


def test_max_frames_spreads_samples_over_the_whole_clip(clips):
    info = media.probe(clips["fox"])
    sampled = media.sample_frames(clips["fox"], info, 4.0, 8)
    assert len(sampled.frames) == 8
    assert sampled.times_s[0] == 0 and sampled.times_s[-1] == pytest.approx(4.375, abs=0.1)


def test_audio_is_16k_mono_float(clips):
    audio = media.decode_audio(clips["fox"])
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / media.AUDIO_SAMPLE_RATE == pytest.approx(5.0, abs=0.1)
    assert 0.01 < np.abs(audio).max() <= 1.0


def _still_then_cut(n_still: int, n_pan: int) -> media.SampledFrames:
    still = mediagen.pan_frames(mediagen.photo("coffee"), 1, (160, 96))[0]
    rng = np.random.default_rng(0)
    # a still shot with sensor noise (re-encoding moves pixels by a few levels), then a panned photo
    noisy = [np.clip(still.astype(int) + rng.integers(-3, 4, still.shape), 0, 255).astype(np.uint8) for _ in range(n_still)]
    pans = mediagen.pan_frames(mediagen.photo("astronaut"), n_pan, (160, 96))
    frames = noisy + pans
    return media.SampledFrames(frames, [float(i) for i in range(len(frames))], 0, 160, 96)


def test_near_repeats_are_skipped_and_each_kept_frame_stands_for_its_run():
    sampled = _still_then_cut(20, 10)
    kept = repeats.skip_repeats(sampled, 0.01, max_pan=0.0)
    assert kept.sampled == 30 and len(kept.frames) == 11  # the still shot once, every panned frame (no pan undone)
    assert kept.times_s == [0.0, *[float(t) for t in range(20, 30)]] and kept.stands_for == [20, *[1] * 10]
    assert repeats.skip_repeats(sampled, 0.0, max_pan=0.2) is sampled  # threshold 0: every frame
    moving = media.SampledFrames(sampled.frames[20:], sampled.times_s[20:], 0, 160, 96)
    assert repeats.skip_repeats(moving, 0.01, max_pan=0.0) is moving  # nothing skipped: unchanged, equal weights


def test_a_slow_pan_over_one_photo_is_embedded_every_few_seconds_and_a_cut_always(tmp_path):
    """Real H.264 through the decode worker: two photographs, each panned for 8 s (the benchmark workload's
    kind of footage); 1 fps sampling. Undoing the pan skips frames that show the same scene moved; every
    frame is kept without it, and the cut to the second photo is kept either way."""
    from coldopen.engine.decode import DecodeJob, decode_clip

    fps, seconds = 6, 8
    frames = [f for name in ("coffee", "rocket") for f in mediagen.pan_frames(mediagen.photo(name), fps * seconds, (320, 192))]
    clip = mediagen.write_clip(tmp_path / "pans.mp4", frames, fps)

    def kept(max_pan: float) -> media.SampledFrames:
        job = DecodeJob(str(clip), "uniform", 1.0, 64, 224, skip_threshold=0.01, skip_max_pan=max_pan)
        return decode_clip(job).frames

    every, panned = kept(0.0), kept(0.2)
    assert len(every.frames) == 16 and every.stands_for == []
    assert 2 <= len(panned.frames) <= 8 and panned.sampled == 16, panned.times_s
    assert panned.times_s[0] == 0.0 and 8.0 in panned.times_s  # the first frame and the cut
    assert sum(panned.stands_for) == 16 and len(panned.stands_for) == len(panned.frames)


def test_real_footage_from_a_fixed_camera_keeps_the_same_frames_with_pans_undone():
    """Intel's sample video of bottles passing a fixed camera (CC BY 4.0, tests/data/video): objects that move
    in a still scene are not a pan, so undoing pans skips nothing more than comparing pixels does."""
    from pathlib import Path

    from coldopen.engine.decode import DecodeJob, decode_clip

    clip = Path(__file__).parents[2] / "data" / "video" / "bottle-detection.mp4"

    def times(max_pan: float) -> list[float]:
        job = DecodeJob(str(clip), "uniform", 1.0, 64, 224, skip_threshold=0.01, skip_max_pan=max_pan)
        return decode_clip(job).frames.times_s

    pixels, pans = times(0.0), times(0.2)
    assert pans == pixels and 30 <= len(pans) < 40  # of 40 sampled: 36 measured


def test_a_pan_further_than_the_limit_or_a_different_scene_is_not_undone():
    coffee = mediagen.pan_frames(mediagen.photo("coffee"), 10, (160, 96))
    near, far = repeats.thumbnail(coffee[0]), repeats.thumbnail(coffee[2])  # 2 frames apart: ~6% of the width
    assert repeats.difference(near, far, 0.0) > 0.02  # as pixels, the pan looks like change
    assert repeats.difference(near, far, 0.2) < 0.01  # undone, it is the same scene
    assert repeats.difference(near, far, 0.02) > 0.02  # but not when it moved further than max_pan
    other = repeats.thumbnail(mediagen.pan_frames(mediagen.photo("rocket"), 1, (160, 96))[0])
    assert repeats.difference(near, other, 0.2) > 0.1


def test_the_video_vector_of_skipped_frames_weighs_each_by_what_it_stands_for():
    from coldopen.models.clip import video_embedding

    rng = np.random.default_rng(1)
    e = rng.normal(size=(3, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    every = np.repeat(e, [5, 1, 2], axis=0)  # frame 0 stood still for 5 samples, frame 2 for 2
    assert np.allclose(video_embedding(e, [5, 1, 2]), video_embedding(every), atol=1e-6)


@pytest.mark.gpu
def test_nvdec_falls_back_to_the_cpu_per_clip_and_says_why(tmp_path):
    """Where NVDEC cannot take a clip (here: no CUDA device), the CPU decoder samples the same frames, and
    the sampling mode says the CPU did it and why (engine/nvdec.py; the GPU path runs in the GPU suite)."""
    from coldopen.engine import nvdec
    from coldopen.engine.decode import DecodeJob, decode_clip

    clip = mediagen.make_clip(tmp_path / "c.mp4", "astronaut", seconds=3, size=(320, 180))
    cpu = decode_clip(DecodeJob(str(clip), "uniform", 1.0, 16, 224))
    why = nvdec.unavailable()
    for decoder in ("nvdec", "auto"):
        got = decode_clip(DecodeJob(str(clip), "uniform", 1.0, 16, 224, decoder=decoder))
        assert got.frames.times_s == pytest.approx(cpu.frames.times_s, abs=0.05)
        if why is None:  # a GPU host with PyNvVideoCodec: NVDEC decoded the same instants, to the same pixels
            assert got.mode == "nvdec" and len(got.frames.frames) == len(cpu.frames.frames)
            assert all(np.abs(a.astype(int) - b.astype(int)).mean() < 8 for a, b in zip(got.frames.frames, cpu.frames.frames))
        else:
            assert got.mode == f"uniform (cpu: {why})"
            assert all(np.array_equal(a, b) for a, b in zip(got.frames.frames, cpu.frames.frames))
