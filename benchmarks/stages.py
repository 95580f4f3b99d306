"""Per-stage timings of the ingest pipeline on one 30-second 720p clip (H.264 + AAC speech over a tone bed).

Runs the real service in-process (no gRPC) with the configured CLIP and the bundled Whisper, ingests the
clip `--repeat` times after one warm-up, and prints the median milliseconds per stage. Random-init CLIP
weights (the default here) cost the same compute as trained ones.

    python -m benchmarks.stages [--clip-model ViT-B-32] [--clip-pretrained none] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def make_reference_clip(path: Path, seconds: int = 30, size=(1280, 720), fps: int = 30) -> Path:
    from tests import mediagen

    photos = ["astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry"]
    per = seconds * fps // len(photos)
    frames = [f for name in photos for f in mediagen.pan_frames(mediagen.photo(name), per, size)]
    rate = 16000
    t = np.arange(seconds * rate) / rate
    music = 0.1 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 330 * t)
    audio = music.astype(np.float32)
    offset = 0
    for name in ["fox", "coffee", "rocket", "cat", "astronaut", "weather"] * 2:
        voice, _ = mediagen.speech(name)
        start = offset + rate // 2
        if start + len(voice) > len(audio):
            break
        audio[start : start + len(voice)] += voice
        offset = start + len(voice)
    return mediagen.write_clip(path, frames, fps, np.clip(audio, -1, 1), rate, gop=fps)


def main() -> None:
    import torch

    from server.domain import VideoMetadata
    from server.service import ColdOpenService, Models
    from server.settings import Settings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip-model", default="ViT-B-32")
    p.add_argument("--clip-pretrained", default="none")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        clip = make_reference_clip(tmp / "reference.mp4")
        print(f"reference clip: {clip.stat().st_size / 1e6:.1f} MB, made in {time.perf_counter() - started:.1f} s")
        settings = Settings(
            data_dir=tmp / "data", clip_model=args.clip_model, clip_pretrained=args.clip_pretrained, device=args.device
        )
        service = ColdOpenService.open(settings, Models.load(settings))
        runs = []
        for i in range(args.repeat + 1):
            started = time.perf_counter()
            result = service.ingest(VideoMetadata(video_id=f"ref-{i}"), clip, clip.stat().st_size)
            wall = (time.perf_counter() - started) * 1000
            if i:  # the first run is a warm-up
                runs.append({**result.extraction.timings_ms, "total": wall})
        service.close()
    stages = [s for s in runs[0] if s != "receive"]
    table = {s: statistics.median(r[s] for r in runs) for s in stages}
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}".strip(),
        "torch": torch.__version__,
        "device": service.models.clip.device,
        "clip": service.models.clip.name,
        "whisper": service.models.whisper.name,
        "clip_seconds": 30,
        "frames_sampled": result.extraction.frames_sampled,
        "transcript_words": len(result.extraction.transcript.text.split()),
        "median_ms": {k: round(v, 1) for k, v in table.items()},
        "repeat": args.repeat,
    }
    print(f"\n{report['clip']} + Whisper {report['whisper']} on {report['device']} ({report['machine']})")
    print(f"{'stage':<16}{'median ms':>12}")
    for k, v in table.items():
        print(f"{k:<16}{v:>12.1f}")
    print(f"\n30 s of video in {table['total'] / 1000:.2f} s = {30_000 / table['total']:.1f} video-seconds per second")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
