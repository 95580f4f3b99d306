"""How Route and the content prior put the modalities' similarities on one scale before weighting them.

"robust" (the default): each modality's similarities over this query's candidates, centred on their
median and divided by their spread measured as 1.4826 x the median absolute deviation (the standard
deviation of a normal bulk), or by MIN_SPREAD when they spread less. A candidate then counts by how far
it stands out from the *bulk* of the candidates in that modality, whatever scale the modality's model
produces, and the shape of each signal is kept:
  - a sparse, high-precision signal (a shared sound; the creator's own videos, in the prior) is 0 for
    most candidates, so its bulk is 0 and its spread the floor: it is measured from that natural zero
    with the floor as its unit, so a match of similarity 0.9 counts 9 whether 2 or 20 of the candidates
    share it, or all of them (in a small pool), and a candidate without it counts 0, never below;
  - a dense, noisy one whose similarities barely vary (random-init CLIP puts every pair within a few
    hundredths) is damped by the floor instead of being stretched to the others' size;
  - a few near-duplicates do not inflate the spread they are measured against, as they do a standard
    deviation.
"zscore": mean and standard deviation, the fusion before robust (kept for comparison): with 10 of 40
candidates sharing a sound, the standard deviation is 0.43 and the match counts only ~1.7, below an
unrelated candidate whose caption happens to resemble the query's (benchmarks/RESULTS.md).
"raw": the similarities as measured.

Per-neighbour contributions (weight x standardised similarity) are in the same units for every
modality, so they sum to the fused score and say why each neighbour was chosen.
"""

from __future__ import annotations

import numpy as np

from coldopen.domain.modalities import DENSE, FUSIONS

# Similarities spread less than this over the candidates are damped in proportion, not stretched: on the
# routing world (testkit/routeworld.py) and the topic-in-speech world, 0.1 was no worse than any floor
# tried (0, 0.05, 0.2) at precision@4 and best at precision@10 (benchmarks/RESULTS.md).
MIN_SPREAD = 0.1
MAD_TO_SD = 1.4826


def standardise(values: np.ndarray, candidates: np.ndarray, fusion: str, sparse: bool = False) -> np.ndarray:
    """One modality's similarities on the common scale (see the module's docstring); `candidates`: a mask
    of the entries the bulk is measured over (those that may be chosen); `sparse`: a signal most entries
    lack (a shared sound, the creator's own videos), measured from its natural zero in robust fusion."""
    if fusion == "raw":
        return values
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
    if sparse and fusion == "robust":
        return values / MIN_SPREAD
    base = values[candidates]
    if len(base) < 2 or float(base.max() - base.min()) <= 1e-9:
        return np.zeros_like(values)
    if fusion == "zscore":
        centre, spread = float(base.mean()), float(base.std())
    else:
        centre = float(np.median(base))
        spread = MAD_TO_SD * float(np.median(np.abs(base - centre)))
    return (values - centre) / max(spread, MIN_SPREAD)


def fuse(sims: dict[str, np.ndarray], weights: dict[str, float], candidates: np.ndarray, fusion: str
         ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(fused score per entry, each modality's standardised similarities); modalities weighted 0 are skipped."""
    n = len(candidates)
    scaled = {m: standardise(v, candidates, fusion, m not in DENSE) if weights.get(m, 0.0) > 0 else np.zeros(n)
              for m, v in sims.items()}
    fused = np.zeros(n)
    for m, v in scaled.items():
        if weights.get(m, 0.0) > 0:
            fused += weights[m] * v
    return fused, scaled
