"""CLIP frame and text embeddings with open_clip.

Model names resolve through open_clip's registry: a built-in name (``ViT-B-32``), an
``hf-hub:org/repo`` id, or a path to a model-config JSON (registered under its file stem).
Weights: an open_clip pretrained tag, a local checkpoint file, or ``none`` (random init).
Preprocessing runs in torch on the model's device (resize shorter side, centre crop, normalise),
so the same code serves CPU tests and GPU batches.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from coldopen.domain.errors import ModelLoadError

log = logging.getLogger(__name__)

RANDOM_INIT = "none"


@dataclass(frozen=True)
class ClipSpec:
    model: str
    pretrained: str
    device: str  # auto | cpu | cuda
    batch_size: int = 0  # 0 = auto: 256 frames on CUDA (fp16), 32 on CPU
    precision: str = "auto"  # domain.media.CLIP_PRECISIONS: auto = fp16 on CUDA, fp32 on CPU
    threads: int = 0  # CPU threads for torch and ONNX Runtime; 0 = their default
    cache_dir: Path | None = None  # where the int8 tower is cached (clip_onnx.py)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was requested but torch sees no CUDA device; use --device cpu or auto")
    return device


class ClipEmbedder:
    def __init__(self, model, tokenizer, name: str, device: str, dtype: torch.dtype, batch_size: int):
        self._model = model
        self._tokenizer = tokenizer
        self.name = name
        self.device = device
        self._dtype = dtype
        self.batch_size = batch_size
        self.precision = "fp16" if dtype == torch.float16 else "fp32"
        self._tower: Callable[[torch.Tensor], torch.Tensor] | None = None  # the int8 image tower, if any
        cfg = model.visual.preprocess_cfg
        size = cfg["size"]
        self._size = (size, size) if isinstance(size, int) else tuple(size)
        self._mean = torch.tensor(cfg["mean"], device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg["std"], device=device).view(1, 3, 1, 1)
        with torch.no_grad():
            self.dim = int(self._model.encode_text(self._tokenize(["probe"])).shape[-1])

    @property
    def input_size(self) -> int:
        """The shorter side frames are resized to before the centre crop."""
        return min(self._size)

    @classmethod
    def load(cls, spec: ClipSpec) -> ClipEmbedder:
        import open_clip

        device = resolve_device(spec.device)
        model_name = spec.model
        if model_name.endswith(".json"):
            config = Path(model_name)
            if not config.is_file():
                raise ModelLoadError(
                    f"CLIP model config {config} does not exist; pass an open_clip model name or an existing JSON config"
                )
            open_clip.add_model_config(config)
            model_name = config.stem
        pretrained = spec.pretrained
        random_init = pretrained.lower() == RANDOM_INIT
        looks_like_path = os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))
        if looks_like_path and not Path(pretrained).is_file():
            raise ModelLoadError(
                f"CLIP checkpoint {pretrained} does not exist; pass an existing checkpoint file, an open_clip "
                f"pretrained tag (see open_clip.list_pretrained()), or --clip-pretrained none for a random-init smoke run"
            )
        precision = spec.precision if spec.precision != "auto" else ("fp16" if device == "cuda" else "fp32")
        if precision == "fp16" and device != "cuda" or precision == "int8" and device != "cpu":
            raise ModelLoadError(f"CLIP precision {precision} does not run on {device}: fp16 needs CUDA, int8 is the "
                                 "CPU path; use --clip-precision auto")
        if spec.threads and device == "cpu":
            torch.set_num_threads(spec.threads)
        # hf-hub: and local-dir: names carry their own weights; open_clip ignores `pretrained` for them.
        has_schema = model_name.startswith(("hf-hub:", "local-dir:"))
        try:
            model = open_clip.create_model(
                model_name,
                pretrained=None if random_init or has_schema else pretrained,
                precision="fp32" if precision == "int8" else precision,
                device=device,
                require_pretrained=not random_init,
            )
            tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as e:  # open_clip raises RuntimeError/ValueError/OSError/HF errors; all are fatal here
            raise ModelLoadError(
                f"could not load CLIP model {spec.model!r} with weights {pretrained!r}: {type(e).__name__}: {str(e)[:300]}. "
                f"Fix: make the weights reachable (Hugging Face hub access or a pre-filled HF cache), pass a local "
                f"checkpoint path with --clip-pretrained, or use --clip-pretrained none for a random-init smoke run"
            ) from e
        model.eval()
        if random_init:
            log.warning(
                "!!! CLIP %s is RANDOMLY INITIALISED (--clip-pretrained none): visual and text similarity are NOT "
                "semantic. Use this only for tests and offline smoke runs. !!!",
                model_name,
            )
        weights = Path(pretrained).name if looks_like_path else pretrained
        name = model_name if has_schema else f"{model_name}/{weights}"
        dtype = torch.float16 if precision == "fp16" else torch.float32
        batch = spec.batch_size or (256 if device == "cuda" else 32)
        embedder = cls(model, tokenizer, name, device, dtype, batch)
        if precision == "int8":
            from coldopen.models.clip_onnx import Int8ImageTower

            embedder._tower = Int8ImageTower.build(model.visual, embedder._size, spec.cache_dir, spec.threads)
        embedder.precision = precision
        log.info("loaded CLIP %s on %s (%s), dim=%d", name, device, precision, embedder.dim)
        return embedder

    @torch.inference_mode()
    def embed_frames(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised image embeddings, one row per RGB uint8 frame (H x W x 3).

        Frames may come from many clips of different sizes: each batch is preprocessed per frame
        size as one tensor on the model's device, then run through the image tower at once.
        """
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = self.preprocess(frames[start : start + self.batch_size])
            feats = self._tower(batch) if self._tower is not None else self._model.encode_image(batch.to(self._dtype))
            out.append(F.normalize(feats.float(), dim=-1).cpu())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return torch.cat(out).numpy()

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings from the CLIP text tower."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            feats = self._model.encode_text(self._tokenize(texts[start : start + self.batch_size]))
            out.append(F.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(out).numpy()

    def _tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self._tokenizer(list(texts)).to(self.device)

    def preprocess(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """open_clip's eval transform on the device, batched per frame size: shorter side to the model size
        (bicubic, antialiased), centre crop, normalise. Returns (N, 3, H, W) float32 in input order."""
        out = torch.empty((len(frames), 3, *self._size), device=self.device)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault(f.shape, []).append(i)
        for idx in groups.values():
            x = torch.from_numpy(np.stack([frames[i] for i in idx])).to(self.device, non_blocking=True)
            x = x.permute(0, 3, 1, 2)
            x = TF.resize(x, min(self._size), interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
            x = TF.center_crop(x, list(self._size))
            x = x.float().div_(255.0)
            out[torch.tensor(idx, device=self.device)] = (x - self._mean) / self._std
        return out


def video_embedding(frame_embeddings: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """L2-normalised mean of L2-normalised frame embeddings, each weighted by `weights` (the sampled frames
    it stands for, when near-repeats were skipped) or equally."""
    if weights is not None and len(weights) == len(frame_embeddings) and len(weights):
        w = np.asarray(weights, np.float32)[:, None]
        mean = (frame_embeddings.astype(np.float32) * w).sum(axis=0) / float(w.sum())
    else:
        mean = frame_embeddings.astype(np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean
