"""Landmark audio fingerprints (spectral-peak pairs, Wang 2003 / audfprint style), computed in torch.

A clip's 16 kHz mono audio becomes a log-magnitude spectrogram; the strongest local maxima in
each (frequency band, time block) cell are its peaks; each peak ("anchor") is paired with a few
later peaks in a target zone, and every pair becomes a hash of (anchor frequency, frequency delta,
time delta) stored with the anchor's time. Two recordings of the same sound share many hashes at
one consistent time offset, even when a voice, noise or re-encoding destroys most other peaks;
matching (``server/sounds.py``) votes on that offset.

Spectrograms, peak picking and pairing run batched over clips on the model's device, so the same
code serves the CPU here and a GPU in production. Peaks are chosen per frequency band so that a
voice-over, loud in the low bands, cannot take every peak away from the music above it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.windows import run_in_windows

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class FingerprintParams:
    n_fft: int = 1024              # 64 ms window, 15.6 Hz bins
    hop: int = 256                 # 16 ms frames
    f_min_hz: float = 250.0
    f_max_hz: float = 5000.0
    bands: int = 6                 # peaks are picked per band ...
    block_frames: int = 31         # ... per ~0.5 s block
    peaks_per_cell: int = 3
    neighbourhood: tuple[int, int] = (9, 7)  # (freq bins, frames) a peak must dominate
    fan_out: int = 8               # pairs per anchor
    max_dt: int = 63               # target zone: 1..63 frames (~1 s) later,
    max_df: int = 127              # and within +-127 bins (~2 kHz)
    min_db_above_floor: float = 6.0  # ignore peaks this close to the clip's noise floor

    @property
    def frame_seconds(self) -> float:
        return self.hop / SAMPLE_RATE


# Windows (Fingerprinter.split): a core of 60 blocks of 31 frames (29.76 s) anchors hashes, with 3 blocks
# (1.5 s) of context on each side: more than the target zone's 63 frames, so the core's last anchors keep
# all their pairs.
WINDOW_BLOCKS = 60
CONTEXT_BLOCKS = 3


@dataclass(frozen=True)
class AudioWindow:
    samples: np.ndarray  # 16 kHz mono float32, starting at frame `first_frame` of the clip
    first_frame: int
    core_start: int      # window frames [core_start, core_end) anchor this window's hashes
    core_end: int


@dataclass(frozen=True)
class Fingerprint:
    hashes: np.ndarray  # uint32, one per landmark pair
    times: np.ndarray   # int32 anchor frame of each hash
    duration_s: float
    peaks: int

    def __len__(self) -> int:
        return int(self.hashes.shape[0])


class Fingerprinter:
    def __init__(self, params: FingerprintParams = FingerprintParams(), device: str = "cpu"):
        self.params = params
        self.device = device
        p = params
        self._window = torch.hann_window(p.n_fft, device=device)
        bin_hz = SAMPLE_RATE / p.n_fft
        self._f_lo = int(p.f_min_hz / bin_hz)
        self._f_hi = int(p.f_max_hz / bin_hz)

    @classmethod
    def load(cls, device: str = "cpu") -> "Fingerprinter":
        return cls(FingerprintParams(), device)

    def split(self, audio: np.ndarray) -> list["AudioWindow"]:
        """A clip's audio as windows of bounded length, so a batch's memory does not grow with its longest clip.

        Each window's *core* (about 30 s, whole peak-picking blocks) anchors hashes; a few blocks of context
        on each side supply the peaks those anchors pair with and keep the spectrogram's edges honest. Window
        starts fall on the global block grid, so peaks are picked in the same cells as over the whole clip.
        A clip that fits one window is one window, fingerprinted exactly as before windowing.
        """
        p = self.params
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        frames = audio.size // p.hop + 1
        core = WINDOW_BLOCKS * p.block_frames
        context = CONTEXT_BLOCKS * p.block_frames
        if frames <= core + context:
            return [AudioWindow(audio, 0, 0, frames)]
        out = []
        for start in range(0, frames, core):
            first = max(0, start - context)
            last = min(frames, start + core + context)
            samples = audio[first * p.hop : last * p.hop]
            out.append(AudioWindow(samples, first, start - first, min(frames, start + core) - first))
        return out

    @staticmethod
    def merge(parts: Sequence["Fingerprint"], duration_s: float) -> "Fingerprint":
        """One clip's fingerprint from its windows' (in order)."""
        if len(parts) == 1:
            return dataclasses.replace(parts[0], duration_s=duration_s)
        return Fingerprint(
            hashes=np.concatenate([x.hashes for x in parts]) if parts else np.zeros(0, np.uint32),
            times=np.concatenate([x.times for x in parts]) if parts else np.zeros(0, np.int32),
            duration_s=duration_s,
            peaks=sum(x.peaks for x in parts),
        )

    def fingerprint(self, audios: Sequence[np.ndarray], max_windows: int = 32) -> list["Fingerprint"]:
        """Fingerprints of several 16 kHz mono float32 clips, at most `max_windows` windows per batch."""
        parts = run_in_windows([self.split(a) for a in audios], self.fingerprint_windows, max_windows)
        return [self.merge(p, len(a) / SAMPLE_RATE) for a, p in zip(audios, parts)]

    @torch.inference_mode()
    def fingerprint_windows(self, windows: Sequence["AudioWindow"]) -> list["Fingerprint"]:
        """Partial fingerprints of windows (from ``split``, of any clips) computed as one batch; anchor
        times are the clip's frame numbers. ``merge`` joins a clip's parts."""
        if not windows:
            return []
        p = self.params
        lengths = [w.samples.size for w in windows]
        longest = max(max(lengths), p.n_fft)
        batch = torch.zeros(len(windows), longest, device=self.device)
        for i, w in enumerate(windows):
            if w.samples.size:
                batch[i, : w.samples.size] = torch.from_numpy(w.samples).to(self.device)
        spec = torch.stft(batch, p.n_fft, p.hop, window=self._window, center=True, return_complex=True).abs()
        spec = spec[:, self._f_lo : self._f_hi]  # (B, F, T)
        log_spec = 20 * torch.log10(spec + 1e-6)
        frames = [min(spec.shape[-1], n // p.hop + 1) for n in lengths]
        peaks = self._pick_peaks(log_spec, frames)
        out = []
        for w, (t, f) in zip(windows, peaks):
            hashes, times = self._pair(t, f, w.core_start, w.core_end)
            in_core = int(((t >= w.core_start) & (t < w.core_end)).sum())
            out.append(
                Fingerprint(
                    hashes=hashes.cpu().numpy().astype(np.uint32),
                    times=(times.cpu().numpy() + w.first_frame).astype(np.int32),
                    duration_s=w.samples.size / SAMPLE_RATE,
                    peaks=in_core,
                )
            )
        return out

    def _pick_peaks(self, log_spec: torch.Tensor, frames: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per clip: (frame, bin) of the strongest local maxima in each (band, block) cell."""
        p = self.params
        b, nf, nt = log_spec.shape
        kf, kt = p.neighbourhood
        pooled = F.max_pool2d(log_spec[:, None], (kf, kt), stride=1, padding=(kf // 2, kt // 2))[:, 0]
        is_max = log_spec >= pooled
        # Noise floor per clip and frequency: the median over the clip's real frames.
        valid_t = torch.arange(nt, device=log_spec.device)[None, :] < torch.tensor(frames, device=log_spec.device)[:, None]
        floor = torch.where(valid_t[:, None, :], log_spec, torch.nan).nanmedian(dim=-1).values  # (B, F)
        loud = log_spec > floor[..., None] + p.min_db_above_floor
        # Silence (digital zero or near it) has no peaks at all.
        loud &= log_spec > log_spec.amax(dim=(1, 2), keepdim=True) - 80
        score = torch.where(is_max & loud & valid_t[:, None, :], log_spec, torch.tensor(-torch.inf, device=log_spec.device))
        # Cells: bands x blocks; keep the top peaks_per_cell of each.
        band = -(-nf // p.bands)
        blocks = -(-nt // p.block_frames)
        score = F.pad(score, (0, blocks * p.block_frames - nt, 0, band * p.bands - nf), value=-torch.inf)
        cells = score.reshape(b, p.bands, band, blocks, p.block_frames).permute(0, 1, 3, 2, 4)
        cells = cells.reshape(b, p.bands, blocks, band * p.block_frames)
        k = min(p.peaks_per_cell, cells.shape[-1])
        values, idx = cells.topk(k, dim=-1)
        keep = torch.isfinite(values)
        f_in = idx // p.block_frames
        t_in = idx % p.block_frames
        band_idx = torch.arange(p.bands, device=log_spec.device).view(1, -1, 1, 1)
        block_idx = torch.arange(blocks, device=log_spec.device).view(1, 1, -1, 1)
        f_all = band_idx * band + f_in
        t_all = block_idx * p.block_frames + t_in
        out = []
        for i in range(b):
            m = keep[i]
            t, f = t_all.expand_as(f_all)[i][m], f_all[i][m]
            order = torch.argsort(t * 4096 + f)
            out.append((t[order], f[order]))
        return out

    def _pair(self, t: torch.Tensor, f: torch.Tensor, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair each anchor in frames [lo, hi) with its first fan_out peaks in the target zone; hash = f1 | df | dt."""
        p = self.params
        n = t.shape[0]
        if n < 2:
            empty = torch.zeros(0, dtype=torch.int64, device=t.device)
            return empty, empty
        span = min(n - 1, p.fan_out * 6)  # look this many peaks ahead (time-sorted) for candidates
        idx = torch.arange(n, device=t.device)[:, None] + torch.arange(1, span + 1, device=t.device)[None, :]
        ok = idx < n
        idx = idx.clamp(max=n - 1)
        dt = t[idx] - t[:, None]
        df = f[idx] - f[:, None]
        ok &= (dt >= 1) & (dt <= p.max_dt) & (df.abs() <= p.max_df)
        ok &= ok.cumsum(dim=1) <= p.fan_out
        ok &= ((t >= lo) & (t < hi))[:, None]
        anchor = torch.arange(n, device=t.device)[:, None].expand_as(idx)[ok]
        f1 = f[anchor]
        hashes = (f1 << 14) | ((df[ok] + 128) << 6) | dt[ok]
        return hashes, t[anchor]
