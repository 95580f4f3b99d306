"""Recall across speed, pitch and tempo changes ("sped up", "slowed", a key change, time-stretching): 5-s
excerpts of real recordings edited by ffmpeg (speed: asetrate + aresample; pitch: the same then atempo back;
tempo: atempo), matched with and without speed search, side by side with Chromaprint, with 95% intervals.

Index: the real recordings of tests/data/music whole (five pieces of music, a humpback whale song, three
LibriSpeech readings and a speech; CC BY / public domain) plus `--distractors` synthetic songs, as the
production index side. Queries per factor: `--queries` excerpts, round-robin over the music and the whale,
each from a random place (seeded), decoded from AAC like an upload. Found: the query's own recording matched;
false: any other indexed recording matched. Non-matching queries (`--unrelated`): excerpts of synthetic songs
that are not indexed, under the same factors, where every match is false. Peers in the same run:
Chromaprint (fpcalc, best bit error rate over alignments, on the first `--chromaprint` queries) and, given a
checkout, dpwe/audfprint at its defaults (`--audfprint DIR`, benchmarks/peer_audfprint.py), on every query.

    python -m benchmarks.sound_speed [--queries 200] [--conditions speed:0.8,pitch:+1,...] [--voice]
        [--audfprint DIR] [--json out.json] [--plot out.png]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from coldopen.domain.sounds import Fingerprint

CONDITIONS = "speed:0.8,speed:1.25,pitch:+1,tempo:1.15"


def edit(kind: str, value: float) -> tuple[str, float]:
    """The ffmpeg filter chain of an edit, and the clip's time scale relative to the sound under it."""
    from testkit import audiogen as ag
    from testkit import soundsuite

    if kind == "speed":  # resampling: pitch and tempo together
        return f"asetrate={int(round(ag.RATE * value))},aresample={ag.RATE}", value
    if kind == "pitch":  # semitones, tempo kept
        return soundsuite._pitch(value), 1.0
    if kind == "tempo":  # pitch kept
        return f"atempo={value}", value
    raise SystemExit(f"unknown edit {kind!r}: use speed:<factor>, pitch:<semitones> or tempo:<factor>")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(float(max(0.0, centre - half)), 3), round(float(min(1.0, centre + half)), 3))


def excerpt(audio: np.ndarray, condition: str, rng: np.random.Generator, seconds: float = 5.0) -> np.ndarray:
    """`seconds` of `audio` (at testkit's rate) from a random place, under `condition` ("speed:1.2", ...)."""
    from testkit import audiogen as ag

    kind, value = condition.split(":")
    chain, scale = edit(kind, float(value))
    need = int((seconds * scale + 0.5) * ag.RATE)
    start = int(rng.integers(0, len(audio) - need))
    part = audio[start : start + need]
    if float(value) != (0.0 if kind == "pitch" else 1.0):  # else: the clip as it is
        part = ag.ffmpeg_filter(part, ag.RATE, chain)
    return part[: int(seconds * ag.RATE)]


@dataclass
class Tally:
    """One system's results under one condition."""

    found: int = 0
    queries: int = 0
    false: int = 0            # queries of an indexed recording that also (or only) matched another
    unrelated: int = 0        # non-matching queries asked ...
    unrelated_matched: int = 0  # ... and how many matched anything
    seconds: float = 0.0
    hashes: int = 0
    scale_err: list[float] = field(default_factory=list)
    pitch_err: list[float] = field(default_factory=list)
    true_frames: list[int] = field(default_factory=list)
    false_frames: list[int] = field(default_factory=list)
    by_recording: dict[str, list[int]] = field(default_factory=dict)
    # --tail: per non-matching query, the most frames any sound gathered with the thresholds lowered to 2,
    # among the hashes that need MIN_MATCH_FRAMES (the clip as it is and a few pitch shifts) and among the
    # many hypotheses' that need SPEED_MATCH_FRAMES
    # peers: (query of an indexed recording?, its best reference is the right one?, score, higher stronger)
    peer_scores: list[tuple[bool, bool, float]] = field(default_factory=list)
    tail_plain: list[int] = field(default_factory=list)
    tail_groups: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        n = max(self.queries, 1)
        out = {"found": self.found, "queries": self.queries, "recall": round(self.found / n, 3),
               "recall_95ci": wilson(self.found, self.queries), "queries_with_a_false_match": self.false,
               "unrelated_queries_matched": self.unrelated_matched, "unrelated_queries": self.unrelated,
               "found_by_recording": self.by_recording}
        if self.peer_scores:
            # The threshold just above every wrong best match (unrelated queries, and indexed ones whose best is
            # another recording): the recall the peer keeps at no false match on this run.
            wrong = [score for own, right, score in self.peer_scores if not (own and right)]
            bar = max(wrong, default=-np.inf)
            kept = sum(own and right and score > bar for own, right, score in self.peer_scores)
            out["no_false_threshold"] = None if bar == -np.inf else round(float(bar), 4)
            out["recall_at_no_false"] = round(kept / n, 3)
            out["recall_at_no_false_95ci"] = wilson(kept, self.queries)
        if self.tail_plain:
            out["tail_max_frames"] = {"needing_min_frames": sorted(self.tail_plain),
                                      "needing_speed_frames": sorted(self.tail_groups)}
        if self.true_frames or self.seconds:
            out |= {
                "median_scale_error": round(float(np.median(self.scale_err)), 4) if self.scale_err else None,
                "median_pitch_error_semitones": round(float(np.median(self.pitch_err)), 3) if self.pitch_err else None,
                # matched frames of each found query's own recording, and of every false match (both kinds)
                "true_frames": sorted(self.true_frames), "false_frames": sorted(self.false_frames),
                "fingerprint_ms_per_query": round(1000 * self.seconds / n, 1), "query_hashes_mean": round(self.hashes / n),
            }
        return out


