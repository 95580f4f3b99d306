"""Ingest throughput: the naive sequential baseline, each stage alone, and the service, in one run.

    python -m benchmarks.ingest [--clips 6] [--concurrency 8] [--clip-model ViT-B-32] [--clip-pretrained none]
                                [--modes keyframes,uniform] [--out benchmarks/out]

Workload: --clips reference clips (30 s, 720p30 H.264, GOP 1 s, AAC speech over music, real photographs;
made once and cached under --workload-dir). Then, in this order and on the same models:

  (a) baseline: one clip at a time, the way a first version would do it with the same libraries:
      PyAV decodes every frame, frames at 1 fps go through open_clip's PIL transform and the image
      tower, faster-whisper transcribe(), then the fingerprint (after one warm-up clip; each clip's
      stage times, and its decode's page faults and kernel time, are recorded);
  (b) ceilings: each stage alone at full concurrency: decode (the process pool) per sampling mode,
      CLIP frames/s at the configured batch, Whisper clips/s batched, fingerprints/s batched;
  (c) the service: ColdOpenService.ingest from --concurrency threads (in-process), per sampling mode,
      and Ingest over gRPC on loopback from --concurrency clients;
  (d) with --fast-variant: CLIP int8 and greedy Whisper, their ceilings on one thread each, the service
      with them alternated --fast-repeats times (--fast-compare: pans kept / undone, or both models on
      every core / the cores split), and the stages' bound (stage_bound).

Prints the tables, writes results.json and throughput.png under --out. Random-init CLIP weights (the
default) cost the same compute as trained ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.ingest_report import CLIP_SECONDS, chart, print_row, print_table, save, stage_bound


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _gpu_sampler():
    """Mean GPU utilisation over a phase, sampled every 100 ms through NVML (torch.cuda.utilization)."""
    import torch

    samples: list[float] = []
    stop = threading.Event()
    if not torch.cuda.is_available():
        return stop, samples, None

    def run():
        while not stop.wait(0.1):
            try:
                samples.append(float(torch.cuda.utilization()))
            except Exception:  # NVML missing: report n/a
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return stop, samples, t


class Phase:
    def __init__(self, name: str, clips: int):
        self.name, self.clips = name, clips

    def __enter__(self):
        self.stop, self.gpu, self.thread = _gpu_sampler()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.stop.set()
        return False

    def row(self, **extra) -> dict:
        return {
            "phase": self.name,
            "clips": self.clips,
            "wall_s": round(self.wall, 3),
            "clips_per_s": round(self.clips / self.wall, 3),
            "video_s_per_s": round(self.clips * CLIP_SECONDS / self.wall, 2),
            "gpu_util_pct": round(statistics.mean(self.gpu), 1) if self.gpu else None,
            **extra,
        }


# --- (a) the naive baseline -------------------------------------------------------------------------
def naive_baseline(paths: list[Path], models, fps: float) -> list[dict]:
    import av
    import open_clip
    import torch

    clip = models.clip
    transform = open_clip.image_transform(clip._model.visual.image_size, is_train=False)
    rows = []
    for path in paths:
        t = [time.perf_counter()]
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        with av.open(str(path)) as c:
            frames = [(f.time, f.to_image()) for f in c.decode(video=0)]  # every frame, as PIL images
        t.append(time.perf_counter())
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        decode_use = {"decode_user_s": round(r1.ru_utime - r0.ru_utime, 2), "decode_sys_s": round(r1.ru_stime - r0.ru_stime, 2),
                      "decode_minor_faults": r1.ru_minflt - r0.ru_minflt}
        picked, next_t = [], 0.0
        for ft, img in frames:
            if ft + 1e-6 >= next_t:
                picked.append(img)
                next_t += 1.0 / fps
        with torch.inference_mode():
            batch = torch.stack([transform(img) for img in picked]).to(clip.device, clip._dtype)
            clip._model.encode_image(batch).float().cpu()
        t.append(time.perf_counter())
        audio = __import__("faster_whisper").decode_audio(str(path), sampling_rate=16000)
        models.whisper.transcribe(audio)
        t.append(time.perf_counter())
        models.fingerprinter.fingerprint([audio])
        t.append(time.perf_counter())
        stages = dict(zip(("decode", "clip", "whisper", "fingerprint"), (round(b - a, 2) for a, b in zip(t, t[1:]))))
        r2 = resource.getrusage(resource.RUSAGE_SELF)  # wall >> cpu / cores: the clip waited
        stages["cpu_all_threads"] = round(r2.ru_utime + r2.ru_stime - r0.ru_utime - r0.ru_stime, 2)
        stages.update(decode_use)
        rows.append({"latency_s": t[-1] - t[0], "frames_decoded": len(frames), "stages_s": stages})
    return rows


# --- (b) stage ceilings ----------------------------------------------------------------------------
def decode_ceiling(paths, pool, mode: str, short_side: int, fps: float, max_frames: int):
    from coldopen.engine.decode import DecodeJob

    jobs = [DecodeJob(str(p), mode, fps, max_frames, short_side) for p in paths]
    with ThreadPoolExecutor(max(1, pool.workers)) as ex:
        return list(ex.map(pool.decode, jobs))


def run_concurrent(fn, items, concurrency: int) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def one(item):
        t0 = time.perf_counter()
        fn(item)
        with lock:
            latencies.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(one, items))
    return latencies


def main() -> None:
    import torch

    from benchmarks.workload import reference_clips
    from coldopen.app.service import ColdOpenService, Models
    from coldopen.config.settings import Settings
    from coldopen.domain.videos import VideoMetadata
    from coldopen.engine.decode import default_workers
    from coldopen.models.bundle import thread_budget, usable_cores

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--baseline-clips", type=int, default=0, help="clips for the slow baseline (default: --clips)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--clip-model", default="ViT-B-32")
    p.add_argument("--clip-pretrained", default="none")
    p.add_argument("--device", default="auto")
    p.add_argument("--whisper-model", default="bundled", help="the service's --whisper-model (a CTranslate2 dir)")
    p.add_argument("--text-model", default="bundled", help="the service's --text-model (a sentence-embedding dir)")
    p.add_argument("--decode-workers", type=int, default=-1)
    p.add_argument("--decoder", default="cpu", help="the service's --decoder: cpu, nvdec or auto")
    p.add_argument("--clip-batch-size", type=int, default=0, help="0 = the server default: 256 on CUDA, 32 on CPU")
    p.add_argument("--modes", default="keyframes,uniform")
    p.add_argument("--workload-dir", type=Path, default=Path(tempfile.gettempdir()) / "coldopen-workload")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    p.add_argument("--no-grpc", action="store_true")
    p.add_argument("--fast-variant", action="store_true",
                   help="also the service with --clip-precision int8 and Whisper beam 1 (and its CLIP ceiling), with "
                        "and without pans undone by the frame skipping")
    p.add_argument("--fast-repeats", type=int, default=1, help="times the two fast-variant phases are alternated")
    p.add_argument("--fast-compare", choices=("pans", "threads"), default="pans",
                   help="what the alternated fast-variant phases differ in: pans kept / undone by the frame skipping, "
                        "or CLIP and Whisper each on every core / the cores split between them (the default)")
    args = p.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    cuda = torch.cuda.is_available() and args.device != "cpu"

    t0 = time.perf_counter()
    paths = reference_clips(args.workload_dir, args.clips)
    print(f"workload: {len(paths)} x 30-s 720p30 clips in {args.workload_dir} ({time.perf_counter() - t0:.0f} s)")
    workers = default_workers() if args.decode_workers < 0 else args.decode_workers
    concurrency = args.concurrency
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            listen="127.0.0.1:0",
            clip_model=args.clip_model,
            clip_pretrained=args.clip_pretrained,
            whisper_model=args.whisper_model,
            text_model=args.text_model,
            device=args.device,
            decode_workers=workers,
            decoder=args.decoder,
            clip_batch_size=args.clip_batch_size,
            max_concurrent_ingests=max(concurrency, 1),
            grpc_workers=max(concurrency, 1) + 8,
        )
        models = Models.load(settings)
        short = models.clip.input_size
        results: dict = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} cores={os.cpu_count()}"
            + (f" {torch.cuda.get_device_name(0)}" if cuda else ""),
            "torch": torch.__version__,
            "device": models.clip.device,
            "clip": models.clip.name,
            "whisper": models.whisper.name,
            "clips": len(paths),
            "concurrency": concurrency,
            "decode_workers": workers,
            "decoder": args.decoder,
            "clip_batch_size": models.clip.batch_size,
            "whisper_batch_size": settings.whisper_batch_size,
            "phases": [],
        }
        phases = results["phases"]

        # warm-up: load every model's kernels once
        service = ColdOpenService.open(settings, models)
        service.pipeline.warm_up()
        service.ingest(VideoMetadata(video_id="warm-up"), paths[0], paths[0].stat().st_size)
        service.delete("warm-up")

        # (a) baseline, after a warm-up of its own: its first clip otherwise pays one-off costs the service's
        # warm-up does not (25 s instead of ~6.5 s measured on 2026-12-06: PIL transform, transcribe()'s first call)
        naive_baseline(paths[:1], models, settings.sample_fps)
        nb = paths[: args.baseline_clips or len(paths)]
        with Phase("baseline (sequential)", len(nb)) as ph:
            rows = naive_baseline(nb, models, settings.sample_fps)
        lat = [r["latency_s"] for r in rows]
        phases.append(ph.row(p50_s=round(_pct(lat, 50), 3), p99_s=round(_pct(lat, 99), 3),
                             latencies_s=[round(x, 2) for x in lat], stages_s=[r["stages_s"] for r in rows]))
        print_row(phases[-1], results, args.out)

        # (b) ceilings
        pool = service.pipeline.decoder
        decoded = {}
        for mode in modes:
            with Phase(f"ceiling: decode {mode} ({workers} procs)", len(paths)) as ph:
                decoded[mode] = decode_ceiling(paths, pool, mode, short, settings.sample_fps, settings.max_frames)
            phases.append(ph.row(frames=sum(len(d.frames.frames) for d in decoded[mode])))
            print_row(phases[-1], results, args.out)
        frames = [f for d in decoded[modes[0]] for f in d.frames.frames]
        audios = [d.audio for d in decoded[modes[0]]]
        with Phase("ceiling: CLIP image tower", len(paths)) as ph:
            models.clip.embed_frames(frames)
        phases.append(ph.row(frames=len(frames), frames_per_s=round(len(frames) / ph.wall, 1)))
        print_row(phases[-1], results, args.out)
        with Phase("ceiling: Whisper batched", len(paths)) as ph:
            for i in range(0, len(audios), settings.whisper_batch_size):
                models.whisper.transcribe_batch([(a, "") for a in audios[i : i + settings.whisper_batch_size]])
        phases.append(ph.row())
        print_row(phases[-1], results, args.out)
        with Phase("ceiling: fingerprint batched", len(paths)) as ph:
            models.fingerprinter.fingerprint(audios)
        phases.append(ph.row())
        print_row(phases[-1], results, args.out)

        # (c) the service, in-process, per sampling mode; then the fast CPU variant
        for mode in modes:
            service.close()
            service, row = service_phase(settings.replace(sampling=mode), models, f"service in-process, {mode}",
                                         paths, concurrency)
            phases.append(row)
            print_row(phases[-1], results, args.out)
        # (c) over gRPC
        if not args.no_grpc:
            phases.append(grpc_phase(service, settings.replace(sampling=modes[0]), paths, concurrency, modes[0]))
            print_row(phases[-1], results, args.out)
        service.close()
        if args.fast_variant:
            fast = settings.replace(sampling=modes[0], clip_precision="int8", whisper_beam_size=1)
            fast_models = Models.load(fast)
            # int8 CLIP's and greedy Whisper's ceilings on one thread each: a stage's work per clip in core-seconds
            # (a thread per core never does more per core than one thread), which bounds what the stages together
            # allow (stage_bound); the ceilings above had every core
            cores = usable_cores()
            split = thread_budget("int8", 0, 0, cores)  # the fast variant's (clip, whisper) threads
            single = fast.replace(clip_threads=1, cpu_threads=1)
            single_models = fast_models if split == (1, 1) else Models.load(single)
            torch.set_num_threads(1)
            with Phase("ceiling: CLIP image tower int8, 1 thread", len(paths)) as ph:
                single_models.clip.embed_frames(frames)
            phases.append(ph.row(frames=len(frames), frames_per_s=round(len(frames) / ph.wall, 1)))
            print_row(phases[-1], results, args.out)
            with Phase("ceiling: Whisper batched, greedy, 1 thread", len(paths)) as ph:
                for i in range(0, len(audios), fast.whisper_batch_size):
                    single_models.whisper.transcribe_batch([(a, "") for a in audios[i : i + fast.whisper_batch_size]])
            phases.append(ph.row())
            print_row(phases[-1], results, args.out)
            # the old way, then the defaults, alternated --fast-repeats times: one 6-clip phase is ~8 s of wall
            # time, as noisy as the difference. pans: a pan keeps every frame / pans up to frame_skip_max_pan
            # undone; threads: both models on every core / the cores split (models.bundle.thread_budget)
            if args.fast_compare == "pans":
                variants = [("pans kept", fast.replace(frame_skip_max_pan=0.0), fast_models), ("pans undone", fast, fast_models)]
            else:
                every = fast.replace(clip_threads=cores, cpu_threads=cores)
                variants = [("every core each", every, Models.load(every)), ("cores split", fast, fast_models)]
            for run in range(args.fast_repeats):
                for label, variant, variant_models in variants:
                    # torch's thread count is one per process (the text tower's): each phase sets its own
                    torch.set_num_threads(variant.clip_threads or split[0] or 1)
                    name = f"service, {modes[0]}, CLIP int8 + greedy Whisper, {label}"
                    name += f" #{run + 1}" if args.fast_repeats > 1 else ""
                    service, row = service_phase(variant, variant_models, name, paths, concurrency)
                    service.close()
                    phases.append(row)
                    print_row(phases[-1], results, args.out)

    if args.fast_variant:
        results["fast_bound"] = stage_bound(phases, modes[0], usable_cores())
        print(f"\nfast variant's stage bound: {results['fast_bound']}")
    save(results, args.out)
    print_table(results)
    chart(results, args.out / "throughput.png")
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'throughput.png'}")


def service_phase(settings, models, label: str, paths, concurrency: int):
    """A fresh service on an empty data dir ingesting every clip concurrently: (the open service, its row)."""
    import shutil

    from coldopen.app.service import ColdOpenService
    from coldopen.domain.videos import VideoMetadata

    shutil.rmtree(settings.data_dir, ignore_errors=True)
    service = ColdOpenService.open(settings, models)
    service.pipeline.warm_up()
    before = {b.name: b for b in service.pipeline.stats()}
    timings: list[dict] = []
    kept: list[int] = []

    def ingest(item):
        i, path = item
        r = service.ingest(VideoMetadata(video_id=f"{settings.sampling}-{i}"), path, path.stat().st_size)
        timings.append(r.extraction.timings_ms)
        kept.append(r.extraction.frames_sampled)

    with Phase(label, len(paths)) as ph:
        lat = run_concurrent(ingest, list(enumerate(paths)), concurrency)
    after = {b.name: b for b in service.pipeline.stats()}
    batches = {n: round((after[n].items - before[n].items) / max(1, after[n].batches - before[n].batches), 1)
               for n in after}
    stage_ms = {k: round(statistics.median(t.get(k, 0.0) for t in timings), 1)
                for k in ("decode", "embed_frames", "transcribe", "fingerprint", "embed_text", "store")}
    return service, ph.row(p50_s=round(_pct(lat, 50), 3), p99_s=round(_pct(lat, 99), 3), mean_batch=batches,
                           median_stage_ms=stage_ms, frames_embedded=sum(kept))


def grpc_phase(service, settings, paths, concurrency: int, mode: str) -> dict:
    import grpc

    from coldopen.api.server import create_server
    from coldopen.config.settings import MAX_CHUNK_BYTES
    from coldopen.v1 import coldopen_pb2 as pb
    from coldopen.v1 import coldopen_pb2_grpc as pb_grpc

    server = create_server(settings).start()
    server.attach(service)
    channel = grpc.insecure_channel(server.address)
    stub = pb_grpc.ContentIndexStub(channel)
    blobs = [p.read_bytes() for p in paths]

    def send(item):
        i, data = item

        def stream():
            yield pb.IngestRequest(metadata=pb.VideoMetadata(video_id=f"grpc-{i}"))
            for j in range(0, len(data), MAX_CHUNK_BYTES):
                yield pb.IngestRequest(chunk=data[j : j + MAX_CHUNK_BYTES])

        stub.Ingest(stream(), timeout=600)

    try:
        with Phase(f"service over gRPC, {mode}", len(paths)) as ph:
            lat = run_concurrent(send, list(enumerate(blobs)), concurrency)
    finally:
        channel.close()
        server._grpc.stop(0).wait()  # the service is closed by the caller
    return ph.row(p50_s=round(_pct(lat, 50), 3), p99_s=round(_pct(lat, 99), 3))


if __name__ == "__main__":
    main()
