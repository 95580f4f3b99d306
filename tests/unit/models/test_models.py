"""Model loading through the production path, and what the embedders return."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from coldopen.domain.errors import ModelLoadError
from coldopen.models.clip import ClipEmbedder, ClipSpec, video_embedding
from coldopen.models.whisper import WhisperSpec, WhisperTranscriber
from testkit import mediagen


def test_clip_loads_a_saved_checkpoint_and_embeds(models, tiny_clip):
    clip = models.clip
    assert clip.name == f"coldopen-test-tiny/{tiny_clip[1].name}" and clip.dim == 64 and clip.device == "cpu"
    frames = mediagen.pan_frames(mediagen.photo("coffee"), 3, (320, 180)) + [mediagen.photo("rocket")]
    emb = clip.embed_frames(frames)
    assert emb.shape == (4, 64) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Loading the same checkpoint again gives the same numbers: the weights came from disk.
    again = ClipEmbedder.load(ClipSpec(str(tiny_clip[0]), str(tiny_clip[1]), "cpu"))
    assert np.allclose(again.embed_frames(frames), emb, atol=1e-5)
    text = clip.embed_texts(["a cup of coffee", "a rocket"])
    assert text.shape == (2, 64) and np.allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)


def test_clip_random_init_warns_loudly(tiny_clip, caplog):
    with caplog.at_level(logging.WARNING, logger="models.clip"):
        clip = ClipEmbedder.load(ClipSpec(str(tiny_clip[0]), "none", "cpu"))
    assert clip.name.endswith("/none")
    assert any("RANDOMLY INITIALISED" in r.message and "NOT semantic" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    "model, pretrained, expected",
    [
        ("ViT-B-32", "/nonexistent/weights.pt", "does not exist"),
        ("No-Such-Model", "none", "could not load CLIP model 'No-Such-Model'"),
        ("/nonexistent/config.json", "none", "does not exist"),
        ("ViT-B-32", "no_such_tag", "--clip-pretrained none"),
    ],
)
def test_clip_load_failures_say_how_to_fix(model, pretrained, expected):
    with pytest.raises(ModelLoadError) as e:
        ClipEmbedder.load(ClipSpec(model, pretrained, "cpu"))
    assert expected in str(e.value)


def test_video_embedding_is_normalised_mean():
    frames = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert np.allclose(video_embedding(frames), [2**-0.5, 2**-0.5])


def test_bundled_whisper_transcribes_speech(models):
    audio, rate = mediagen.speech("rocket")
    assert rate == 16000
    t = models.whisper.transcribe(audio)
    assert "rocket" in t.text.lower() and t.language == "en" and t.model == "tiny.en (bundled)"
    # An English-only model ignores another language hint rather than failing.
    assert "rocket" in models.whisper.transcribe(audio, "de").text.lower()


def test_whisper_bad_model_path_says_how_to_fix(tmp_path):
    with pytest.raises(ModelLoadError) as e:
        WhisperTranscriber.load(WhisperSpec(model=str(tmp_path / "missing"), device="cpu"))
    assert "--whisper-model" in str(e.value)


@pytest.mark.parametrize(
    "precision, clip, whisper, cores, expected",
    [
        ("int8", 0, 0, 2, (1, 1)),     # int8 CLIP and Whisper each on their own core
        ("int8", 0, 0, 5, (2, 3)),     # the odd core to Whisper
        ("int8", 0, 0, 1, (0, 0)),     # nothing to split
        ("int8", 3, 0, 8, (3, 0)),     # the operator's choice is kept
        ("int8", 0, 2, 8, (0, 2)),
        ("fp32", 0, 0, 8, (0, 0)),     # torch fp32 keeps its own default (the split measured no gain)
        ("auto", 0, 0, 8, (0, 0)),
    ],
)
def test_cpu_threads_are_split_between_int8_clip_and_whisper_unless_set(precision, clip, whisper, cores, expected):
    from coldopen.models.bundle import thread_budget

    assert thread_budget(precision, clip, whisper, cores) == expected
