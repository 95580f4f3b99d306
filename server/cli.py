"""The `coldopen` command: serve, ingest, search, get, delete, demo. Every command takes --json."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import grpc

from server.client import UploadError, check_upload, describe_error
from server.errors import DataDirLocked, ModelLoadError, StartupError
from server.settings import ENV_PREFIX, MIB, Settings, default_env, kind, parse

DEFAULT_SERVER = "127.0.0.1:50051"
REPO_SAMPLES = Path(__file__).resolve().parents[1] / "samples"


# --- argument parsing ---------------------------------------------------------
def _at_least(least: int, what: str):
    """An argparse type: an integer >= least (so -k 0 is refused, not silently taken as the default)."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{what} must be at least {least} (got {value})")
        return value

    return parse


def _positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds (got {raw})")
    return value


COUNT = _at_least(1, "a count")
CAP = _at_least(0, "a cap (0 = none)")

def _settings_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per Settings field (--field-name), with the field's help, type and choices."""
    g = p.add_argument_group("settings (flags override COLDOPEN_* environment variables, which override defaults)")
    for f in dataclasses.fields(Settings):
        if f.name in skip or f.name == "log_json":  # log_json is the common --json flag
            continue

        def convert(raw: str, f=f):
            try:
                return parse(f, raw)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{raw!r} is not a valid {kind(f)}") from None

        default = f.default if not isinstance(f.default, Path) else str(f.default)
        help_text = f"{f.metadata['help']} (default {default!r}; {ENV_PREFIX}{f.name.upper()})"
        g.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, type=convert, choices=f.metadata.get("choices"),
            help=help_text.replace("%", "%%"),  # argparse formats help with %
        )
    if "max_upload_bytes" not in skip:
        g.add_argument("--max-upload-mib", type=float, help="largest accepted upload in MiB (sets max_upload_bytes)")


def _settings(args: argparse.Namespace, **forced) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Settings)}
    if getattr(args, "max_upload_mib", None):
        overrides["max_upload_bytes"] = int(args.max_upload_mib * MIB)
    overrides["log_json"] = True if getattr(args, "json", False) else None
    overrides.update(forced)
    return Settings.from_env(default_env(), **overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coldopen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="machine-readable JSON output")
        return p

    p = command("serve", "run the gRPC server")
    _settings_flags(p)

    def client_command(name: str, help: str) -> argparse.ArgumentParser:
        p = command(name, help)
        p.add_argument("--server", default=None, help=f"server address (default $COLDOPEN_SERVER or {DEFAULT_SERVER})")
        p.add_argument("--timeout", type=_positive_seconds, default=600.0, help="seconds per call")
        p.add_argument("--token", default=None, help="bearer token (default $COLDOPEN_TOKEN); never logged")
        p.add_argument("--ca-cert", type=Path, default=None, help="PEM CA bundle: connect with TLS (default $COLDOPEN_CA_CERT)")
        return p

    p = client_command("ingest", "upload video files to the server")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--video-id", help="id for the video (only with one file; default: the file name without extension)")
    p.add_argument("--creator-id", default="")
    p.add_argument("--caption", default="")
    p.add_argument("--hashtag", action="append", default=[], help="repeatable")
    p.add_argument("--language", default="", help="language hint, e.g. en (default: detect)")

    p = client_command("search", "nearest neighbours by video id, text or embedding")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--video-id")
    q.add_argument("--text")
    q.add_argument("--embedding", help="comma-separated floats, or @file.json with a list of floats")
    p.add_argument("-k", type=COUNT, default=10, help="neighbours to return (default 10)")
    p.add_argument("--performing", action="store_true", help="only videos in the performs-well pool")
    p.add_argument("--target", choices=["visual", "spoken", "caption"], default="visual",
                   help="compare frames (CLIP), transcripts or captions (MiniLM); default visual")

    p = client_command("route", "performing videos most like a new one, with why each was chosen")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--video-id", help="an indexed video")
    q.add_argument("--file", type=Path, help="a new clip, processed without being stored (unless --store)")
    p.add_argument("--store", action="store_true", help="also ingest --file (as --as-video-id or the file name)")
    p.add_argument("--as-video-id", help="video id for --file")
    p.add_argument("--creator-id", default="")
    p.add_argument("--caption", default="")
    p.add_argument("--hashtag", action="append", default=[])
    p.add_argument("-k", type=COUNT, default=10, help="neighbours to return (default 10)")
    p.add_argument("--weight", action="append", default=[], metavar="MODALITY=W",
                   help="visual, spoken, caption or sound weight, e.g. --weight sound=0.5 (repeatable)")
    p.add_argument("--exclude-same-creator", action="store_true")
    p.add_argument("--language", default="")
    p.add_argument("--max-per-creator", type=CAP, default=0, help="most neighbours per creator (0 = no cap)")
    p.add_argument("--max-per-sound", type=CAP, default=0, help="most neighbours per sound (0 = no cap)")
    p.add_argument("--fusion", choices=["zscore", "raw"], default="", help="default: the server's --route-fusion")

    p = client_command("rollout", "whether to widen a video's audience to the next tier, hold, or stop")
    p.add_argument("video_id")
    p.add_argument("--audience", type=CAP, default=0,
                   help="impressions granted so far (default: the first tier its impressions have not passed)")

    p = client_command("engagement", "load engagement events from JSON Lines files ('-' for stdin)")
    p.add_argument("files", nargs="+", help="one JSON object per line: event_id, video_id, impressions, plays, "
                   "completions, watch_time_s, likes, comments, shares, follows, at")
    p.add_argument("--batch", type=COUNT, default=1000, help="events per call")

    p = client_command("get", "show what was extracted for a video")
    p.add_argument("video_id")
    p.add_argument("--embeddings", action="store_true", help="include the video and per-frame embeddings")

    p = client_command("delete", "remove a video from the index")
    p.add_argument("video_id")

    p = client_command("sound-search", "videos that reuse a sound: of an indexed video, or of a local audio/video file")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--video-id")
    q.add_argument("--file", type=Path, help="uploaded for matching only; never stored")
    p.add_argument("--limit", type=COUNT, default=10, help="matches to return (default 10)")

    p = client_command("sounds", "sounds by how many videos used them recently (trends)")
    p.add_argument("--window", type=_positive_seconds, default=86400, help="recent window in seconds (default one day)")
    p.add_argument("--limit", type=COUNT, default=20, help="sounds to return (default 20)")

    p = client_command("sound", "how many videos use one sound, in total and recently")
    p.add_argument("sound_id")
    p.add_argument("--window", type=_positive_seconds, default=86400, help="recent window in seconds (default one day)")

    p = command("demo", "start a server on this machine, ingest the sample clips and run searches")
    p.add_argument("--samples", type=Path, default=REPO_SAMPLES, help="folder with samples.json and clips")
    _settings_flags(p, skip=("listen",))
    return parser


