"""Landmark audio fingerprints (spectral-peak triplets, after Wang 2003 and Sonnleitner & Widmer's quads),
computed in torch.

A clip's 16 kHz mono audio becomes a log-magnitude spectrogram; the strongest local maxima in each
(frequency band, time block) cell are its peaks. Each peak (the "anchor") is combined with two of the
next peaks in a target zone, and every triplet becomes a 32-bit hash of (anchor frequency, both
frequency deltas, both time deltas), stored with the anchor's time. Two recordings of the same sound
share many hashes at one consistent time offset, even when a voice, noise or re-encoding destroys most
other peaks; matching (``sounds/vote.py``) votes on that offset.

Why triplets, two densities and coarse frame deltas (measured on the robustness suite, benchmarks/RESULTS.md):
  * A peak pair holds about 23 bits (anchor bin, frequency delta, time delta), and real spectra use
    far fewer of them: at a million indexed clips every pair hash has thousands of postings, so a
    lookup's cost grows with the corpus. A triplet carries 37 bits of fields, mixed into 32 bits, and
    chords that two unrelated songs share no longer line up three peaks at a time.
  * The index side is sparse (the strongest peak per 0.64-s cell, each anchor with its next 3 targets
    within about one band: 3 triplets), which keeps postings to about 21 per second of audio (~12 KB per
    30 s in the store). The query side is denser (more targets per anchor; for short queries the
    second-strongest peak per cell too, and for clips of at most 8 s the third as well), so the index's
    triplets are found in it even when a voice-over moves peaks around. Lookup cost is set by the query.
  * Targets stay within ~1.2 kHz of their anchor: a voice-over that buries the low bands then leaves the
    triplets of the bands above it whole, instead of spoiling every triplet that reaches down into them.
  * Frame deltas are hashed in steps of two frames: an excerpt cut anywhere is framed at another phase of
    the hop, and a voice nudges peaks by a frame; either used to change the hash. Measured on the suite's
    hardest case (a 5-s excerpt under a 0 dB voice-over), these three changes took the hit rate from 33%
    to 76% while the postings per clip fell by 40% (field entropy per hash: ~29.7 bits, from ~32).

Spectrograms, peak picking and hashing run batched over clips on the model's device, so the same code
serves the CPU here and a GPU in production. Peaks are chosen per frequency band so that a voice-over,
loud in the low bands, cannot take every peak away from the music above it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from coldopen.domain.sounds import FINGERPRINT_FORMAT, Fingerprint
from coldopen.models import warps
from coldopen.models.warps import Warp, all_warps
from coldopen.models.windows import run_in_windows

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# The hash format of index-side hashes (domain/sounds.py): stored fingerprints and postings of another
# format cannot be matched.
FORMAT = FINGERPRINT_FORMAT


@dataclass(frozen=True)
class FingerprintParams:
    n_fft: int = 1024  # 64 ms window, 15.6 Hz bins
    hop: int = 256  # 16 ms frames
    f_min_hz: float = 250.0
    f_max_hz: float = 5000.0
    bands: int = 6  # peaks are picked per band ...
    block_frames: int = 40  # ... per 0.64 s block
    peaks_per_cell: int = 3  # the strongest feeds the index; short queries use two, very short ones all
    neighbourhood: tuple[int, int] = (9, 7)  # (freq bins, frames) a peak must dominate
    index_targets: int = 3  # index side: each anchor with its next 3 targets (3 triplets)
    query_targets: int = 6  # query side: next 6 targets (15 triplets) ...
    short_query_targets: int = 12  # ... or, for a clip of at most short_query_s, 12 targets among the stronger peaks
    short_query_s: float = 16.0  # (a 15-s clip stays short after a tempo or pitch edit)
    very_short_query_s: float = 8.0  # a clip this short has few seconds to gather votes: all peaks per cell
    pitch_hypotheses: tuple[float, ...] = (-1.0, 1.0)  # short queries also look up these pitch shifts (semitones),
    # hashed as densely as the clip as it is
    # Short queries also look up these changes (warps.py: (frequency, time) factors of speed, pitch and tempo
    # edits), each undone in the spectrogram and voted on as its own group (sounds/vote.py). Empty: off.
    warps: tuple[Warp, ...] = ()
    speed_targets: int = 10  # per hypothesis: targets per anchor (45 triplets) ...
    speed_peaks: int = 2  # ... among the strongest speed_peaks per cell (x0.8, real music: 1 left 3 of 10
    # excerpts under 6 frames, 2 left 1; 3 found fewer: the extra peaks take the indexed peaks' target slots).
    # Targets: 6 -> 10 found 28 of 30 real excerpts at x0.8 instead of 25, for 1.8x the query's hashes.
    max_dt: int = 63  # target zone: 1..63 frames (~1 s) later,
    max_df: int = 75  # and within +-75 bins (~1.2 kHz: about one band either side)
    dt_step: int = 2  # frame deltas are hashed in steps of 2 frames (32 ms)
    min_db_above_floor: float = 6.0  # ignore peaks this close to the clip's noise floor

    @property
    def frame_seconds(self) -> float:
        return self.hop / SAMPLE_RATE

    @property
    def hypotheses(self) -> tuple[Warp, ...]:
        """Every change a short query is also looked up under, as (frequency, time) factors: the pitch shifts
        first, then the warps. Hypothesis k is the query's group k + 1 (group 0: the clip as it is)."""
        return tuple((2 ** (s / 12), 1.0) for s in self.pitch_hypotheses) + self.warps


