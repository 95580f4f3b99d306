"""Sampled frames decoded on the GPU by NVDEC (NVIDIA's PyNvVideoCodec), with engine/media.py (PyAV on
the CPU) as the twin every clip falls back to when NVDEC cannot take it: no CUDA device, no
PyNvVideoCodec, a codec or container NVDEC lacks, a stream it fails on. The fallback is per clip and says
why (the clip's sampling mode reads e.g. "uniform (cpu: no CUDA device)"), so one odd upload never fails
a batch that NVDEC serves.

The frames NVDEC decodes stay in GPU memory until they are shrunk to the model's input size there
(DLPack hands them to torch without a copy); only the shrunk frames cross to the host, as the CPU
decoder's do. Frame times are the CPU sampler's (`media.sample_times`), mapped to frame indices at the
stream's frame rate, so both decoders sample the same instants of a constant-frame-rate clip.

Hand-written: PyNvVideoCodec decodes; choosing frames by time, the fallback and the hand-over to the
pipeline's frame format are ColdOpen's. Only the CPU path runs in CI (no GPU there); the GPU suite
(benchmarks/gpu_suite.py) runs the other.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from coldopen.domain.media import MediaInfo
from coldopen.engine import media

log = logging.getLogger(__name__)


def unavailable() -> str | None:
    """Why NVDEC cannot be used in this process, or None when it can."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "no torch"
    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        import PyNvVideoCodec  # noqa: F401
    except ImportError:
        return "PyNvVideoCodec is not installed"
    return None


def sample(path: Path, info: MediaInfo, mode: str, fps: float, max_frames: int, short_side: int,
           max_decoded: int, deadline: float | None, decoder: str, gpu_id: int = 0) -> tuple[media.SampledFrames, str]:
    """Frames as media.sample returns them, decoded by NVDEC when `decoder` asks for it and it can."""
    if decoder == "cpu":
        return media.sample(path, info, mode, fps, max_frames, short_side, max_decoded, deadline)
    why = unavailable()
    if why is None:
        try:
            return _nvdec(path, info, fps, max_frames, short_side, gpu_id), "nvdec"
        except Exception as e:  # noqa: BLE001 - any NVDEC failure costs this clip the CPU path, never the upload
            why = f"NVDEC failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            log.warning("clip decoded on the CPU instead: %s", why)
    sampled, used = media.sample(path, info, mode, fps, max_frames, short_side, max_decoded, deadline)
    return sampled, f"{used} (cpu: {why})"


def _nvdec(path: Path, info: MediaInfo, fps: float, max_frames: int, short_side: int,
           gpu_id: int) -> media.SampledFrames:  # pragma: no cover - needs a GPU (benchmarks/gpu_suite.py runs it)
    import PyNvVideoCodec as nvc
    import torch
    import torch.nn.functional as F

    if info.rotation:
        raise ValueError("a display rotation (the CPU decoder turns such frames upright)")
    dec = nvc.SimpleDecoder(str(path), gpu_id=gpu_id, use_device_memory=True,
                            output_color_type=nvc.OutputColorType.RGB)
    total = len(dec)
    if total == 0:
        raise ValueError("NVDEC found no frames")
    rate = info.fps if info.fps > 0 else total / max(info.duration_s, 1e-6)
    times = media.sample_times(info.duration_s, fps, max_frames)
    indices = [min(total - 1, int(round(t * rate))) for t in times]
    frames: list[np.ndarray] = []
    for surface in dec.get_batch_frames_by_index(indices):
        x = torch.from_dlpack(surface)  # H x W x 3 uint8, on the GPU
        h, w = int(x.shape[0]), int(x.shape[1])
        s = min(h, w)
        if short_side > 0 and s > short_side:
            scale = short_side / s
            size = (max(short_side, round(h * scale)), max(short_side, round(w * scale)))
            x = F.interpolate(x.permute(2, 0, 1)[None].float(), size=size, mode="area")[0]
            x = x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
        frames.append(np.ascontiguousarray(x.cpu().numpy()))
    h, w = frames[0].shape[:2]
    return media.SampledFrames(frames, [indices[i] / rate for i in range(len(indices))], info.rotation, w, h)