# --- commands -----------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "serve": cmd_serve, "ingest": cmd_ingest, "search": cmd_search,
        "get": cmd_get, "delete": cmd_delete, "demo": cmd_demo,
        "sound-search": cmd_sound_search, "engagement": cmd_engagement, "route": cmd_route, "rollout": cmd_rollout, "sounds": cmd_sounds, "sound": cmd_sound,
    }[args.command]
    try:
        return handler(args)
    except StartupError as e:  # one line, exit 2: what was wrong and what to do
        _fail(args, f"cannot start: {e}")
        return 2
    except (ModelLoadError, DataDirLocked) as e:
        _fail(args, f"cannot start: {e}")
        return 2
    except UploadError as e:
        _fail(args, str(e))
        return 2
    except ValueError as e:  # invalid settings
        _fail(args, str(e))
        return 2
    except grpc.RpcError as e:
        _fail(args, describe_error(e, _server(args), getattr(args, "request_id", "")))
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_serve(args) -> int:
    from server import startup

    settings = _settings(args)
    lock = startup.preflight(settings)  # before the heavy imports: a busy port or data dir fails within a second
    from server.app import serve

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
        _fail(args, "--video-id can only be used with a single file")
        return 2
    failures = 0
    with _client(args) as client:
        for path in args.files:
            video_id = args.video_id or path.stem
            try:
                size = check_upload(path)
            except UploadError as e:
                failures += 1
                _report(args, {"file": str(path), "video_id": video_id, "error": str(e)})
                continue
            bar = tqdm(total=size, unit="B", unit_scale=True, desc=path.name, disable=args.json or not sys.stderr.isatty())
            try:
                result = client.ingest(
                    path, video_id=video_id, creator_id=args.creator_id, caption=args.caption,
                    hashtags=args.hashtag, language_hint=args.language, on_progress=bar.update,
                )
                _report(args, {"file": str(path), **result}, _describe_ingest)
            except grpc.RpcError as e:
                failures += 1
                _report(args, {"file": str(path), "video_id": video_id,
                               "error": describe_error(e, _server(args), client.last_request_id)})
            finally:
                bar.close()
    return 1 if failures else 0


def cmd_search(args) -> int:
    embedding = _parse_embedding(args.embedding) if args.embedding else None
    with _client(args) as client:
        result = client.search(video_id=args.video_id, text=args.text, embedding=embedding, k=args.k,
                               performing_only=args.performing, target=args.target)
    _report(args, result, _describe_search)
    return 0


def cmd_get(args) -> int:
    with _client(args) as client:
        _report(args, client.get(args.video_id, args.embeddings), _describe_video)
    return 0


def cmd_delete(args) -> int:
    with _client(args) as client:
        _report(args, client.delete(args.video_id), lambda r: f"deleted {r['video_id']}")
    return 0


def cmd_route(args) -> int:
    weights = {}
    for spec in args.weight:
        name, _, value = spec.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            _fail(args, f"--weight {spec!r} is not MODALITY=NUMBER (e.g. sound=0.5)")
            return 2
        if name.strip() not in ("visual", "spoken", "caption", "sound"):
            _fail(args, f"--weight {spec!r}: unknown modality {name.strip()!r}; use visual, spoken, caption or sound")
            return 2
    metadata = None
    if args.file:
        metadata = {"video_id": args.as_video_id or (args.file.stem if args.store else ""), "creator_id": args.creator_id,
                    "caption": args.caption, "hashtags": args.hashtag}
    with _client(args) as client:
        result = client.route(
            video_id=args.video_id, path=args.file, metadata=metadata, store=args.store, k=args.k, weights=weights,
            exclude_same_creator=args.exclude_same_creator, language=args.language,
            max_per_creator=args.max_per_creator, max_per_sound=args.max_per_sound, fusion=args.fusion,
        )
    _report(args, result, _describe_route)
    return 0


def cmd_rollout(args) -> int:
    with _client(args) as client:
        result = client.rollout(args.video_id, args.audience)
    _report(args, result, _describe_rollout)
    return 0


def _describe_prior(p: dict) -> str:
    if not p:
        return "content prior: none"
    how = (f"from {p['neighbours']:.1f} effective neighbours, calibrated on {p['calibration_videos']} held-out videos"
           if p["calibrated"] else "not calibrated yet (too few engaged videos): the corpus's own spread")
    return f"content prior: {p['mean']:.4f} ({p['coverage']:.0%} interval {p['low']:.4f} .. {p['high']:.4f}; {how})"


def _describe_rollout(r: dict) -> str:
    post = r.get("posterior") or {}
    return "\n".join([
        f"{r['decision']}: {r['reason']}",
        f"  impressions {int(r['impressions']):,} of an audience of {int(r['audience']):,}"
        + (f"; next audience {int(r['next_audience']):,}" if int(r["next_audience"]) else ""),
        f"  P(beats the pool threshold {r['pool_threshold']:.4f}) = {r['p_beats_threshold']:.3f}",
        f"  posterior mean {post.get('mean', 0):.4f} ({post.get('level', 0):.0%} credible {post.get('low', 0):.4f} .. "
        f"{post.get('high', 0):.4f}; the prior weighs {post.get('prior_impressions', 0):,.0f} impressions)",
        "  " + _describe_prior(r.get("content_prior") or {}),
    ])


def _describe_route(r: dict) -> str:
    w = r["weights"]
    lines = [
        f"pool of {r['pool_size']} performing videos; weights visual {w['visual']:.2f} spoken {w['spoken']:.2f} "
        f"caption {w['caption']:.2f} sound {w['sound']:.2f}",
        _describe_prior(r.get("content_prior") or {}),
        f"routed neighbours' mean score: {r['prior']:.4f} ± {r['prior_uncertainty']:.4f}",
    ]
    for i, n in enumerate(r["neighbours"], 1):
        c = n["contributions"]
        why = ", ".join(f"{m} {c[m]:+.3f}" for m in ("visual", "spoken", "caption", "sound") if abs(c[m]) >= 0.0005)
        if n.get("shared_sound_id"):
            why += f" (shares {n['shared_sound_id']})"
        lines.append(
            f"  {i}. {n['video_id']:<24} score {n['score']:.3f} (performance {n['performance']:.4f}, "
            f"by {n['creator_id'] or '-'}{', ' + n['sound_id'] if n['sound_id'] else ''}): {why}"
        )
    if not r["neighbours"]:
        lines.append("  no performing neighbours yet (record engagement so videos enter the pool)")
    return "\n".join(lines)


