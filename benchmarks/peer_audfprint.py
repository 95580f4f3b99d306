"""dpwe/audfprint (MIT; Dan Ellis's landmark fingerprinter) as a peer in the sound benchmarks.

Not a dependency: it is not on PyPI. Bring a checkout (e.g. `git clone https://github.com/dpwe/audfprint`)
and `pip install docopt joblib` beside the bench extra, then pass `--audfprint DIR`. It runs in this
process with its command line's defaults: density 20 hashes/s at 11,025 Hz, 4 time shifts for a query
(1 when indexing), a match needs 5 landmarks aligned within 2 frames, its best match only. Files are
decoded as ColdOpen decodes them (PyAV, then resampled to its rate), not by its ffmpeg subprocess."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any


class Audfprint:
    def __init__(self, checkout: Path, references: list[Path]):
        if not (checkout / "audfprint_analyze.py").is_file():
            raise SystemExit(f"--audfprint {checkout}: not an audfprint checkout (no audfprint_analyze.py there)")
        sys.path.insert(0, str(checkout))
        analyze: Any = importlib.import_module("audfprint_analyze")
        match: Any = importlib.import_module("audfprint_match")
        table: Any = importlib.import_module("hash_table")
        analyze.audio_read.audio_read = _decoded
        self._analyzer = analyze.Analyzer()
        self._analyzer.verbose = False
        self._table = table.HashTable(hashbits=20, depth=100, maxtime=16384)
        for i, path in enumerate(references):
            self._table.store(str(i), self._analyzer.wavfile2hashes(str(path)))
        self._matcher = match.Matcher()
        self._matcher.verbose = 0
        self._matcher.threshcount = 1  # every best match with its count; `best` applies the default of 5

    MIN_COUNT = 5  # its command line's --min-count

    def best(self, path: Path) -> tuple[int | None, float]:
        """The reference a query file matches best and its count of aligned landmarks (None, 0: none)."""
        self._analyzer.shifts = 4  # as its `match` command
        try:
            results, _, _ = self._matcher.match_file(self._analyzer, self._table, str(path))
        finally:
            self._analyzer.shifts = 1
        if not len(results):
            return None, 0.0
        return int(self._table.names[int(results[0][0])]), float(results[0][1])


def _decoded(path: str, sr: int | None = None, channels: int | None = None) -> tuple[Any, int]:
    from math import gcd

    from scipy.signal import resample_poly

    from coldopen.engine import media

    audio = media.decode_audio(Path(path))  # 16 kHz mono
    rate = sr or 16_000
    g = gcd(rate, 16_000)
    return (resample_poly(audio, rate // g, 16_000 // g) if rate != 16_000 else audio), rate
