"""Recall across speed, pitch and tempo changes ("sped up", "slowed", a key change, time-stretching): 5-s
excerpts of real recordings edited by ffmpeg (speed: asetrate + aresample; pitch: the same then atempo back;
tempo: atempo), matched with and without speed search, side by side with Chromaprint, with 95% intervals.

Index: the real recordings of tests/data/music whole (five pieces of music, a humpback whale song, three
LibriSpeech readings and a speech; CC BY / public domain) plus `--distractors` synthetic songs, as the
production index side. Queries per factor: `--queries` excerpts, round-robin over the music and the whale,
each from a random place (seeded), decoded from AAC like an upload. Found: the query's own recording matched;
false: any other indexed recording matched. Non-matching queries (`--unrelated`): excerpts of synthetic songs
that are not indexed, under the same factors, where every match is false.

    python -m benchmarks.sound_speed [--queries 200] [--conditions speed:0.8,pitch:+1,...] [--voice] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

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


def main() -> None:
    from benchmarks.sound_robustness import best_ber, chromaprint
    from coldopen.engine import media
    from coldopen.models.fingerprint import Fingerprinter
    from testkit import audiogen as ag
    from testkit import soundsuite

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=200, help="excerpts per factor")
    p.add_argument("--conditions", default=CONDITIONS, help="comma-separated speed:<factor>, pitch:<semitones>, "
                   "tempo:<factor> (speed:1 is the clip as it is)")
    p.add_argument("--distractors", type=int, default=100, help="synthetic songs indexed beside the recordings")
    p.add_argument("--unrelated", type=int, default=50, help="non-matching excerpts per factor")
    p.add_argument("--chromaprint", type=int, default=40, help="queries per factor also given to Chromaprint")
    p.add_argument("--chromaprint-ber", type=float, default=0.35)
    p.add_argument("--voice", action="store_true", help="LibriSpeech narration over every query at 0 dB")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    conditions = args.conditions.split(",")

    names = soundsuite.RECORDINGS + soundsuite.NARRATIONS
    jfk = media.decode_audio(soundsuite.MUSIC / "jfk-inaugural-address.opus")
    real = [soundsuite._decoded(n) for n in names] + [ag.resample(jfk, 16_000, ag.RATE)]
    labels = names + ["jfk-inaugural-address"]
    songs = [ag.music(seed, 15.0) for seed in range(args.distractors)]
    plain, speedy = Fingerprinter.load("cpu"), Fingerprinter.load("cpu", speed_search=True)
    systems = {"plain": plain, "speed search": speedy}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ref_files = [ag.encode(folder / f"ref-{i}.m4a", a, bitrate=128_000) for i, a in enumerate(real + songs)]
        refs = plain.fingerprint([media.decode_audio(f) for f in ref_files])
        postings = soundsuite.Postings(refs)
        cp_refs = [chromaprint(f) for f in ref_files[: len(real)]]
        queried = list(range(len(soundsuite.RECORDINGS)))  # music and the whale
        unrelated_songs = [ag.music(10_000 + k, 8.0) for k in range(args.unrelated)]
        table: dict[str, dict] = {}
        for condition in conditions:
            kind, value = condition.split(":")
            factor = edit(kind, float(value))[1]
            semitones = {"speed": 12 * np.log2(float(value)), "pitch": float(value), "tempo": 0.0}[kind]
            rng = np.random.default_rng(zlib.crc32(condition.encode()))
            row: dict[str, dict] = {name: {"found": 0, "false": 0, "scale_err": [], "pitch_err": [], "seconds": 0.0,
                                           "true_frames": [], "false_frames": [], "by_recording": {}} for name in systems}
            cp_found = 0
            for k in range(args.queries):
                own = queried[k % len(queried)]
                audio = excerpt(real[own], condition, rng)
                if args.voice:
                    audio = ag.overlay(audio, soundsuite.narration(k)[: audio.size], 0.0)
                path = ag.encode(folder / "q.m4a", audio)
                decoded = media.decode_audio(path)
                for name, fp in systems.items():
                    started = time.perf_counter()
                    q = fp.fingerprint([decoded])[0]
                    r = row[name]
                    r["seconds"] += time.perf_counter() - started  # fingerprinting (the store's lookups: sound_scale.py)
                    r["hashes"] = r.get("hashes", 0) + len(q)
                    matches = postings.match(q, limit=10)
                    hit = [m for m in matches if m.sound == own]
                    r["found"] += bool(hit)
                    r["by_recording"].setdefault(labels[own], [0, 0])[0] += bool(hit)
                    r["by_recording"][labels[own]][1] += 1
                    r["false"] += any(m.sound != own for m in matches)
                    r["false_frames"] += [m.matched_frames for m in matches if m.sound != own]
                    if hit:
                        r["scale_err"].append(abs(hit[0].scale - factor))
                        r["pitch_err"].append(abs(12 * np.log2(hit[0].pitch) - semitones))
                        r["true_frames"].append(hit[0].matched_frames)
                if k < args.chromaprint:
                    cq = chromaprint(path)
                    bers = [best_ber(cq, c, 16) for c in cp_refs]
                    cp_found += bers[own] < args.chromaprint_ber and int(np.argmin(bers)) == own
            unrelated_false = {name: 0 for name in systems}
            for song in unrelated_songs:
                audio = excerpt(song, condition, rng)
                decoded = media.decode_audio(ag.encode(folder / "u.m4a", audio))
                for name, fp in systems.items():
                    matches = postings.match(fp.fingerprint([decoded])[0], limit=10)
                    unrelated_false[name] += bool(matches)
                    row[name]["false_frames"] += [m.matched_frames for m in matches]
            n = args.queries
            out = {}
            for name, r in row.items():
                out[name] = {
                    "found": r["found"], "queries": n, "recall": round(r["found"] / n, 3), "recall_95ci": wilson(r["found"], n),
                    "queries_with_a_false_match": r["false"],
                    "unrelated_queries_matched": unrelated_false[name], "unrelated_queries": len(unrelated_songs),
                    "median_scale_error": round(float(np.median(r["scale_err"])), 4) if r["scale_err"] else None,
                    "median_pitch_error_semitones": round(float(np.median(r["pitch_err"])), 3) if r["pitch_err"] else None,
                    # matched frames of each found query's own recording, and of every false match (both kinds)
                    "found_by_recording": r["by_recording"], "true_frames": sorted(r["true_frames"]),
                    "false_frames": sorted(r["false_frames"]),
                    "fingerprint_ms_per_query": round(1000 * r["seconds"] / n, 1),
                    "query_hashes_mean": round(r["hashes"] / n),
                }
            m = min(n, args.chromaprint)
            out["chromaprint"] = {"found": cp_found, "queries": m, "recall": round(cp_found / max(m, 1), 3),
                                  "recall_95ci": wilson(cp_found, m)}
            table[condition] = out
            s, pl, cp = out["speed search"], out["plain"], out["chromaprint"]
            tf = s["true_frames"] or [0]
            print(f"{condition:<11} speed search {s['recall']:.3f} {s['recall_95ci']} false "
                  f"{s['queries_with_a_false_match']}+{s['unrelated_queries_matched']} "
                  f"frames true p10/p50 {np.percentile(tf, 10):.0f}/{np.median(tf):.0f} false {s['false_frames']} "
                  f"pitch err {s['median_pitch_error_semitones']} "
                  f"({s['fingerprint_ms_per_query']} ms/q) | plain {pl['recall']:.3f} {pl['recall_95ci']} | "
                  f"Chromaprint {cp['recall']:.3f} {cp['recall_95ci']}", flush=True)
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "indexed": {"recordings": labels, "synthetic_songs": len(songs), "postings": int(postings.hash.size)},
        "voice_over": args.voice,
        "hypotheses": len(speedy.params.warps),
        "conditions": table,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