def cmd_engagement(args) -> int:
    from server.client import engagement_event

    totals = {"accepted": 0, "duplicates": 0, "rejected": []}
    bad_lines = []
    with _client(args) as client:
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
                        _add_engagement(totals, client.record_engagement(batch))
                        batch = []
                if batch:
                    _add_engagement(totals, client.record_engagement(batch))
    totals["bad_lines"] = bad_lines
    _report(args, totals, lambda r: (
        f"accepted {r['accepted']}, duplicates {r['duplicates']}, rejected {len(r['rejected'])}, "
        f"unreadable lines {len(r['bad_lines'])}; pool {r.get('pool_size', 0)} videos"
        + "".join(f"\n  rejected {x['event_id']!r}: {x['reason']}" for x in r["rejected"][:20])
        + "".join(f"\n  {line}" for line in r["bad_lines"][:20])
    ))
    return 1 if totals["rejected"] or bad_lines else 0


def _add_engagement(totals: dict, reply: dict) -> None:
    totals["accepted"] += int(reply["accepted"])
    totals["duplicates"] += int(reply["duplicates"])
    totals["rejected"] += reply["rejected"]
    totals["pool_size"] = int(reply["pool_size"])
    totals["pool_threshold"] = reply["pool_threshold"]


def cmd_sound_search(args) -> int:
    with _client(args) as client:
        result = client.search_by_sound(video_id=args.video_id, path=args.file, limit=args.limit)
    _report(args, result, _describe_sound_matches)
    return 0


def cmd_sounds(args) -> int:
    with _client(args) as client:
        result = client.list_sounds(args.window, args.limit)
    _report(args, result, lambda r: "\n".join(_describe_sound(s) for s in r["sounds"]) or "no sounds yet")
    return 0


def cmd_sound(args) -> int:
    with _client(args) as client:
        result = client.get_sound(args.sound_id, args.window)
    _report(args, result, lambda r: _describe_sound(r) + "\n  recent videos: " + (", ".join(r["recent_video_ids"]) or "-"))
    return 0


def cmd_demo(args) -> int:
    from server.app import create_server
    from server.client import Client
    from server.service import ColdOpenService, Models

    manifest_path = args.samples / "samples.json"
    if not manifest_path.is_file():
        _fail(args, f"no samples.json in {args.samples}; pass --samples with the repo's samples/ folder")
        return 2
    manifest = json.loads(manifest_path.read_text())
    with tempfile.TemporaryDirectory(prefix="coldopen-demo-") as tmp:
        # The demo's eight clips are a tiny corpus: unless told otherwise, the top 60% by score (not 20%) perform well.
        pool_percentile = args.pool_percentile if args.pool_percentile is not None else 40.0
        settings = _settings(args, listen="127.0.0.1:0", data_dir=args.data_dir or Path(tmp), pool_percentile=pool_percentile)
        configure_logging(settings.replace(log_level=settings.log_level if args.log_level else "WARNING"))
        server = create_server(settings).start()
        try:
            server.attach(ColdOpenService.open(settings, Models.load(settings)))
            out: dict = {"server": server.address, "clip_model": server.service.models.clip.name, "ingested": [], "searches": []}
            _say(args, f"ColdOpen demo: server on {server.address}, CLIP {out['clip_model']}, data dir {settings.data_dir}\n")
            with Client(server.address) as client:
                client.wait_until_serving(30)
                for clip in manifest["clips"]:
                    started = time.perf_counter()
                    r = client.ingest(
                        args.samples / clip["file"], video_id=clip["video_id"], creator_id=clip["creator_id"],
                        caption=clip["caption"], hashtags=clip["hashtags"],
                    )
                    r["wall_ms"] = round((time.perf_counter() - started) * 1000, 1)
                    out["ingested"].append(r)
                    _say(args, _describe_ingest(r))
                queries = [{"video_id": manifest["clips"][0]["video_id"]}, {"video_id": manifest["clips"][1]["video_id"]}]
                queries += [{"text": t} for t in manifest.get("text_queries", [])]
                for q in queries:
                    r = client.search(k=3, **q)
                    out["searches"].append({"query": q, **r})
                    label = f"video {q['video_id']!r}" if "video_id" in q else f"text {q['text']!r}"
                    _say(args, f"\nsearch by {label}:\n" + _describe_search(r))
                for video_id in manifest.get("sound_queries", []):
                    r = client.search_by_sound(video_id=video_id, limit=3)
                    out["sound_searches"] = out.get("sound_searches", []) + [{"video_id": video_id, **r}]
                    _say(args, f"\nvideos using the sound of {video_id!r}:\n" + _describe_sound_matches(r))
                out["sounds"] = client.list_sounds(window_s=3600, limit=3)["sounds"]
                _say(args, "\ntop sounds of the last hour:\n" + "\n".join("  " + _describe_sound(s) for s in out["sounds"]))
                if manifest.get("engagement"):
                    from server.client import engagement_event

                    lines = (args.samples / manifest["engagement"]).read_text().splitlines()
                    r = client.record_engagement([engagement_event(json.loads(x)) for x in lines if x.strip()])
                    out["engagement"] = r
                    _say(args, f"\nrecorded engagement: {r['accepted']} events; performs-well pool: {r['pool_size']} videos "
                               f"(the top {100 - settings.pool_percentile:g}% by score: "
                               + ("this demo's --pool-percentile" if args.pool_percentile is not None else
                                  f"the demo runs with --pool-percentile {pool_percentile:g} for its "
                                  f"{len(manifest['clips'])} clips; a server's default is 80")
                               + ")")
                for video_id in manifest.get("route_queries", []):
                    r = client.route(video_id=video_id, k=3)
                    out.setdefault("routes", []).append({"video_id": video_id, **r})
                    _say(args, f"\nroute {video_id!r} to the audiences of:\n" + _describe_route(r))
        finally:
            server.stop(grace=1)
    if args.json:
        print(json.dumps(out, indent=2))
    if "none" == settings.clip_pretrained.lower():
        _say(args, "\nNote: CLIP ran with random weights (--clip-pretrained none), so neighbours and text matches are "
                   "not semantic. With hub access, run: make demo CLIP_PRETRAINED=laion2b_s34b_b79k")
    return 0


