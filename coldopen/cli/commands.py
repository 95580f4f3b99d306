"""The client commands and `serve`: each reads its arguments, calls the server and prints what it got."""

from __future__ import annotations

import json
import logging
import os
import sys

import grpc

from coldopen.api.client import UploadError, check_upload, describe_error, engagement_event
from coldopen.cli import render
from coldopen.cli.console import configure_logging, connect, fail, parse_embedding, report, server_address
from coldopen.cli.parser import settings_from_args
from coldopen.domain import modalities


def cmd_serve(args) -> int:
    from coldopen.app import startup

    settings = settings_from_args(args)
    lock = startup.preflight(settings)  # before the heavy imports: a busy port or data dir fails within a second
    from coldopen.api.server import serve

    configure_logging(settings)
    logging.getLogger(__name__).info("settings %s", settings.redacted())

    def ready(server):
        if args.json:  # metrics_port is null when metrics are off
            event = {"event": "serving", "address": server.address, "videos": server.service.size, "pid": os.getpid(),
                     "metrics_port": server.metrics_port}
            print(json.dumps(event), flush=True)

    serve(settings, on_ready=ready, lock=lock)
    return 0


def cmd_ingest(args) -> int:
    from tqdm import tqdm

    if args.video_id and len(args.files) > 1:
        fail(args, "--video-id can only be used with a single file")
        return 2
    failures = 0
    with connect(args) as client:
        for path in args.files:
            video_id = args.video_id or path.stem
            try:
                size = check_upload(path)
            except UploadError as e:
                failures += 1
                report(args, {"file": str(path), "video_id": video_id, "error": str(e)})
                continue
            bar = tqdm(total=size, unit="B", unit_scale=True, desc=path.name, disable=args.json or not sys.stderr.isatty())
            try:
                result = client.ingest(
                    path, video_id=video_id, creator_id=args.creator_id, caption=args.caption,
                    hashtags=args.hashtag, language_hint=args.language, on_progress=bar.update,
                )
                report(args, {"file": str(path), **result}, render.describe_ingest)
            except grpc.RpcError as e:
                failures += 1
                report(args, {"file": str(path), "video_id": video_id,
                               "error": describe_error(e, server_address(args), client.last_request_id)})
            finally:
                bar.close()
    return 1 if failures else 0


def cmd_search(args) -> int:
    embedding = parse_embedding(args.embedding) if args.embedding else None
    with connect(args) as client:
        result = client.search(video_id=args.video_id, text=args.text, embedding=embedding, k=args.k,
                               performing_only=args.performing, target=args.target)
    report(args, result, render.describe_search)
    return 0


def cmd_get(args) -> int:
    with connect(args) as client:
        report(args, client.get(args.video_id, args.embeddings), render.describe_video)
    return 0


def cmd_delete(args) -> int:
    with connect(args) as client:
        report(args, client.delete(args.video_id), lambda r: f"deleted {r['video_id']}")
    return 0


def cmd_route(args) -> int:
    weights = {}
    for spec in args.weight:
        name, _, value = spec.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            fail(args, f"--weight {spec!r} is not MODALITY=NUMBER (e.g. sound=0.5)")
            return 2
        if name.strip() not in modalities.ALL:
            fail(args, f"--weight {spec!r}: unknown modality {name.strip()!r}; use visual, spoken, caption or sound")
            return 2
    metadata = None
    if args.file:
        metadata = {"video_id": args.as_video_id or (args.file.stem if args.store else ""), "creator_id": args.creator_id,
                    "caption": args.caption, "hashtags": args.hashtag}
    with connect(args) as client:
        result = client.route(
            video_id=args.video_id, path=args.file, metadata=metadata, store=args.store, k=args.k, weights=weights,
            exclude_same_creator=args.exclude_same_creator, language=args.language,
            max_per_creator=args.max_per_creator, max_per_sound=args.max_per_sound, fusion=args.fusion,
        )
    report(args, result, render.describe_route)
    return 0


def cmd_rollout(args) -> int:
    with connect(args) as client:
        result = client.rollout(args.video_id, args.audience)
    report(args, result, render.describe_rollout)
    return 0


def cmd_engagement(args) -> int:

    totals = {"accepted": 0, "duplicates": 0, "rejected": []}
    bad_lines = []
    with connect(args) as client:
        for name in args.files:
            stream = sys.stdin if name == "-" else open(name)
            with stream:
                batch: list[dict] = []
                for n, line in enumerate(stream, 1):
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                        if not isinstance(event, dict):
                            raise ValueError("not a JSON object")
                        batch.append(engagement_event(event))
                    except ValueError as e:
                        bad_lines.append(f"{name}:{n}: {e}")
                        continue
                    if len(batch) >= args.batch:
                        add_engagement(totals, client.record_engagement(batch))
                        batch = []
                if batch:
                    add_engagement(totals, client.record_engagement(batch))
    totals["bad_lines"] = bad_lines
    report(args, totals, lambda r: (
        f"accepted {r['accepted']}, duplicates {r['duplicates']}, rejected {len(r['rejected'])}, "
        f"unreadable lines {len(r['bad_lines'])}; pool {r.get('pool_size', 0)} videos"
        + "".join(f"\n  rejected {x['event_id']!r}: {x['reason']}" for x in r["rejected"][:20])
        + "".join(f"\n  {line}" for line in r["bad_lines"][:20])
    ))
    return 1 if totals["rejected"] or bad_lines else 0


def add_engagement(totals: dict, reply: dict) -> None:
    totals["accepted"] += int(reply["accepted"])
    totals["duplicates"] += int(reply["duplicates"])
    totals["rejected"] += reply["rejected"]
    totals["pool_size"] = int(reply["pool_size"])
    totals["pool_threshold"] = reply["pool_threshold"]


def cmd_sound_search(args) -> int:
    with connect(args) as client:
        result = client.search_by_sound(video_id=args.video_id, path=args.file, limit=args.limit)
    report(args, result, render.describe_sound_matches)
    return 0


def cmd_sounds(args) -> int:
    with connect(args) as client:
        result = client.list_sounds(args.window, args.limit)
    report(args, result, lambda r: "\n".join(render.describe_sound(s) for s in r["sounds"]) or "no sounds yet")
    return 0


def cmd_sound(args) -> int:
    with connect(args) as client:
        result = client.get_sound(args.sound_id, args.window)
    report(args, result, lambda r: render.describe_sound(r) + "\n  recent videos: " + (", ".join(r["recent_video_ids"]) or "-"))
    return 0
