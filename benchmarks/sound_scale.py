"""Sound identity at scale: lookup + vote latency, postings per clip, bytes and start time, as the corpus grows.

    python -m benchmarks.sound_scale [--clips 10000 100000] [--queries 40] [--ingest 1000 100000]
                                     [--dir /var/tmp/coldopen-sound-scale] [--json out.json]

Corpus: synthetic sounds of 30 s, each with as many index-side postings as real 30-s music gets
(measured here on the real recordings in tests/data/music), whose hash *fields* (anchor bin, two bin
deltas, two frame deltas) are drawn from the fields' empirical distributions on that real audio, then
mixed into 32 bits exactly as the fingerprinter does. Not uniform: the collision rate between hashes of
different clips is measured on the real audio and on the synthetic corpus and printed side by side.
The real recordings (30-s segments) are indexed too, as their own sounds, and are the queries
(re-encoded as AAC 64 kbit/s): every query must find its own sound.

Postings go into the production store's `sound_chunks` table (SQLite, the schema storage/schema.py
creates; one chunk per sound, as ingests write them) and into one hash-addressed segment of the node's
postings folder (sounds/postings.py), bulk-written. Latency is what `SoundIdentity.match` runs
(the node's lookup, which first asks the catalog for new chunks, + offset vote), the call an ingest makes
outside the write lock, timed per query after one warm-up pass. Each timed query follows OTHER_TRAFFIC
lookups of other (synthetic) audio, as on a busy service, so it finds no pages of its own left in a cache
by its previous repetition. The store's files are read once before timing, so the OS's cache holds what
RAM allows, as on a running service. Bytes count both the catalog file and the segment.
--ingest N ... also measures ColdOpenService.ingest (random-init ViT-B-32 on this machine's device)
of real-audio clips against corpora of N synthetic sounds: the corpus-dependent stages
(match_sound, store) and the whole call.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

MUSIC = Path(__file__).resolve().parent.parent / "tests" / "data" / "music"
SEGMENT_S = 30
OTHER_TRAFFIC = 3  # lookups of other audio before each timed query (3 x ~1,400 keys evict SQLite's 2 MB cache)
FIELD_SHIFTS = (28, 20, 12, 6, 0)  # anchor bin, bin delta b, bin delta c, frame delta b, frame delta c
FIELD_MASKS = (0x1FF, 0xFF, 0xFF, 0x3F, 0x3F)


def real_segments() -> list[tuple[str, np.ndarray]]:
    from coldopen.engine import media

    out = []
    for path in sorted(MUSIC.glob("*.ogg")):
        if path.name.startswith("librispeech"):
            continue  # speech is the voice-over material, not sounds
        audio = media.decode_audio(path)
        step = SEGMENT_S * 16000
        for i in range(0, max(1, audio.size - step // 2), step):
            piece = audio[i : i + step]
            if piece.size >= 10 * 16000:
                out.append((f"{path.stem}@{i // 16000}s", piece))
    return out


def index_fields(fp, audio: np.ndarray) -> np.ndarray:
    """The index-side triplet fields of one clip (<= one fingerprint window), before mixing."""
    import torch

    (w,) = fp.split(audio)
    p = fp.params
    with torch.inference_mode():
        spec = torch.stft(torch.from_numpy(w.samples)[None], p.n_fft, p.hop, window=fp._window, center=True,
                          return_complex=True).abs()[:, fp._f_lo : fp._f_hi]
        t, f, rank = fp._pick_peaks(20 * torch.log10(spec + 1e-6), [w.samples.size // p.hop + 1])[0]
        fields, _ = fp._triplet_fields(t[rank == 0], f[rank == 0], w.core_start, w.core_end, p.index_targets)
    return fields


def split_fields(fields: np.ndarray) -> list[np.ndarray]:
    return [(fields >> s) & m for s, m in zip(FIELD_SHIFTS, FIELD_MASKS)]


def cross_collisions(per_clip: list[np.ndarray]) -> tuple[float, float]:
    """(colliding hash pairs, hash pairs) over all pairs of different clips."""
    values, counts = np.unique(np.concatenate([np.unique(h) for h in per_clip]), return_counts=True)
    shared = float((counts * (counts - 1)).sum())  # ordered pairs of clips sharing a value
    sizes = np.array([np.unique(h).size for h in per_clip], dtype=np.float64)
    return shared, float(sizes.sum() ** 2 - (sizes**2).sum())


def cross_collision_rate(per_clip: list[np.ndarray]) -> float:
    """P(a hash of one clip equals a hash of another clip)."""
    shared, pairs = cross_collisions(per_clip)
    return shared / pairs if pairs else 0.0


class FieldSampler:
    """Synthetic index-side hashes with real audio's skew: each field (anchor bin, bin deltas, frame
    deltas) drawn from its empirical distribution on the real recordings, then mixed as the fingerprinter
    mixes them. Independent fields: the skew of each is kept, correlations between them are not (the
    collision rates printed at the start say how that compares with the real audio)."""

    def __init__(self, fields: np.ndarray, seed: int = 0):
        self.columns = split_fields(fields)
        self.rng = np.random.default_rng(seed)

    def hashes(self, n: int) -> np.ndarray:
        from coldopen.models.fingerprint import mix32

        out = np.zeros(n, np.int64)
        for col, shift in zip(self.columns, FIELD_SHIFTS):
            out |= self.rng.choice(col, size=n) << shift
        return mix32(out)


def build(db: Path, n_clips: int, per_clip: int, sampler: FieldSampler, real: list, batch: int = 10_000,
          segment: bool = True) -> dict:
    """A store holding `real` sounds (ids 1..) and n_clips synthetic ones: their chunks in the catalog's
    `sound_chunks` (one per sound, as an ingest writes them), and a node's postings folder with all of
    them in one segment under a manifest that covers those chunks (what a node that followed them, or a
    new node's first start, writes), so the measured start maps it and reads no chunk. `segment=False`:
    the catalog only (benchmarks/sound_bootstrap.py measures the node that writes the segment itself)."""
    from coldopen.sounds.postings import write_manifest
    from coldopen.sounds.segment import Segment
    from coldopen.storage.catalog import open_catalog

    if db.parent.exists():
        shutil.rmtree(db.parent)
    db.parent.mkdir(parents=True)
    catalog = open_catalog("", db.parent)
    key = catalog.catalog_id()
    started = time.perf_counter()
    frames = int(SEGMENT_S / 0.016)
    total = n_clips * per_clip
    first_synthetic = len(real) + 1
    # The segment's columns, filled in place (synthetic sounds, then the real ones): 12 B a posting, so
    # that 10^6 sounds and the segment's sort fit this VM's memory.
    size = total + sum(fp.landmarks for _, fp in real)
    hashes, sounds, times = np.empty(size, np.uint32), np.empty(size, np.uint32), np.empty(size, np.int32)
    for lo in range(0, total, 50_000_000):
        hi = min(total, lo + 50_000_000)
        hashes[lo:hi] = sampler.hashes(hi - lo)
        times[lo:hi] = sampler.rng.integers(0, frames, size=hi - lo, dtype=np.int32)
        sounds[lo:hi] = np.arange(lo, hi, dtype=np.uint32) // np.uint32(per_clip) + np.uint32(first_synthetic)
    at = total
    for i, (_, fp) in enumerate(real):
        hashes[at : at + fp.landmarks], sounds[at : at + fp.landmarks] = fp.index_hashes, i + 1
        times[at : at + fp.landmarks] = fp.index_times
        at += fp.landmarks
    generated = time.perf_counter() - started
    # The catalog's rows, through its bulk loader (the real sounds first, so they get ids 1..).
    ids = catalog.bulk.sounds([(fp.index_hashes, fp.index_times) for _, fp in real], frames)
    for lo in range(0, n_clips, batch):
        hi = min(n_clips, lo + batch)
        ids += catalog.bulk.sounds(
            [(hashes[i * per_clip : (i + 1) * per_clip], times[i * per_clip : (i + 1) * per_clip]) for i in range(lo, hi)],
            frames)
    assert ids == list(range(1, first_synthetic + n_clips)), "the bulk load's sound ids must match the segment's"
    chunks = catalog.sounds.position()
    catalog.close()
    loaded = time.perf_counter()
    if not segment:
        del hashes, sounds, times
        return {"postings": size, "generate_s": round(generated, 1), "load_s": round(loaded - started - generated, 1),
                "db_bytes": db.stat().st_size}
    folder = db.parent / "sound-postings"
    folder.mkdir()
    segment = Segment.write(folder / "segment-bulk", hashes, sounds, times)
    del hashes, sounds, times
    write_manifest(folder, [segment], int(chunks), set(), key=key)
    return {
        "postings": len(segment),
        "generate_s": round(generated, 1),
        "load_s": round(loaded - started - generated, 1),
        "segment_s": round(time.perf_counter() - loaded, 1),
        "db_bytes": db.stat().st_size,
        "segment_bytes": _folder_bytes(folder),
    }


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(db: Path, queries: list, repeats: int, first_synthetic: int, other: list[np.ndarray],
            prefix: str = "") -> dict:
    """Lookup + vote latency of the queries against the store, each after OTHER_TRAFFIC lookups of `other`
    key sets (not timed); a match to a synthetic sound is false."""
    from coldopen.sounds import vote
    from coldopen.sounds.identity import POSTINGS_CAP
    from coldopen.sounds.postings import SoundPostings
    from coldopen.storage.catalog import open_catalog

    started = time.perf_counter()  # a start: the catalog, then this node's postings (mapped, not rebuilt)
    store = open_catalog("", db.parent)
    node = SoundPostings(db.parent / "sound-postings", store.sounds.chunks_after, key=store.catalog_id())
    open_s = time.perf_counter() - started
    assert node.segments == 1, "the store's postings were not found: build it again (without --reuse)"
    from coldopen.models.fingerprint import Fingerprinter

    frame_s = Fingerprinter.load("cpu").params.frame_seconds
    lookup_ms, vote_ms, postings, common, found, false = [], [], [], [], 0, 0
    traffic = itertools.cycle(other)
    for rep in range(repeats + 1):
        for sound, _, q in queries:
            for _ in range(OTHER_TRAFFIC):
                node.lookup(next(traffic), POSTINGS_CAP)
            t0 = time.perf_counter()
            h, s, t, c = node.lookup(q.hashes, POSTINGS_CAP)
            t1 = time.perf_counter()
            matches = vote.match(q.hashes, q.times, h, s, t, limit=10)
            if rep == 0 and matches:
                assert abs(matches[0].offset * frame_s - q.expected_offset_s) < 0.1 or matches[0].sound != sound
            t2 = time.perf_counter()
            if rep == 0:
                found += bool(matches) and matches[0].sound == sound
                false += any(m.sound >= first_synthetic for m in matches)
                continue  # warm-up pass: its times are not kept
            lookup_ms.append((t1 - t0) * 1000)
            vote_ms.append((t2 - t1) * 1000)
            postings.append(h.size)
            common.append(c.size)
    node.close()
    store.close()
    total = np.array(lookup_ms) + np.array(vote_ms)
    out = {
        "start_s": round(open_s, 3),
        "found": f"{found}/{len(queries)}",
        "queries_with_a_false_match": f"{false}/{len(queries)}",
        "query_hashes_median": int(np.median([len(q) for _, _, q in queries])),
        "postings_returned_median": int(np.median(postings)),
        "common_hashes_median": int(np.median(common)),
        "lookup_ms_p50": round(float(np.percentile(lookup_ms, 50)), 2),
        "vote_ms_p50": round(float(np.percentile(vote_ms, 50)), 2),
        "lookup_vote_ms_p50": round(float(np.percentile(total, 50)), 2),
        "lookup_vote_ms_p99": round(float(np.percentile(total, 99)), 2),
    }
    return {prefix + k: v for k, v in out.items()}


class _Query:
    """A query fingerprint and the offset its own sound should be found at."""

    def __init__(self, fp, expected_offset_s: float):
        self.fp, self.expected_offset_s = fp, expected_offset_s
        self.hashes, self.times = fp.hashes, fp.times

    def __len__(self) -> int:
        return len(self.fp)


def ingest_times(db: Path, clips: list[Path], workdir: Path) -> dict:
    """ColdOpenService.ingest of `clips` with the corpus at `db` as its store."""
    from coldopen.app.service import ColdOpenService, Models
    from coldopen.config.settings import Settings
    from coldopen.domain.videos import VideoMetadata

    data = db.parent
    settings = Settings(data_dir=data, listen="127.0.0.1:0", clip_model="ViT-B-32", clip_pretrained="none",
                        decode_workers=1)
    service = ColdOpenService.open(settings, Models.load(settings))
    try:
        rows = []
        for i, path in enumerate(clips * 2):
            t0 = time.perf_counter()
            r = service.ingest(VideoMetadata(f"scale-{i}"), path, path.stat().st_size)
            rows.append({"total_ms": (time.perf_counter() - t0) * 1000, **r.extraction.timings_ms,
                         "new_sound": r.new_sound})
    finally:
        service.close()
    rows = rows[len(clips):]  # the second pass: warm, and every sound already known
    return {k: round(float(np.median([r[k] for r in rows])), 1) for k in ("total_ms", "match_sound", "store")}


def main() -> None:
    from coldopen.engine import media
    from coldopen.models.fingerprint import Fingerprinter
    from coldopen.storage.catalog import open_catalog
    from testkit import audiogen as ag
    from testkit import mediagen

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--ingest", type=int, nargs="*", default=[])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "coldopen-sound-scale")
    p.add_argument("--keep", action="store_true", help="keep the built stores")
    p.add_argument("--reuse", action="store_true", help="measure stores kept by an earlier --keep run instead of building")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    fp = Fingerprinter.load("cpu")
    segments = real_segments()
    fields = [index_fields(fp, a) for _, a in segments]
    full = [f for (_, a), f in zip(segments, fields) if a.size >= SEGMENT_S * 16000 * 0.99]
    per_clip = int(np.mean([f.size for f in full]))
    sampler = FieldSampler(np.concatenate(fields))
    from coldopen.models.fingerprint import mix32

    # Collisions between different recordings only (segments of one song legitimately repeat).
    recordings = {}
    for (name, _), f in zip(segments, fields):
        recordings.setdefault(name.split("@")[0], []).append(mix32(f))
    real_hashes = [np.concatenate(v) for v in recordings.values()]
    shared, pairs = cross_collisions(real_hashes)
    real_rate = shared / pairs
    bound = max(shared, 3.0) / pairs  # 95% upper bound of the real rate (3 / pairs when none was seen)
    synth = [sampler.hashes(h.size) for h in real_hashes for _ in range(20)]
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} cores={os.cpu_count()}",
        "real_segments": len(segments),
        "postings_per_30s_clip": per_clip,
        "cross_clip_collision_real": real_rate,
        "cross_clip_collision_real_bound95": bound,
        "cross_clip_collision_synthetic": cross_collision_rate(synth),
        "cross_clip_collision_uniform32": 1 / 2**32,
        "corpora": [],
    }
    print(json.dumps({k: v for k, v in report.items() if k != "corpora"}), flush=True)
    work = Path(tempfile.mkdtemp())
    queries, short = [], []  # the whole segment (a 30-s query) and its 5-20 s part (a short one)
    real = fp.fingerprint([a for _, a in segments])
    for k, ((name, audio), _ref) in enumerate(zip(segments, real)):
        path = ag.encode(work / "q.m4a", ag.resample(audio, 16000, ag.RATE), bitrate=64_000)
        decoded = media.decode_audio(path)
        if audio.size >= SEGMENT_S * 16000 * 0.99:  # only whole 30-s segments are 30-s queries
            queries.append((k + 1, name, _Query(fp.fingerprint([decoded])[0], 0.0)))
        short.append((k + 1, name, _Query(fp.fingerprint([decoded[5 * 16000 : 20 * 16000]])[0], 5.0)))
    # The other traffic: key sets of a 30-s query's size with the empirical skew, from a sampler of its own.
    keys_per_query = int(np.median([len(np.unique(q.hashes)) for _, _, q in queries]))
    other_sampler = FieldSampler(np.concatenate(fields), seed=1)
    other = [other_sampler.hashes(keys_per_query) for _ in range(97)]
    clips = []
    if args.ingest:
        for i, (_, audio) in enumerate(segments[:3]):
            frames = mediagen.pan_frames(mediagen.photo(("astronaut", "coffee", "rocket")[i % 3]), 30 * 4, (160, 96))
            clips.append(mediagen.write_clip(work / f"clip-{i}.mp4", frames, 4, audio, 16000))
    for n in sorted(set(args.clips) | set(args.ingest)):
        db = args.dir / f"{n}" / "coldopen.sqlite3"
        if args.reuse and db.exists():
            catalog = open_catalog("", db.parent)
            built = {"postings": catalog.sounds.postings_total(), "db_bytes": db.stat().st_size, "reused": True}
            catalog.close()
        else:
            built = build(db, n, per_clip, sampler, list(zip([s[0] for s in segments], real)))
        built.setdefault("segment_bytes", _folder_bytes(db.parent / "sound-postings"))
        both = built["db_bytes"] + built["segment_bytes"]  # the store of record and this node's segments
        row = {"clips": n, **built, "bytes_per_posting": round(both / built["postings"], 1),
               "catalog_bytes_per_posting": round(built["db_bytes"] / built["postings"], 1)}
        row["bytes_per_30s_clip"] = int(row["bytes_per_posting"] * per_clip)
        if n in args.clips:
            os.sync()
            for path in [db, *(db.parent / "sound-postings").rglob("*.npy")]:  # into the OS's page cache once
                with open(path, "rb") as f:                                   # (a running service's steady state)
                    while f.read(1 << 24):
                        pass
            row.update(measure(db, queries, args.repeats, len(real) + 1, other))
            row.update(measure(db, short, args.repeats, len(real) + 1, other, prefix="short15_"))
        if n in args.ingest:
            row["ingest_ms_median"] = ingest_times(db, clips, work)
        print(json.dumps(row), flush=True)
        report["corpora"].append(row)
        if not args.keep:
            shutil.rmtree(db.parent)
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
