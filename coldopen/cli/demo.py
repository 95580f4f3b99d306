"""`coldopen demo`: an in-process server on a free port, the sample clips ingested, searched, engaged and routed."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from coldopen.api.client import Client, engagement_event
from coldopen.cli import render
from coldopen.cli.console import configure_logging, fail, say
from coldopen.cli.parser import settings_from_args
from coldopen.config.settings import Settings

# The demo's eight clips are a tiny corpus: unless told otherwise, the top 60% by score (not 20%) perform well.
DEMO_POOL_PERCENTILE = 40.0


def cmd_demo(args: argparse.Namespace) -> int:
    from coldopen.api.server import create_server
    from coldopen.app.service import ColdOpenService, Models

    manifest_path = args.samples / "samples.json"
    if not manifest_path.is_file():
        fail(args, f"no samples.json in {args.samples}; pass --samples with the repo's samples/ folder")
        return 2
    manifest = json.loads(manifest_path.read_text())
    with tempfile.TemporaryDirectory(prefix="coldopen-demo-") as tmp:
        pool_percentile = args.pool_percentile if args.pool_percentile is not None else DEMO_POOL_PERCENTILE
        settings = settings_from_args(args, listen="127.0.0.1:0", data_dir=args.data_dir or Path(tmp),
                                      pool_percentile=pool_percentile)
        configure_logging(settings.replace(log_level=settings.log_level if args.log_level else "WARNING"))
        server = create_server(settings).start()
        try:
            service = ColdOpenService.open(settings, Models.load(settings))
            server.attach(service)
            out: dict[str, Any] = {"server": server.address, "clip_model": service.models.clip.name, "ingested": [],
                                   "searches": []}
            say(args, f"ColdOpen demo: server on {server.address}, CLIP {out['clip_model']}, data dir {settings.data_dir}\n")
            with Client(server.address) as client:
                client.wait_until_serving(30)
                _ingest_and_search(args, client, manifest, out)
                _engage_and_route(args, client, manifest, settings, out)
        finally:
            server.stop(grace=1)
    if args.json:
        print(json.dumps(out, indent=2))
    if "none" == settings.clip_pretrained.lower():
        say(args, "\nNote: CLIP ran with random weights (--clip-pretrained none), so neighbours and text matches are "
                  "not semantic. With hub access, run: make demo CLIP_PRETRAINED=laion2b_s34b_b79k")
    return 0


def _ingest_and_search(args: argparse.Namespace, client: Client, manifest: dict[str, Any], out: dict[str, Any]) -> None:
    for clip in manifest["clips"]:
        started = time.perf_counter()
        r = client.ingest(args.samples / clip["file"], video_id=clip["video_id"], creator_id=clip["creator_id"],
                          caption=clip["caption"], hashtags=clip["hashtags"])
        r["wall_ms"] = round((time.perf_counter() - started) * 1000, 1)
        out["ingested"].append(r)
        say(args, render.describe_ingest(r))
    queries: list[dict[str, str]] = [{"video_id": c["video_id"]} for c in manifest["clips"][:2]]
    queries += [{"text": t} for t in manifest.get("text_queries", [])]
    for q in queries:
        r = client.search(video_id=q.get("video_id"), text=q.get("text"), k=3)
        out["searches"].append({"query": q, **r})
        label = f"video {q['video_id']!r}" if "video_id" in q else f"text {q['text']!r}"
        say(args, f"\nsearch by {label}:\n" + render.describe_search(r))
    for video_id in manifest.get("sound_queries", []):
        r = client.search_by_sound(video_id=video_id, limit=3)
        out.setdefault("sound_searches", []).append({"video_id": video_id, **r})
        say(args, f"\nvideos using the sound of {video_id!r}:\n" + render.describe_sound_matches(r))
    out["sounds"] = client.list_sounds(window_s=3600, limit=3)["sounds"]
    say(args, "\ntop sounds of the last hour:\n" + "\n".join("  " + render.describe_sound(s) for s in out["sounds"]))


def _engage_and_route(args: argparse.Namespace, client: Client, manifest: dict[str, Any], settings: Settings,
                      out: dict[str, Any]) -> None:
    if manifest.get("engagement"):
        lines = (args.samples / manifest["engagement"]).read_text().splitlines()
        r = client.record_engagement([engagement_event(json.loads(x)) for x in lines if x.strip()])
        out["engagement"] = r
        why = ("this demo's --pool-percentile" if args.pool_percentile is not None else
               f"the demo runs with --pool-percentile {settings.pool_percentile:g} for its {len(manifest['clips'])} "
               f"clips; a server's default is 80")
        say(args, f"\nrecorded engagement: {r['accepted']} events; performs-well pool: {r['pool_size']} videos "
                  f"(the top {100 - settings.pool_percentile:g}% by score: {why})")
    for video_id in manifest.get("route_queries", []):
        r = client.route(video_id=video_id, k=3)
        out.setdefault("routes", []).append({"video_id": video_id, **r})
        say(args, f"\nroute {video_id!r} to the audiences of:\n" + render.describe_route(r))
