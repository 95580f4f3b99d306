"""`--clip-precision int8`: CLIP's image tower through ONNX Runtime int8, against fp32 on real photographs."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from coldopen.config.settings import Settings
from coldopen.domain.errors import ModelLoadError
from coldopen.models.clip import ClipEmbedder, ClipSpec
from testkit import mediagen

PHOTOS = ("coffee", "rocket", "cat", "astronaut", "camera", "coins", "moon", "brick")


def _frames():
    out = []
    for name in PHOTOS:  # real photographs (scikit-image), a still and a panned crop of each
        out += mediagen.pan_frames(mediagen.photo(name), 2, (320, 180))
    return out


def test_int8_embeddings_match_fp32_and_keep_the_neighbours(tiny_clip, tmp_path, caplog):
    fp32 = ClipEmbedder.load(ClipSpec(str(tiny_clip[0]), str(tiny_clip[1]), "cpu"))
    with caplog.at_level(logging.INFO, logger="coldopen.models.clip_onnx"):
        int8 = ClipEmbedder.load(ClipSpec(str(tiny_clip[0]), str(tiny_clip[1]), "cpu", precision="int8",
                                          cache_dir=tmp_path))
    assert int8.precision == "int8" and fp32.precision == "fp32"
    assert any("exported CLIP's image tower to int8" in r.message for r in caplog.records)
    frames = _frames()
    a, b = fp32.embed_frames(frames), int8.embed_frames(frames)
    assert b.shape == a.shape and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    # any batch size, one frame too; activations are quantised with one scale per batch, so a frame's vector
    # moves a little with its batch-mates (documented in the README)
    assert float(int8.embed_frames(frames[:1])[0] @ b[0]) >= 0.999
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= 0.99, cosine
    # each frame's nearest other frame is the same in int8 as in fp32, wherever fp32 does not tie (within 1e-3)
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -2)
    np.fill_diagonal(sb, -2)
    top2 = np.sort(sa, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-3
    assert clear.sum() >= len(frames) - 2
    assert (sa.argmax(axis=1) == sb.argmax(axis=1))[clear].all()
    # texts still come from the fp32 text tower: unchanged
    assert np.allclose(int8.embed_texts(["a cup of coffee"]), fp32.embed_texts(["a cup of coffee"]), atol=1e-6)


def test_the_int8_tower_is_cached_per_weights(tiny_clip, tmp_path, caplog):
    spec = ClipSpec(str(tiny_clip[0]), str(tiny_clip[1]), "cpu", precision="int8", cache_dir=tmp_path)
    first = ClipEmbedder.load(spec)
    cached = sorted(tmp_path.glob("*.onnx"))
    assert len(cached) == 1
    caplog.clear()  # the first load's export may have been recorded (another test may have set INFO)
    with caplog.at_level(logging.INFO, logger="coldopen.models.clip_onnx"):
        again = ClipEmbedder.load(spec)
    assert not any("exported" in r.message for r in caplog.records)  # loaded, not exported again
    frames = _frames()[:4]
    assert np.array_equal(first.embed_frames(frames), again.embed_frames(frames))
    other = ClipEmbedder.load(ClipSpec(str(tiny_clip[0]), "none", "cpu", precision="int8", cache_dir=tmp_path))
    assert other.precision == "int8" and len(list(tmp_path.glob("*.onnx"))) == 2  # other weights, another file


def test_precisions_that_cannot_run_on_the_device_are_refused_with_the_fix(tiny_clip):
    with pytest.raises(ModelLoadError, match="fp16 needs CUDA"):
        ClipEmbedder.load(ClipSpec(str(tiny_clip[0]), "none", "cpu", precision="fp16"))
    with pytest.raises(ValueError, match="clip_precision fp16 needs CUDA"):
        Settings(device="cpu", clip_precision="fp16")
    with pytest.raises(ValueError, match="clip_precision int8 is the CPU path"):
        Settings(device="cuda", clip_precision="int8")
    with pytest.raises(ValueError, match="clip_precision must be one of auto, fp32, fp16, int8"):
        Settings(clip_precision="int4")


def test_the_server_keeps_its_int8_tower_under_the_data_dir(base_settings, tmp_path):
    from coldopen.models.bundle import Models

    settings = base_settings.replace(data_dir=tmp_path / "data", clip_precision="int8", clip_threads=1)
    models = Models.load(settings)
    assert models.clip.precision == "int8"
    assert len(list((tmp_path / "data" / "models").glob("clip-image-int8-*.onnx"))) == 1
    # A tower an older version cached (8-bit weights, format v1) is replaced, not used nor left behind
    from coldopen.models.clip_onnx import FORMAT

    (cached,) = (tmp_path / "data" / "models").glob("clip-image-int8-*.onnx")
    assert cached.name.startswith(FORMAT + "-") and FORMAT != "clip-image-int8-v1"
    older = cached.with_name(cached.name.replace(FORMAT, "clip-image-int8-v1"))
    cached.rename(older)
    assert Models.load(settings).clip.precision == "int8"
    assert [p.name for p in (tmp_path / "data" / "models").glob("clip-image-int8-*.onnx")] == [cached.name]
