"""A small seeded random-init open_clip written to disk, loaded through the same path as production
weights (a model-config .json plus a checkpoint): the tests' and the storage benchmarks' CLIP."""

from __future__ import annotations

import json
from pathlib import Path

# A small CLIP architecture so CPU runs are quick; same code path as ViT-B-32.
TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 112, "layers": 2, "width": 128, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
}


def save(root: Path, name: str = "coldopen-test-tiny") -> tuple[Path, Path]:
    """(model config JSON, checkpoint) under `root`."""
    import open_clip
    import torch

    config = root / f"{name}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    checkpoint = root / "tiny-random.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    return config, checkpoint
