"""A sentence-embedding model directory with a given model's shape and tokenizer but random weights.

    python -m benchmarks.random_text_model SRC DST

SRC: a model directory without its weights (config.json and the tokenizer's files: what the GPU host gets of
all-MiniLM-L6-v2, whose 87 MB of weights do not fit beside the other bundles in one call's 64 MiB). DST is
what `--text-model` then loads. A transcript costs the same to embed with random weights as with trained
ones, so the GPU suite's throughput holds; its embeddings mean nothing (say so beside any number from it).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    args = p.parse_args()
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(args.src, local_files_only=True))
    model.save_pretrained(args.dst)
    AutoTokenizer.from_pretrained(args.src, local_files_only=True).save_pretrained(args.dst)
    print(f"random-weight {model.config.model_type} ({sum(x.numel() for x in model.parameters()):,} parameters) "
          f"in {args.dst}")


if __name__ == "__main__":
    main()
