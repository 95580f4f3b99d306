"""What a media file is, as probed from its container."""

from __future__ import annotations

from dataclasses import dataclass

CLIP_PRECISIONS = ("auto", "fp32", "fp16", "int8")  # the CLIP image tower's (models/clip.py, clip_onnx.py)
DECODERS = ("cpu", "nvdec", "auto")  # who decodes sampled frames (engine/nvdec.py); auto = NVDEC where available


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    width: int
    height: int
    fps: float
    has_audio: bool
    container: str
    video_codec: str
    audio_codec: str
    rotation: int = 0