# Windows (Fingerprinter.split): a core of 47 blocks of 40 frames (30.08 s) anchors hashes, with 2 blocks
# (1.28 s) of context on each side: more than the target zone's 63 frames, so the core's last anchors keep
# all their pairs.
WINDOW_BLOCKS = 47
CONTEXT_BLOCKS = 2


@dataclass(frozen=True)
class AudioWindow:
    samples: np.ndarray  # 16 kHz mono float32, starting at frame `first_frame` of the clip
    first_frame: int
    core_start: int  # window frames [core_start, core_end) anchor this window's hashes
    core_end: int
    short: bool = False  # part of a short clip: its query side uses the denser hashes
    very_short: bool = False  # ... and the densest


_NONE_U32 = np.zeros(0, np.uint32)
_NONE_I32 = np.zeros(0, np.int32)
_NONE_U16 = np.zeros(0, np.uint16)


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
    def load(cls, device: str = "cpu", speed_search: bool = False) -> Fingerprinter:
        # Speed search keeps the two explicit pitch shifts too: voted at the plain threshold, they find a
        # semitone's shift with fewer frames than the grid's groups need (benchmarks/RESULTS.md: without them
        # pitch -1 fell from 0.85 to 0.79).
        return cls(FingerprintParams(warps=all_warps() if speed_search else ()), device)

    def split(self, audio: np.ndarray) -> list[AudioWindow]:
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
        short = audio.size <= p.short_query_s * SAMPLE_RATE
        if frames <= core + context:
            return [AudioWindow(audio, 0, 0, frames, short, audio.size <= p.very_short_query_s * SAMPLE_RATE)]
        out = []
        for start in range(0, frames, core):
            first = max(0, start - context)
            last = min(frames, start + core + context)
            samples = audio[first * p.hop : last * p.hop]
            out.append(AudioWindow(samples, first, start - first, min(frames, start + core) - first, short))
        return out

    @staticmethod
    def merge(parts: Sequence[Fingerprint], duration_s: float) -> Fingerprint:
        """One clip's fingerprint from its windows' (in order)."""
        if len(parts) == 1:
            return dataclasses.replace(parts[0], duration_s=duration_s)

        def joined(name: str, empty: np.ndarray) -> np.ndarray:
            return np.concatenate([getattr(x, name) for x in parts]) if parts else empty

        # Only a short clip (one window) carries speed hypotheses, so a long clip's windows have none.
        return Fingerprint(
            hashes=joined("hashes", _NONE_U32),
            times=joined("times", _NONE_I32),
            duration_s=duration_s,
            peaks=sum(x.peaks for x in parts),
            index_hashes=joined("index_hashes", _NONE_U32),
            index_times=joined("index_times", _NONE_I32),
        )

    def fingerprint(self, audios: Sequence[np.ndarray], max_windows: int = 32) -> list[Fingerprint]:
        """Fingerprints of several 16 kHz mono float32 clips, at most `max_windows` windows per batch."""
        parts = run_in_windows([self.split(a) for a in audios], self.fingerprint_windows, max_windows)
        return [self.merge(p, len(a) / SAMPLE_RATE) for a, p in zip(audios, parts)]

    @torch.inference_mode()
    def fingerprint_windows(self, windows: Sequence[AudioWindow]) -> list[Fingerprint]:
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
        full = 20 * torch.log10(
            torch.stft(batch, p.n_fft, p.hop, window=self._window, center=True, return_complex=True).abs() + 1e-6
        )
        log_spec = full[:, self._f_lo : self._f_hi]  # (B, F, T)
        frames = [min(log_spec.shape[-1], n // p.hop + 1) for n in lengths]
        peaks = self._pick_peaks(log_spec, frames)
        short = [i for i, w in enumerate(windows) if w.short]
        shifted = {}  # (window, hypothesis) -> peaks of the window's spectrogram with its pitch shift undone
        if short and p.pitch_hypotheses:
            shifts = p.hypotheses[: len(p.pitch_hypotheses)]  # (2^(semitones/12), 1): pitch moved, tempo kept
            warped = torch.cat([warps.undo(full[short], self._f_lo, self._f_hi, wp) for wp in shifts])
            picked = self._pick_peaks(warped, [frames[i] for i in short] * len(p.pitch_hypotheses))
            for k, pk in enumerate(picked):
                shifted[(short[k % len(short)], k // len(short))] = pk
        out = []
        for i, (w, (t, f, rank)) in enumerate(zip(windows, peaks)):
            strongest = rank == 0
            index_h, index_t = self._triplets(t[strongest], f[strongest], w.core_start, w.core_end, p.index_targets)
            if w.short:
                # The clip as it is and each explicit pitch shift: the two strongest peaks per cell (a very short
                # clip: all of them), each its own group (sounds/vote.py). The shifts were hashed like a long query
                # (the strongest peak, 6 targets) until 2026-12-06: hashed as densely as the clip, real music
                # under pitch +-1 gathered a median of ~17 frames instead of ~12 (benchmarks/RESULTS.md).
                per_cell = p.peaks_per_cell if w.very_short else 2
                dense = rank < per_cell
                parts = [(*self._triplets(t[dense], f[dense], w.core_start, w.core_end, p.short_query_targets), 0)]
                for h in range(len(p.pitch_hypotheses)):
                    st, sf, sr = shifted[(i, h)]
                    pd = sr < per_cell
                    parts.append((*self._triplets(st[pd], sf[pd], w.core_start, w.core_end, p.short_query_targets), h + 1))
                if p.warps:
                    parts += self._warped_hashes(full[i], frames[i], w, first_group=len(p.pitch_hypotheses) + 1)
                query_h = np.concatenate([h for h, _, _ in parts])
                query_t = np.concatenate([t_ for _, t_, _ in parts])
                query_g = np.concatenate([np.full(h.size, g, np.uint16) for h, _, g in parts]) if len(parts) > 1 else _NONE_U16
            else:
                query_h, query_t = self._triplets(t[strongest], f[strongest], w.core_start, w.core_end, p.query_targets)
                query_g = _NONE_U16
            in_core = int(((t >= w.core_start) & (t < w.core_end) & strongest).sum())
            out.append(
                Fingerprint(
                    hashes=query_h,
                    times=(query_t + w.first_frame).astype(np.int32),
                    duration_s=w.samples.size / SAMPLE_RATE,
                    peaks=in_core,
                    index_hashes=index_h,
                    index_times=(index_t + w.first_frame).astype(np.int32),
                    groups=query_g,
                    group_scales=tuple(time for _, time in p.hypotheses) if query_g.size else (),
                    group_pitches=tuple(freq for freq, _ in p.hypotheses) if query_g.size else (),
                    plain_groups=len(p.pitch_hypotheses) if query_g.size else 0,
                )
            )
        return out

    def _warped_hashes(
        self, full: torch.Tensor, frames: int, w: AudioWindow, first_group: int, chunk: int = 24
    ) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """(hashes, clip frames, group) of one short window under each warp (group first_group + k for warps[k]).

        A clip whose frequencies are the sound's x f and which plays t times faster holds sound frame k x t at
        its frame k and sound bin b at its bin b x f. So each hypothesis's spectrogram is read on the sound's
        axes (warps.undo), its peaks are hashed as a long query's, and each anchor's time goes back to the
        clip's frame (j / t) for the vote, whose scale for the group is t. Hypotheses go through peak picking
        `chunk` at a time, bounding the warped spectrograms' memory."""
        p = self.params
        out = []
        for start in range(0, len(p.warps), chunk):
            part = p.warps[start : start + chunk]
            warped = [warps.undo(full[:, :frames], self._f_lo, self._f_hi, wp) for wp in part]
            longest = max(x.shape[-1] for x in warped)
            batch = torch.full((len(part), warped[0].shape[0], longest), -120.0, device=full.device)
            for k, x in enumerate(warped):
                batch[k, :, : x.shape[-1]] = x
            picked = self._pick_peaks(batch, [x.shape[-1] for x in warped])
            for k, ((_, tempo), (t, f, rank)) in enumerate(zip(part, picked)):
                keep = rank < p.speed_peaks
                h, t_sound = self._triplets(t[keep], f[keep], 0, warped[k].shape[-1], p.speed_targets)
                clip_t = np.clip(np.round(t_sound / tempo), w.core_start, w.core_end - 1).astype(np.int64)
                out.append((h, clip_t, first_group + start + k))
        return out

    def _pick_peaks(self, log_spec: torch.Tensor, frames: list[int]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per clip: (frame, bin, rank in its cell) of the strongest local maxima in each (band, block) cell,
        sorted by time then bin."""
        p = self.params
        b, nf, nt = log_spec.shape
        kf, kt = p.neighbourhood
        pooled = _sliding_max(_sliding_max(log_spec, kf, 1), kt, 2)
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
        rank_all = torch.arange(k, device=log_spec.device).view(1, 1, 1, -1).expand_as(f_all)
        out = []
        for i in range(b):
            m = keep[i]
            t, f, r = t_all.expand_as(f_all)[i][m], f_all[i][m], rank_all[i][m]
            order = torch.argsort(t * 4096 + f)
            out.append((t[order], f[order], r[order]))
        return out

    def _triplets(self, t: torch.Tensor, f: torch.Tensor, lo: int, hi: int, targets: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint32 hashes, int64 anchor frames) of every anchor in frames [lo, hi) with each 2 of its first
        `targets` peaks in the target zone."""
        fields, times = self._triplet_fields(t, f, lo, hi, targets)
        return mix32(fields), times

    def _triplet_fields(self, t: torch.Tensor, f: torch.Tensor, lo: int, hi: int, targets: int) -> tuple[np.ndarray, np.ndarray]:
        """Unmixed fields: anchor bin (9 bits), both bin deltas (8 bits each), both frame deltas in dt_steps (6 bits each)."""
        p = self.params
        n = t.shape[0]
        if n < 3:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        span = min(n - 1, targets * 8)  # peaks ahead (time-sorted) to look through for targets
        idx = torch.arange(n, device=t.device)[:, None] + torch.arange(1, span + 1, device=t.device)[None, :]
        ok = idx < n
        idx = idx.clamp(max=n - 1)
        dt = t[idx] - t[:, None]
        df = f[idx] - f[:, None]
        ok &= (dt >= 1) & (dt <= p.max_dt) & (df.abs() <= p.max_df)
        # The first `targets` candidates of each anchor, in time order: a stable sort puts them first.
        order = torch.argsort((~ok).to(torch.int8), dim=1, stable=True)[:, :targets]
        first = torch.gather(ok, 1, order)
        b_col, c_col = torch.triu_indices(order.shape[1], order.shape[1], offset=1, device=t.device)
        valid = first[:, b_col] & first[:, c_col] & ((t >= lo) & (t < hi))[:, None]
        anchor = torch.arange(n, device=t.device)[:, None].expand_as(valid)[valid]
        jb = torch.gather(idx, 1, order)[:, b_col][valid]
        jc = torch.gather(idx, 1, order)[:, c_col][valid]
        fields = (
            (f[anchor] << 28)
            | ((f[jb] - f[anchor] + 128) << 20)
            | ((f[jc] - f[anchor] + 128) << 12)
            | (((t[jb] - t[anchor]) // p.dt_step) << 6)
            | ((t[jc] - t[anchor]) // p.dt_step)
        )
        return fields.cpu().numpy(), t[anchor].cpu().numpy().astype(np.int64)


def _sliding_max(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Centred running maximum of odd width k along `dim` (-inf beyond the edges): max_pool2d's answer with
    stride 1 and padding k // 2. A rectangle's maximum is the maximum of its rows' maxima, so two of these
    give the 2-D pool exactly; as k - 1 element-wise maxima of shifted views it runs ~8x faster than
    max_pool2d on CPU (which compares k x k per element), and the speed hypotheses pick peaks on ~240
    spectrograms per short query."""
    n = x.shape[dim]
    padded = F.pad(x.movedim(dim, -1), (k // 2, k // 2), value=-torch.inf)
    out = padded[..., :n]
    for d in range(1, k):
        out = torch.maximum(out, padded[..., d : d + n])
    return out.movedim(-1, dim)


def mix32(fields: np.ndarray) -> np.ndarray:
    """Fold int64 fields into well-spread uint32 hashes (the finaliser of MurmurHash3's 64-bit mix):
    equal fields give equal hashes, and the index's keys spread evenly whatever the fields' skew."""
    x = fields.astype(np.uint64)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xC4CEB9FE1A85EC53)
        x ^= x >> np.uint64(33)
    return (x >> np.uint64(32)).astype(np.uint32)
