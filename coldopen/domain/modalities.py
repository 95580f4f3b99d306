"""The modalities a video is compared in, and how Route fuses them: one definition for every layer."""

from __future__ import annotations

VISUAL, SPOKEN, CAPTION, SOUND = "visual", "spoken", "caption", "sound"
EMBEDDED: tuple[str, ...] = (VISUAL, SPOKEN, CAPTION)  # those with a vector index (CLIP frames, MiniLM text)
ALL: tuple[str, ...] = (*EMBEDDED, SOUND)              # and a shared sound: every modality Route weighs
FUSIONS: tuple[str, ...] = ("zscore", "raw")            # how Route fuses them
