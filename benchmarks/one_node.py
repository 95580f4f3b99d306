"""One node at a million videos: start-up (full rebuild vs snapshot + replay), engagement batches
(incremental pool vs the full recompute it replaced), bytes per video.

    python -m benchmarks.one_node [--videos 1000000] [--index-type flat] [--changes 1000] [--tmp DIR]

1. Bulk-loads N videos into SQLite, each with a 512-d visual, a 384-d transcript and a 384-d caption
   embedding (clustered, as benchmarks/search.py), and engagement counters for every video.
2. Opens `ColdOpenService` with no snapshot: every vector is read from the catalog (the old way).
   Then writes a snapshot (what the background thread does) and deletes --changes videos through the
   catalog, as writes after the snapshot would be.
3. Opens it again: the snapshot is loaded and those changes replayed, and the pool from its own
   snapshot (storage/pool_snapshot.py, written after the engagement batches of step 4 and
   followed by --after-batches more, whose videos the start re-reads). For both opens: seconds until
   the service serves (searches, ingests), and until the performs-well pool of N engaged videos, which
   loads in a background thread, is ready (Route, RecordEngagement and GetVideo's scores wait for it).
   Models are loaded once, outside the timings.
4. Engagement: batches of 1,000 events on random videos through `ColdOpenService.record_engagement`
   (validation, the SQLite transaction that claims the events, logs their sums and publishes the
   incremental pool's moves), p50/p99 ms: 20 right after the snapshot (its writeback competes for the
   disk), then 200 after os.sync(), long enough for background folds of the engagement log to run
   meanwhile, and 200 more interleaved with them in blocks of 50 under CPython's default garbage
   collection (`serve` freezes start's objects: ops/gcpolicy.py); full collections inside batches
   are counted. Then: the folds' cost per video; and, after the restart of step 3 (they write behind the
   service's back), on the same catalog, the counter upsert each batch ran before the log (the old way,
   commit included) and the full recompute each batch ran before the incremental pool (`all_counters` +
   scores + percentile + publishing every member).
5. Bytes per video: catalog file, snapshot files, process memory growth; extrapolated linearly to 10M.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.search import make_vectors


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bulk_load(data_dir: Path, n: int, model_name: str, dims: tuple[int, int]) -> None:
    """n videos with clustered vectors and a day of counters, through the catalog's bulk loader."""
    from coldopen.storage.catalog import open_catalog
    from testkit.corpus import load_videos, random_counters

    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_catalog("", data_dir)
    store.set_embedding_space(model_name, dims[0])
    try:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            visual = make_vectors(m, dims[0], seed=start + 1)
            spoken = make_vectors(m, dims[1], seed=start + 2)
            caption = make_vectors(m, dims[1], seed=start + 3)
            for _ in load_videos(store, visual, model_name, spoken=spoken, captions=caption, first=start):
                pass
            store.bulk.counters(random_counters([f"v{start + i}" for i in range(m)], seed=start + 4))
            print(f"  loaded {start + m:,} videos", flush=True)
    finally:
        store.close()


def events(n_videos: int, batch: int, seed: int):
    from coldopen.domain.engagement import Counters, EngagementEvent

    rng = np.random.default_rng(seed)
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [
        EngagementEvent(
            event_id=f"e{seed}-{i}",
            video_id=f"v{int(v)}",
            at=at,
            counters=Counters(
                impressions=int(rng.integers(1, 50)), likes=int(rng.integers(0, 3)), shares=int(rng.integers(0, 2))
            ),
        )
        for i, v in enumerate(rng.integers(0, n_videos, batch))
    ]


def old_inline_upserts(store, n_videos: int, batches: int, first: int = 0) -> dict:
    """p50/p99 ms of the counter upsert a batch ran before the engagement log (commit included), on
    videos v{first}..v{n_videos - 1}."""
    from coldopen.domain.engagement import COUNTER_NAMES
    from coldopen.storage.catalog import COUNTER_CAP

    names = ["video_id", *COUNTER_NAMES, "last_event_at"]
    sql = (
        f"INSERT INTO engagement ({', '.join(names)}) VALUES {{values}} ON CONFLICT (video_id) DO UPDATE SET "
        + ", ".join(f"{n} = min(engagement.{n} + excluded.{n}, {COUNTER_CAP})" for n in COUNTER_NAMES)
        + ", last_event_at = max(engagement.last_event_at, excluded.last_event_at) RETURNING "
        + ", ".join(names)
    )
    row = "(" + ",".join("?" * len(names)) + ")"
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lat = []
    for b in range(batches):
        ids = sorted({f"v{int(v)}" for v in np.random.default_rng(50_000 + b).integers(first, n_videos, 1000)})
        params = [x for v in ids for x in (v, 1, 0, 0, 0.0, 0, 0, 0, 0, at)]
        t0 = time.perf_counter()
        with store.db.write() as conn:
            conn.connection.driver_connection.execute(sql.format(values=",".join([row] * len(ids))), params).fetchall()
        lat.append((time.perf_counter() - t0) * 1000)
    return {"p50": round(float(np.percentile(lat, 50)), 1), "p99": round(float(np.percentile(lat, 99)), 1)}


def main() -> None:
    from coldopen.app.service import ColdOpenService, Models
    from coldopen.config.settings import Settings
    from coldopen.ops import gcpolicy
    from coldopen.ranking import scores as engagement

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=1_000_000)
    p.add_argument("--index-type", default="flat")
    p.add_argument("--changes", type=int, default=1000)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--steady-batches", type=int, default=200)
    p.add_argument("--after-batches", type=int, default=5, help="engagement batches after the pool snapshot")
    p.add_argument("--clip-model", default="ViT-B-32")
    p.add_argument("--tmp", default=None, help="where the catalog and snapshot go (~6.5 GB per 1M videos)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = p.parse_args()
    out: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} cores={os.cpu_count()}",
        "videos": args.videos,
        "index_type": args.index_type,
    }
    if args.tmp:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            listen="127.0.0.1:0",
            clip_model=args.clip_model,
            clip_pretrained="none",
            device="cpu",
            decode_workers=0,
            index_type=args.index_type,
            snapshot_interval_s=0,
        )
        t = time.perf_counter()
        models = Models.load(settings)
        out["models_load_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        bulk_load(settings.data_dir, args.videos, models.clip.name, (models.clip.dim, models.text.dim))
        out["bulk_load_s"] = round(time.perf_counter() - t, 1)
        rss0 = rss_mb()

        t = time.perf_counter()
        service = ColdOpenService.open(settings, models)
        out["start_rebuild_s"] = round(time.perf_counter() - t, 2)
        service.core.pool.wait_ready()
        out["start_rebuild_pool_ready_s"] = round(time.perf_counter() - t, 2)
        out["rss_growth_mb"] = round(rss_mb() - rss0)
        out["gc_tracked_objects"] = len(gc.get_objects())
        print(
            f"start, full rebuild: serving after {out['start_rebuild_s']} s, pool ready after "
            f"{out['start_rebuild_pool_ready_s']} s, +{out['rss_growth_mb']} MB",
            flush=True,
        )
        manifest = service.write_snapshot()
        out["snapshot_write_s"] = manifest["seconds"]
        pool = len(service.core.pool)

        # Engagement batches, incremental (the service) and the full recompute they replaced. Twice: right
        # after the snapshot, while the kernel still writes its ~5 GB back (a server writes one every
        # snapshot_interval_s, so some batches meet that), then after os.sync() (the steady state). The
        # steady state runs in blocks of 50 batches alternating CPython's default garbage collection with
        # what `serve` does once the pool is ready (ops/gcpolicy.py: start's objects frozen), same run.
        log, checkpoints = service.core.store.engagement.log, service.core.store.db._checkpointer
        collections: list[float] = []  # seconds of each full (generation 2) garbage collection

        started = [0.0]

        def on_gc(phase: str, info: dict) -> None:
            if info["generation"] == 2:
                if phase == "start":
                    started[0] = time.perf_counter()
                else:
                    collections.append(time.perf_counter() - started[0])

        gc.callbacks.append(on_gc)

        def batch(seed: int) -> tuple[float, bool, float]:
            """(ms, whether a fold or WAL checkpoint ran at the same time, ms of full collections inside it)"""
            evs = events(args.videos, 1000, seed=seed)
            c0, f0, g0 = checkpoints.checkpoints, log._folding is not None, len(collections)
            t0 = time.perf_counter()
            r = service.record_engagement(evs)
            ms = (time.perf_counter() - t0) * 1000
            assert r.accepted == 1000, r
            return ms, f0 or log._folding is not None or checkpoints.checkpoints != c0, sum(collections[g0:]) * 1000

        def pct(values: list[float]) -> dict:
            return (
                {
                    "n": len(values),
                    "p50": round(float(np.percentile(values, 50)), 1),
                    "p99": round(float(np.percentile(values, 99)), 1),
                }
                if values
                else {"n": 0}
            )

        def summary(runs: list[tuple[float, bool, float]], folds: int) -> dict:
            lat = [ms for ms, _, _ in runs]
            return {
                "batches": len(runs),
                "p50": round(float(np.percentile(lat, 50)), 1),
                "p99": round(float(np.percentile(lat, 99)), 1),
                "max": round(max(lat), 1),
                "first": round(lat[0], 1),
                "pool": pool,
                "folds_during": folds,
                "waiting_after": log.waiting(),
                "beside_a_fold_or_checkpoint": pct([ms for ms, o, _ in runs if o]),
                "alone": pct([ms for ms, o, _ in runs if not o]),
                "full_gc": {"batches_with_one": sum(1 for *_, g in runs if g), "max_ms": round(max(g for *_, g in runs), 1)},
                "with_a_full_gc": pct([ms for ms, _, g in runs if g]),
                "without_gc_or_overlap": pct([ms for ms, o, g in runs if not o and not g]),
            }

        folds0 = log.folds
        out["engagement_batch_ms_during_snapshot_writeback"] = summary(
            [batch(s) for s in range(args.batches)], log.folds - folds0
        )
        os.sync()
        # Steady state: long enough (~30 s) for background folds of the engagement log to run meanwhile.
        runs: dict[bool, list] = {False: [], True: []}
        folds = {False: 0, True: 0}
        frozen_objects = 0
        for block in range(2 * -(-args.steady_batches // 50)):
            frozen = block % 2 == 1
            if frozen:
                frozen_objects = gcpolicy.freeze_long_lived()
            folds0 = log.folds
            first = 10_000 + 100 * block
            runs[frozen] += [batch(first + i) for i in range(min(50, args.steady_batches - len(runs[frozen])))]
            folds[frozen] += log.folds - folds0
            if frozen:
                gc.unfreeze()
        gc.callbacks.remove(on_gc)
        out["engagement_batch_ms"] = summary(runs[True], folds[True])
        out["engagement_batch_ms_default_gc"] = summary(runs[False], folds[False])
        out["gc_frozen_objects"] = frozen_objects
        for key, label in (
            ("engagement_batch_ms_during_snapshot_writeback", "during the snapshot's writeback"),
            ("engagement_batch_ms_default_gc", "steady state, CPython's default GC"),
            ("engagement_batch_ms", f"steady state, {frozen_objects:,} start objects frozen (serve)"),
        ):
            print(
                f"engagement batch of 1,000 events, {label}: p50 {out[key]['p50']} ms, p99 {out[key]['p99']} ms, "
                f"max {out[key]['max']} ms over {out[key]['batches']} batches; folds meanwhile "
                f"{out[key]['folds_during']} (pool {pool:,}); beside a fold or checkpoint "
                f"{out[key]['beside_a_fold_or_checkpoint']}, alone {out[key]['alone']}; full GCs "
                f"{out[key]['full_gc']}, batches with one {out[key]['with_a_full_gc']}, with neither "
                f"{out[key]['without_gc_or_overlap']}",
                flush=True,
            )
        log = service.core.store.engagement.log
        if log.folds:
            n, sec = log.last_fold
            out["last_background_fold"] = {"videos": n, "s": round(sec, 2), "us_per_video": round(sec / n * 1e6, 1)}
        t0 = time.perf_counter()
        n = service.core.store.engagement.fold()  # waits for a background fold still running (then n may be 0)
        sec = time.perf_counter() - t0
        # n == 0: a background fold was running and took everything (the seconds are the wait for it)
        out["final_fold"] = {"videos": n, "s": round(sec, 2), "us_per_video": round(sec / n * 1e6, 1) if n else None}
        print(
            f"fold of the engagement log: last background fold {out.get('last_background_fold')}, "
            f"then the rest {out['final_fold']}",
            flush=True,
        )
        store = service.core.store
        service.write_snapshot()  # the state after the batches, then writes the next start must replay
        store.engagement.fold()
        t = time.perf_counter()
        service.write_pool_snapshot()
        out["pool_snapshot_write_s"] = round(time.perf_counter() - t, 2)
        out["pool_snapshot_mb"] = round((settings.data_dir / "snapshots" / "pool.npz").stat().st_size / 2**20, 1)
        for s in range(args.after_batches):  # engagement after the pool snapshot: those videos are re-read
            batch(50_000 + s)
        for i in range(args.changes):
            store.videos.delete(f"v{i}")
        service.close()

        t = time.perf_counter()
        service = ColdOpenService.open(settings, models)
        out["start_snapshot_s"] = round(time.perf_counter() - t, 2)
        service.core.pool.wait_ready()
        out["start_snapshot_pool_ready_s"] = round(time.perf_counter() - t, 2)
        out["start_snapshot_pool_loaded_from"] = service.core.pool.loaded_from
        out["start_snapshot_pool_load_s"] = round(service.core.pool.loaded_s, 2)
        print(
            f"start, snapshot + {args.changes} changes replayed: serving after {out['start_snapshot_s']} s, "
            f"pool ready after {out['start_snapshot_pool_ready_s']} s (pool loaded from "
            f"{out['start_snapshot_pool_loaded_from']} in {out['start_snapshot_pool_load_s']} s)",
            flush=True,
        )
        assert len(service.core.indexes["visual"]) == args.videos - args.changes
        # The old ways, measured last: they write counters and publish a pool behind the service's back.
        # The old way, same catalog: each batch's counters upserted into the table in its own transaction
        # (what a batch did before the log: ~1,000 random pages written and fsynced per batch).
        out["old_inline_counter_upsert_ms"] = old_inline_upserts(
            service.core.store, args.videos, args.batches, first=args.changes
        )  # those were deleted
        print(f"the old way, counters upserted inside each batch: {out['old_inline_counter_upsert_ms']}", flush=True)
        store = service.core.store
        t0 = time.perf_counter()
        counters = store.engagement.all_counters()
        prior = engagement.prior_rate(list(counters.values()), settings)
        now = datetime.now(timezone.utc)
        scores = {row: engagement.score(c, settings, prior, now) for row, c in counters.items()}
        members, threshold = engagement.pool(scores, counters, settings)
        t1 = time.perf_counter()
        store.pool.publish(prior, threshold, {r: scores[r] for r in members})
        out["full_recompute_ms"] = {
            "score_and_select": round((t1 - t0) * 1000),
            "publish": round((time.perf_counter() - t1) * 1000),
        }
        print(f"the old way, per batch: {out['full_recompute_ms']}", flush=True)
        service.close()
        db = settings.data_dir / "coldopen.sqlite3"
        snap = sum(f.stat().st_size for f in (settings.data_dir / "snapshots").iterdir())
        out["bytes_per_video"] = {
            "catalog": round(db.stat().st_size / args.videos),
            "snapshot": round(snap / args.videos),
            "memory": round(out["rss_growth_mb"] * 2**20 / args.videos),
        }
        out["at_10M_gb"] = {k: round(v * 10_000_000 / 1e9, 1) for k, v in out["bytes_per_video"].items()}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "one_node.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
