"""The modalities a video is compared in, and how Route fuses them: one definition for every layer."""

from __future__ import annotations

VISUAL, SPOKEN, CAPTION, SOUND, CREATOR = "visual", "spoken", "caption", "sound", "creator"
EMBEDDED: tuple[str, ...] = (VISUAL, SPOKEN, CAPTION)  # those with a vector index (CLIP frames, MiniLM text)
ALL: tuple[str, ...] = (*EMBEDDED, SOUND)              # and a shared sound: every modality Route weighs
SIGNALS: tuple[str, ...] = (*ALL, CREATOR)             # and the creator's track record: what the content prior learns from
DENSE: tuple[str, ...] = EMBEDDED                      # a similarity to every candidate; SOUND and CREATOR are sparse
# How Route and the content prior fuse them (ranking/fusion.py): "robust" (median and MAD over the candidates),
# "zscore" (mean and standard deviation, as before robust fusion), "raw" (the similarities as measured).
FUSIONS: tuple[str, ...] = ("robust", "zscore", "raw")
# Where the weights Route used came from (RouteResponse.weights_basis).
WEIGHT_BASES: tuple[str, ...] = ("request", "learned", "content", "defaults")
