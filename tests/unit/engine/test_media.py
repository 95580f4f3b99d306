"""Decoding real clips: time-based sampling (also for variable frame rate), rotation, limits."""

from __future__ import annotations

import numpy as np
import pytest

from coldopen.engine import media
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