class Bench:
    """The index side (real recordings and synthetic songs), the systems and the peers, for every condition."""

    def __init__(self, args: argparse.Namespace, folder: Path):
        from benchmarks.peer_audfprint import Audfprint
        from benchmarks.sound_robustness import chromaprint
        from coldopen.engine import media
        from coldopen.models.fingerprint import Fingerprinter
        from testkit import audiogen as ag
        from testkit import soundsuite

        self.args, self.folder = args, folder
        names = soundsuite.RECORDINGS + soundsuite.NARRATIONS
        jfk = media.decode_audio(soundsuite.MUSIC / "jfk-inaugural-address.opus")
        self.real = [soundsuite._decoded(n) for n in names] + [ag.resample(jfk, 16_000, ag.RATE)]
        self.labels = names + ["jfk-inaugural-address"]
        songs = [ag.music(seed, 15.0) for seed in range(args.distractors)]
        plain = Fingerprinter.load("cpu")
        self.systems = {"plain": plain, "speed search": Fingerprinter.load("cpu", speed_search=True)}
        ref_files = [ag.encode(folder / f"ref-{i}.m4a", a, bitrate=128_000) for i, a in enumerate(self.real + songs)]
        self.postings = soundsuite.Postings(plain.fingerprint([media.decode_audio(f) for f in ref_files]))
        self.cp_refs = [chromaprint(f) for f in ref_files[: len(self.real)]]
        self.audfprint = Audfprint(args.audfprint, ref_files) if args.audfprint else None
        self.queried = list(range(len(soundsuite.RECORDINGS)))  # music and the whale
        self.unrelated_songs = [ag.music(10_000 + k, 8.0) for k in range(args.unrelated)]
        self.indexed = {"recordings": self.labels, "synthetic_songs": len(songs), "postings": int(self.postings.hash.size)}

    def condition(self, condition: str) -> dict[str, dict]:
        from testkit import audiogen as ag
        from testkit import soundsuite

        kind, value = condition.split(":")
        factor = edit(kind, float(value))[1]
        semitones = 12 * np.log2(float(value)) if kind == "speed" else float(value) if kind == "pitch" else 0.0
        rng = np.random.default_rng(zlib.crc32(condition.encode()))
        tallies = {name: Tally() for name in [*self.systems, "chromaprint", "audfprint"]}
        for k in range(self.args.queries):
            own = self.queried[k % len(self.queried)]
            audio = excerpt(self.real[own], condition, rng)
            voice = None
            if self.args.voice:  # an indexed reading: finding it too is right, neither found nor false
                audio = ag.overlay(audio, soundsuite.narration(k)[: audio.size], 0.0)
                voice = len(soundsuite.RECORDINGS) + k % len(soundsuite.NARRATIONS)
            self._query(ag.encode(self.folder / "q.m4a", audio), own, k, tallies, factor, semitones, voice)
        for k, song in enumerate(self.unrelated_songs):
            self._query(ag.encode(self.folder / "u.m4a", excerpt(song, condition, rng)), None, k, tallies, factor, semitones)
        return {name: t.summary() for name, t in tallies.items() if t.queries or t.unrelated}

    def _query(self, path: Path, own: int | None, k: int, tallies: dict[str, Tally], factor: float, semitones: float,
               voice: int | None = None) -> None:
        """One query file through every system; `own`: the recording it is from (None: unrelated); `voice`: the
        indexed reading spoken over it, if any."""
        from benchmarks.sound_robustness import best_ber, chromaprint
        from coldopen.engine import media

        decoded = media.decode_audio(path)
        for name, fp in self.systems.items():
            t = tallies[name]
            started = time.perf_counter()
            q = fp.fingerprint([decoded])[0]
            t.seconds += time.perf_counter() - started  # fingerprinting (the store's lookups: sound_scale.py)
            t.hashes += len(q)
            matches = self.postings.match(q, limit=10)
            hit = [m for m in matches if m.sound == own]
            wrong = [m for m in matches if m.sound not in (own, voice)]
            t.false_frames += [m.matched_frames for m in wrong]
            if own is None:
                t.unrelated, t.unrelated_matched = t.unrelated + 1, t.unrelated_matched + bool(matches)
                if self.args.tail:
                    self._tail(t, q)
                continue
            t.queries, t.found, t.false = t.queries + 1, t.found + bool(hit), t.false + bool(wrong)
            record = t.by_recording.setdefault(self.labels[own], [0, 0])
            record[0], record[1] = record[0] + bool(hit), record[1] + 1
            if hit:
                t.scale_err.append(abs(hit[0].scale - factor))
                t.pitch_err.append(abs(12 * np.log2(hit[0].pitch) - semitones))
                t.true_frames.append(hit[0].matched_frames)
        if k < self.args.chromaprint:
            bers = [best_ber(chromaprint(path), c, 16) for c in self.cp_refs]
            best = int(np.argmin(bers))
            self._peer(tallies["chromaprint"], best, 1 - bers[best], 1 - self.args.chromaprint_ber, own, voice)
        if self.audfprint is not None:
            ref, count = self.audfprint.best(path)
            self._peer(tallies["audfprint"], ref, count, self.audfprint.MIN_COUNT - 0.5, own, voice)

    def _tail(self, t: Tally, q: Fingerprint) -> None:
        plain, groups = tail(q, lambda part: self.postings.match(part, limit=1, min_frames=2, group_min_frames=2,
                                                                       shift_min_frames=2))
        t.tail_plain.append(plain)
        t.tail_groups.append(groups)

    @staticmethod
    def _peer(t: Tally, ref: int | None, score: float, bar: float, own: int | None, voice: int | None = None) -> None:
        """A peer's best reference and its score (higher: stronger), matched when the score passes `bar`; its
        best being the reading spoken over the query (`voice`) is neither found nor false."""
        if ref is not None and ref == voice:
            t.queries += 1
            return
        t.peer_scores.append((own is not None, ref is not None and ref == own, score))
        best = ref if score > bar else None
        if own is None:
            t.unrelated, t.unrelated_matched = t.unrelated + 1, t.unrelated_matched + (best is not None)
        else:
            t.queries, t.found, t.false = t.queries + 1, t.found + (best == own), t.false + (best not in (None, own))


