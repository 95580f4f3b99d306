"""Query-side hypotheses for sounds played faster, slower or higher: a short clip's spectrogram with each
hypothesised change undone, so its peaks can be hashed as if it were the sound as indexed.

A change is a pair (frequency factor, time factor): the clip's frequencies are the sound's times the first,
and it plays the second times faster.
  * speed ("sped up", "slowed", nightcore): resampling, both factors s;
  * pitch with tempo kept (a key change): (2^(n/12), 1);
  * tempo with pitch kept (time-stretching): (1, t).

Why hypotheses on the query side (measured on real music, 5-s excerpts, benchmarks/RESULTS.md): the triplet
hashes keep frequency bins exactly, so a 0.5% speed change already takes the true reference from a median
of 15 matched frames to 3, and 1% to none; time deltas are coarser (tempo +3% keeps half). Undoing the
change on the query side keeps the index as it is (no second, scale-invariant hash family as in
Sonnleitner & Widmer's quads, which would double every clip's postings); the price is paid per short
query, in spectrogram warps, hashes looked up and votes, each hypothesis voted on as its own group
(sounds/vote.py) so that coincidences under different hypotheses never add up.
"""

from __future__ import annotations

import numpy as np
import torch

Warp = tuple[float, float]  # (frequency factor, time factor) of the clip relative to the sound


def _log_grid(low: float, high: float, step: float) -> list[float]:
    """Factors from `low` to `high`, `step` apart in log terms, leaving out 1 (the clip as it is)."""
    ratio = np.log1p(step)
    k = np.arange(np.floor(np.log(low) / ratio), np.ceil(np.log(high) / ratio) + 1)
    return [round(float(np.exp(x * ratio)), 6) for x in k if x != 0]


def speed_grid(low: float = 0.75, high: float = 1.35, step: float = 0.0025) -> tuple[Warp, ...]:
    """Resampling by s, 0.25% apart: finer than the hashes' ~0.3% frequency tolerance at the top band."""
    return tuple((s, s) for s in _log_grid(low, high, step))


def pitch_grid(semitones: float = 2.0, step: float = 0.0025) -> tuple[Warp, ...]:
    """Pitch moved by up to `semitones` with tempo kept."""
    span = 2 ** (semitones / 12)
    return tuple((p, 1.0) for p in _log_grid(1 / span, span, step))


def tempo_grid(low: float = 0.85, high: float = 1.18, step: float = 0.03) -> tuple[Warp, ...]:
    """Tempo changed with pitch kept: 3% apart, the width the vote's own tempo hypotheses cover (±3%)."""
    return tuple((1.0, t) for t in _log_grid(low, high, step))


def all_warps() -> tuple[Warp, ...]:
    return speed_grid() + pitch_grid() + tempo_grid()


def undo(full: torch.Tensor, f_lo: int, f_hi: int, warp: Warp) -> torch.Tensor:
    """Bins [f_lo, f_hi) of a clip's log spectrogram `full` ([batch x] bins x frames) on the sound's axes: frame
    j reads the clip at j / time factor and bin b at b x frequency factor, linearly interpolated on both."""
    freq, tempo = warp
    nf, nt = full.shape[-2:]
    src = (torch.arange(f_lo, f_hi, device=full.device, dtype=torch.float32) * freq).clamp(0, nf - 1.001)
    lo = src.floor().long()
    frac = (src - lo)[:, None]
    x = full[..., lo, :] * (1 - frac) + full[..., lo + 1, :] * frac
    if tempo == 1.0:
        return x
    n_out = max(1, int(nt * tempo))
    st = (torch.arange(n_out, device=full.device, dtype=torch.float32) / tempo).clamp(0, nt - 1.001)
    lo_t = st.floor().long()
    frac_t = (st - lo_t)[None, :]
    return x[..., lo_t] * (1 - frac_t) + x[..., lo_t + 1] * frac_t