# --- output -------------------------------------------------------------------
def configure_logging(settings: Settings) -> None:
    from server import logs

    logs.configure(settings.log_level, settings.log_json)


def _client(args):
    from server.client import Client

    env = default_env()
    ca = args.ca_cert or (Path(env["COLDOPEN_CA_CERT"]) if env.get("COLDOPEN_CA_CERT") else None)
    return Client(_server(args), timeout=args.timeout, token=args.token or env.get("COLDOPEN_TOKEN", ""), ca_cert=ca)


def _server(args) -> str:
    return args.server or default_env().get("COLDOPEN_SERVER") or DEFAULT_SERVER


def _say(args, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def _report(args, result: dict, describe=None) -> None:
    if args.json:
        print(json.dumps(result), flush=True)
    elif "error" in result:
        print(f"{result.get('file', result.get('video_id'))}: error: {result['error']}", file=sys.stderr, flush=True)
    else:
        print(describe(result) if describe else json.dumps(result, indent=2), flush=True)


def _fail(args, message: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"error": message}), flush=True)
    print(f"coldopen: error: {message}", file=sys.stderr, flush=True)


def _describe_ingest(r: dict) -> str:
    e = r["extraction"]
    m = e["media"]
    t = e["transcript"]
    transcript = f'"{t["text"]}" ({t["language"]})' if t["text"] else "(no speech)" if m["has_audio"] else "(no audio track)"
    lines = [
        f"{r['video_id']}: {'replaced, ' if r.get('replaced') else ''}{m['duration_s']:.1f} s {m['width']}x{m['height']}, "
        f"{e['frames_sampled']} frames -> {e['embedding_dim']}-d {e['embedding_model']}",
        f"  transcript: {transcript}",
        "  sound: " + _describe_uses(e),
    ]
    if r.get("sound_matches"):
        lines.append("  shares sound with: " + "; ".join(
            f"{x['video_id']} ({x['sound_id']}: here {x['query_start_s']:.1f} s = its {x['reference_start_s']:.1f} s, "
            f"for {x['duration_s']:.1f} s)" for x in r["sound_matches"]))
    lines.append("  timings ms: " + ", ".join(f"{s['stage']} {s['ms']:.0f}" for s in e["timings"]))
    if e.get("queue_wait"):
        lines.append("  queued ms: " + ", ".join(f"{s['stage']} {s['ms']:.0f}" for s in e["queue_wait"])
                     + "; mean batch: " + ", ".join(f"{b['stage']} {b['mean']:g}" for b in e.get("batches", [])))
    if r.get("vectors_pending"):
        lines.append("  stored, not searchable yet: the vector store was unavailable; it is shipped when the store is "
                     "back (do not re-send)")
    return "\n".join(lines)