def tail(q: Fingerprint, match) -> tuple[int, int]:
    """The most frames any sound gathered for a query with the thresholds lowered to 2 (`match(part)`:
    matches, best first), from the clip as it is with its explicit pitch shifts (groups up to
    `plain_groups`) and from the other hypotheses: the tail that decides false matches."""
    g = q.groups if q.groups.size else np.zeros(len(q), np.uint16)
    best = []
    for keep in (g <= q.plain_groups, g > q.plain_groups):
        part = dataclasses.replace(q, hashes=q.hashes[keep], times=q.times[keep],
                                   groups=q.groups[keep] if q.groups.size else q.groups)
        found = match(part) if keep.any() else []
        best.append(found[0].matched_frames if found else 0)
    return best[0], best[1]


def line(condition: str, out: dict[str, dict]) -> str:
    s = out["speed search"]
    tf = s.get("true_frames") or [0]
    text = (f"{condition:<11} speed search {s['recall']:.3f} {s['recall_95ci']} false "
            f"{s['queries_with_a_false_match']}+{s['unrelated_queries_matched']}/{s['unrelated_queries']} "
            f"frames true p10/p50 {np.percentile(tf, 10):.0f}/{np.median(tf):.0f} false {s['false_frames']} "
            f"pitch err {s['median_pitch_error_semitones']} ({s['fingerprint_ms_per_query']} ms/q)")
    for name in ("plain", "chromaprint", "audfprint"):
        if name in out:
            r = out[name]
            text += (f" | {name} {r['recall']:.3f} {r['recall_95ci']} "
                     f"false {r['queries_with_a_false_match']}+{r['unrelated_queries_matched']}/{r['unrelated_queries']}")
            if "recall_at_no_false" in r:
                text += f" (at no false: {r['recall_at_no_false']:.3f})"
    return text


