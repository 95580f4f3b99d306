"""CLIP's image tower in int8 on the CPU, through ONNX Runtime (`--clip-precision int8`).

Why ONNX Runtime: on the CPU the image tower is most of a clip's work, and ONNX Runtime's dynamic int8
quantisation covers every matrix product of the ViT (attention projections included), where torch's
`quantize_dynamic` is deprecated and leaves nn.MultiheadAttention's packed projections in fp32.
Measured on random-init ViT-B-32 (benchmarks/RESULTS.md): ~2.4x torch fp32, embeddings at cosine
>= 0.999 to fp32.

The tower is exported once per set of weights (torch.onnx, TorchScript exporter), quantised, and kept
under `cache_dir` by a digest of the weights: ViT-B-32 loads in 2.0 s from the cache, 8.6 s without (2 cores).
The export and the cache are written by hand because no library turns an open_clip tower into a cached
ONNX Runtime session; the quantiser is ONNX Runtime's own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from coldopen.domain.errors import ModelLoadError

log = logging.getLogger(__name__)

# In the cache file's name: a new export scheme gets new files. Exported with torch's TorchScript exporter
# (deprecated since torch 2.9 but kept): the torch.export one needs onnxscript and re-traces open_clip slowly.
FORMAT = "clip-image-int8-v2"  # v2: 7-bit weights (reduce_range), see _export_int8


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of the module's parameters and buffers (names, shapes, dtypes, bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


class Int8ImageTower:
    """The image tower as an ONNX Runtime session: (N, 3, H, W) float32 pixels -> (N, dim) float32."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.path = path

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self._session.run(None, {self._input: pixels.detach().cpu().numpy().astype(np.float32, copy=False)})
        return torch.from_numpy(out[0])

    @classmethod
    def build(cls, visual: torch.nn.Module, size: tuple[int, int], cache_dir: Path | None, threads: int = 0
              ) -> Int8ImageTower:
        """The cached int8 tower for these weights, exported and quantised first if there is none."""
        folder = cache_dir if cache_dir is not None else Path(tempfile.gettempdir()) / "coldopen-clip-int8"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ModelLoadError(f"cannot create the int8 CLIP cache folder ({e.strerror}); make the data dir writable "
                                 "or use --clip-precision fp32") from e
        digest = weights_digest(visual)
        path = folder / f"{FORMAT}-{digest}.onnx"
        if not path.is_file():
            started = time.perf_counter()
            _export_int8(visual, size, path)
            log.info("exported CLIP's image tower to int8 ONNX in %.1f s (cached for the next start)",
                     time.perf_counter() - started)
            for older in folder.glob(f"clip-image-int8-v*-{digest}.onnx"):  # the same weights, an older format
                if older != path:
                    older.unlink(missing_ok=True)
        return cls(path, threads)


def _export_int8(visual: torch.nn.Module, size: tuple[int, int], path: Path) -> None:
    """Export fp32 ONNX, quantise its weights to int8 (dynamic activations), publish atomically."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise ModelLoadError("--clip-precision int8 needs the onnx and onnxruntime packages; install them "
                             "(pip install onnx onnxruntime) or use --clip-precision fp32") from e
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        example = torch.zeros((2, 3, *size), dtype=torch.float32)
        was_training, fastpath = visual.training, torch.backends.mha.get_fastpath_enabled()
        visual.eval()
        torch.backends.mha.set_fastpath_enabled(False)  # its fused attention op has no ONNX export
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: see FORMAT
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks in attention, batch-independent
                torch.onnx.export(visual, (example,), str(fp32), input_names=["pixels"], output_names=["embedding"],
                                  dynamic_axes={"pixels": {0: "n"}, "embedding": {0: "n"}}, opset_version=17,
                                  dynamo=False)
        finally:
            visual.train(was_training)
            torch.backends.mha.set_fastpath_enabled(fastpath)
        # 7-bit weights (reduce_range, ONNX Runtime's advice for CPUs without VNNI): on AVX2, u8 activations times
        # s8 weights are summed in pairs into int16, which full 8-bit weights overflow. Measured on an AVX2-only
        # EPYC (random-init ViT-B-32, 16 real photographs): cosine to fp32 0.983-0.991 with 8-bit weights,
        # 0.9994-0.9996 with 7-bit, at the same speed (benchmarks/RESULTS.md, 2026-12-06).
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, reduce_range=True)
        os.replace(int8, path)