def _describe_uses(e: dict) -> str:
    """The sounds a video uses: its primary one (new or reused) and any other it also matched."""
    if not e.get("sounds"):
        return f"{e['sound_id']} ({e['landmarks']} landmarks)" if e.get("sound_id") else "(none)"
    parts = []
    for u in e["sounds"]:
        origin = "new: this video started it" if u["started"] else "reused"
        where = f"from {u['start_s']:.1f} s for {u['duration_s']:.1f} s"
        if abs(u["speed"] - 1.0) > 1e-6:
            where += f", at {u['speed']:.2f}x its speed"
        parts.append(f"{u['sound_id']} ({'' if u['primary'] else 'also: '}{origin}; {where})")
    return "; ".join(parts) + f"; {e['landmarks']} landmarks"


def _describe_sound_matches(r: dict) -> str:
    if not r["matches"]:
        return "  no video uses this sound"
    return "\n".join(_describe_sound_match(m) for m in r["matches"])


def _describe_sound_match(m: dict) -> str:
    return (
        f"  {m['video_id']:<24} {m['sound_id']:<10} confidence {m['confidence']:.2f} ({m['matched_frames']} frames): "
        f"query {m['query_start_s']:.1f} s = its {m['reference_start_s']:.1f} s, for {m['duration_s']:.1f} s"
    )


def _describe_sound(s: dict) -> str:
    days = s["window_s"] / 86400
    window = f"{days:g} d" if days >= 1 else f"{s['window_s'] / 3600:g} h"
    return (
        f"{s['sound_id']:<10} {s['video_count']:>6} videos, {s['recent_video_count']:>6} in the last {window}; "
        f"first: {s['first_video_id']} at {s['created_at']}"
    )


def _describe_search(r: dict) -> str:
    if not r["neighbours"]:
        return f"  no neighbours (index holds {r['index_size']} videos)"
    return "\n".join(
        f"  {i + 1}. {n['video_id']:<24} score {n['score']:.3f}  by {n['creator_id'] or '-'}  {n['caption']!r}"
        for i, n in enumerate(r["neighbours"])
    )


def _describe_video(r: dict) -> str:
    md = r["metadata"]
    lines = [
        f"{md['video_id']} by {md['creator_id'] or '-'}: {md['caption']!r} {' '.join('#' + h for h in md['hashtags'])}",
        f"  ingested at {r['ingested_at']}",
        _describe_ingest({"video_id": md["video_id"], "replaced": False, "extraction": r["extraction"]}).split("\n", 1)[1],
    ]
    if r.get("performance"):
        p = r["performance"]
        lines.append(
            f"  performance: score {p['score']:.4f} ({'in' if p['in_pool'] else 'not in'} the performs-well pool, "
            f"threshold {p['pool_threshold']:.4f}); {p['impressions']} impressions, {p['plays']} plays, "
            f"completion {p['completion_rate']:.0%}, {p['likes']} likes, {p['comments']} comments, "
            f"{p['shares']} shares, {p['follows']} follows"
        )
    for s in r["extraction"]["transcript"]["segments"]:
        lines.append(f"  [{s['start_s']:6.2f}-{s['end_s']:6.2f}] {s['text']}  (avg_logprob {s['avg_logprob']:.2f})")
    if r.get("frames"):
        lines.append(f"  {len(r['frames'])} frame embeddings at t = {', '.join(str(f['t_s']) for f in r['frames'])} s")
    return "\n".join(lines)


def _parse_embedding(spec: str) -> list[float]:
    text = Path(spec[1:]).read_text() if spec.startswith("@") else "[" + spec + "]"
    return [float(v) for v in json.loads(text)]


def run() -> None:
    """The `coldopen` console script. A client command piped into `head` ends quietly when the reader goes
    away, as Unix tools do (the default SIGPIPE action); the server commands keep Python's, which turns a
    closed socket into an error instead of ending the process."""
    if sys.argv[1:2] and sys.argv[1] not in ("serve", "demo"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    run()