def plot(table: dict[str, dict[str, dict]], path: Path) -> None:
    """Recall against the factor of each edit, one panel per kind, each system with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [("speed", "speed factor (resampled)"), ("pitch", "pitch change, semitones (tempo kept)"),
             ("tempo", "tempo factor (pitch kept)")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), sharey=True)
    for ax, (kind, label) in zip(axes, kinds):
        rows = sorted((float(c.split(":")[1]), out) for c, out in table.items() if c.split(":")[0] == kind)
        if "speed:1" in table and kind != "speed":  # the clip as it is: every panel's origin
            rows = sorted(rows + [(0.0 if kind == "pitch" else 1.0, table["speed:1"])], key=lambda r: r[0])
        for j, name in enumerate(["speed search", "plain", "chromaprint", "audfprint"]):
            pts = [(x, out[name]) for x, out in rows if name in out]
            if not pts:
                continue
            xs = np.array([x for x, _ in pts]) + (j - 1.5) * (0.004 if kind != "pitch" else 0.03)
            ys = np.array([r["recall"] for _, r in pts])
            err = np.array([[y - r["recall_95ci"][0], r["recall_95ci"][1] - y] for y, (_, r) in zip(ys, pts)]).T
            line = ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"{name}" + (" (default threshold)" if
                               "recall_at_no_false" in pts[0][1] else ""))
            if "recall_at_no_false" in pts[0][1]:  # a peer at the threshold that kept it free of false matches
                ax.plot(xs, [r["recall_at_no_false"] for _, r in pts], ls="--", marker="x",
                        color=line[0].get_color(), label=f"{name} at no false match")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall, 5-s excerpts (95% interval)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9)
    fig.suptitle("Finding a sound under speed, pitch and tempo edits")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=200, help="excerpts per factor")
    p.add_argument("--conditions", default=CONDITIONS, help="comma-separated speed:<factor>, pitch:<semitones>, "
                   "tempo:<factor> (speed:1 is the clip as it is)")
    p.add_argument("--distractors", type=int, default=100, help="synthetic songs indexed beside the recordings")
    p.add_argument("--unrelated", type=int, default=50, help="non-matching excerpts per factor")
    p.add_argument("--chromaprint", type=int, default=40, help="queries (and unrelated) per factor also given to Chromaprint")
    p.add_argument("--chromaprint-ber", type=float, default=0.35)
    p.add_argument("--audfprint", type=Path, help="a checkout of dpwe/audfprint, run beside (benchmarks/peer_audfprint.py)")
    p.add_argument("--voice", action="store_true", help="LibriSpeech narration over every query at 0 dB")
    p.add_argument("--tail", action="store_true", help="also vote every non-matching query with the thresholds lowered "
                   "to 2 and keep the most frames it reached: the tail that decides false matches")
    p.add_argument("--threads", type=int, help="torch threads (two runs side by side on 2 cores: 1 each; an "
                   "oversubscribed torch ran the same query 10x slower)")
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path)
    p.add_argument("--plot-also", type=Path, nargs="*", default=[],
                   help="earlier runs' --json (oldest first), drawn in the plot too; per condition, each system's newest figures")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    table: dict[str, dict] = {}
    conditions = [c for c in args.conditions.split(",") if c]
    if conditions:  # none (--conditions ""): nothing to measure, only --plot what --plot-also holds
        with tempfile.TemporaryDirectory() as tmp:
            bench = Bench(args, Path(tmp))
            for condition in conditions:
                table[condition] = bench.condition(condition)
                print(line(condition, table[condition]), flush=True)
                result = {
                    "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                    "indexed": bench.indexed, "voice_over": args.voice,
                    "hypotheses": len(bench.systems["speed search"].params.warps), "conditions": table,
                }
                if args.json:  # after every condition: a long run keeps what it measured
                    args.json.write_text(json.dumps(result, indent=2))
    if args.plot:
        plot(merged([json.loads(f.read_text())["conditions"] for f in args.plot_also] + [table]), args.plot)


def merged(tables: list[dict[str, dict]]) -> dict[str, dict]:
    """Conditions of several runs (oldest first), system by system: a later run's figures for a system replace
    an earlier's, and a system a later run left out (e.g. the peers, `--chromaprint 0`) keeps the earlier's,
    measured on the same seeded excerpts."""
    out: dict[str, dict] = {}
    for table in tables:
        for condition, systems in table.items():
            out[condition] = out.get(condition, {}) | systems
    return out


if __name__ == "__main__":
    main()
