"""What skipping near-repeat frames keeps, and what it does to the video vector and near-duplicate search.

    python -m benchmarks.frame_skip [--clips 6] [--pairs 12] [--footage FILE ...] [--json out.json]

Clips: the ingest workload's (benchmarks/workload.py: 30-s 720p clips panning over six photographs) and any
--footage files (real video). Each is sampled at 1 fps by the decode worker's own path (uniform) and its
frames skipped under three settings: every frame (threshold 0), pans kept (threshold 0.01, max pan 0: the
default until 2026-12-06) and pans undone (0.01, max pan 0.2: the default since). Per setting and clip:
frames kept, and the cosine of the video vector (weighted by the time each kept frame stands for) to the
vector from every frame. Near-duplicate search: --pairs clips of 20 s (640x360, 24 fps), clip i panning 10 s
over each of two of twenty scikit-image photographs (i and i + 7), are indexed; each re-encoded at 480x270 and
CRF 32, sampled and skipped under the same setting, is looked up among them; reported: top-1 accuracy and
the margin (cosine to its own original minus the best other; other clips share a photograph with it, as
reposts that reuse a shot do). The workload's clips share their six photographs, so they are not searched
among each other. CLIP: ViT-B-32, random init
unless --clip-pretrained (offline there are no trained weights: the cosines then say how much the vector
moves, not what a trained model would retrieve).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

SETTINGS = {"every frame": (0.0, 0.0), "pans kept": (0.01, 0.0), "pans undone": (0.01, 0.2)}
PHOTOS = ["astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel", "hubble_deep_field",
          "immunohistochemistry", "moon", "rocket", "stereo_motorcycle", "retina", "horse", "page", "text", "logo",
          "colorwheel"]


def pair_clip(path: Path, i: int) -> Path:
    from testkit import mediagen

    fps, size = 24, (640, 360)
    names = [PHOTOS[i % len(PHOTOS)], PHOTOS[(i + 7) % len(PHOTOS)]]
    images = [mediagen.photo(n) for n in names]
    images = [im if im.dtype == np.uint8 else (im > 0).astype(np.uint8) * 255 for im in images]  # horse: a mask
    frames = [f for im in images for f in mediagen.pan_frames(im, 10 * fps, size)]
    return mediagen.write_clip(path, frames, fps)


def sampled(path: Path, short_side: int):
    from coldopen.engine import media

    info = media.probe(path)
    frames, _ = media.sample(path, info, "uniform", 1.0, 1 << 10, short_side)
    return frames


def vectors(clip, frames, settings: dict[str, tuple[float, float]]) -> dict[str, tuple[int, np.ndarray]]:
    """Per setting: (frames kept, video vector), each kept frame embedded once."""
    from coldopen.engine.repeats import skip_repeats
    from coldopen.models.clip import video_embedding

    every = clip.embed_frames(frames.frames)
    out = {}
    for name, (threshold, max_pan) in settings.items():
        kept = skip_repeats(frames, threshold, max_pan)
        idx = [frames.times_s.index(t) for t in kept.times_s]
        out[name] = (len(idx), video_embedding(every[idx], kept.stands_for or None))
    return out


def main() -> None:
    from benchmarks.workload import reference_clips
    from coldopen.models.clip import ClipEmbedder, ClipSpec
    from testkit import mediagen

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=6, help="workload clips (frames kept and cosine only)")
    p.add_argument("--pairs", type=int, default=12, help="clips for the near-duplicate search")
    p.add_argument("--footage", type=Path, nargs="*", default=[])
    p.add_argument("--clip-model", default="ViT-B-32")
    p.add_argument("--clip-pretrained", default="none")
    p.add_argument("--workload-dir", type=Path, default=Path(tempfile.gettempdir()) / "coldopen-workload")
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    clip = ClipEmbedder.load(ClipSpec(args.clip_model, args.clip_pretrained, "cpu"))
    rows, originals, copies = [], [], []

    def measure(path: Path) -> dict:
        got = vectors(clip, sampled(path, clip.input_size), SETTINGS)
        every = got["every frame"][1]
        row = {"clip": path.name, **{f"{k}: kept": n for k, (n, _) in got.items()},
               **{f"{k}: cosine to every frame": round(float(v @ every), 5) for k, (_, v) in got.items()}}
        rows.append(row)
        print(row, flush=True)
        return got

    with tempfile.TemporaryDirectory() as tmp:
        for path in [*reference_clips(args.workload_dir, args.clips), *args.footage]:
            measure(path)
        for i in range(args.pairs):
            original = pair_clip(Path(tmp) / f"pair-{i:02d}.mp4", i)
            originals.append(measure(original))
            copy = mediagen.reencode(original, Path(tmp) / f"copy-{i:02d}.mp4", (480, 270), crf=32)
            copies.append(vectors(clip, sampled(copy, clip.input_size), SETTINGS))
    search = {}
    for name in SETTINGS:
        index = np.stack([o[name][1] for o in originals])
        sims = np.stack([c[name][1] for c in copies]) @ index.T
        own = np.diag(sims)
        others = np.where(np.eye(len(sims), dtype=bool), -np.inf, sims).max(axis=1)
        search[name] = {"top1": float((sims.argmax(axis=1) == np.arange(len(sims))).mean()),
                        "margin_min": round(float((own - others).min()), 5),
                        "margin_median": round(float(np.median(own - others)), 5),
                        "frames_kept": sum(o[name][0] for o in originals),
                        "copies_frames_kept": sum(c[name][0] for c in copies)}
        print(name, search[name])
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{platform.machine()} {platform.node()}", "clip": clip.name, "clips": rows,
           "near_duplicate_search": search}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
