"""The `coldopen` command line: one subcommand per use, every server setting a flag of `serve` and `demo`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from coldopen.config.settings import ENV_PREFIX, MIB, Settings, default_env, kind, parse
from coldopen.domain import modalities

DEFAULT_SERVER = "127.0.0.1:50051"
REPO_SAMPLES = Path(__file__).resolve().parents[2] / "samples"  # the repository's: make demo runs from a checkout


def at_least(least: int, what: str):
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


def positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds (got {raw})")
    return value


COUNT = at_least(1, "a count")


CAP = at_least(0, "a cap (0 = none)")


def settings_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
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


def settings_from_args(args: argparse.Namespace, **forced) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Settings)}
    if getattr(args, "max_upload_mib", None):
        overrides["max_upload_bytes"] = int(args.max_upload_mib * MIB)
    overrides["log_json"] = True if getattr(args, "json", False) else None
    overrides.update(forced)
    return Settings.from_env(default_env(), **overrides)


class _Commands:
    """Subcommands of one parser: plain ones, and client ones with the server connection's flags."""

    def __init__(self, sub: Any):
        self._sub = sub

    def command(self, name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = self._sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="machine-readable JSON output")
        return p

    def client(self, name: str, help: str) -> argparse.ArgumentParser:
        p = self.command(name, help)
        p.add_argument("--server", default=None, help=f"server address (default $COLDOPEN_SERVER or {DEFAULT_SERVER})")
        p.add_argument("--timeout", type=positive_seconds, default=600.0, help="seconds per call")
        p.add_argument("--token", default=None, help="bearer token (default $COLDOPEN_TOKEN); never logged")
        p.add_argument("--ca-cert", type=Path, default=None, help="PEM CA bundle: connect with TLS (default $COLDOPEN_CA_CERT)")
        return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coldopen", description=__doc__)
    commands = _Commands(parser.add_subparsers(dest="command", required=True))
    settings_flags(commands.command("serve", "run the gRPC server"))
    _video_commands(commands)
    _route_commands(commands)
    _sound_commands(commands)
    p = commands.command("demo", "start a server on this machine, ingest the sample clips and run searches")
    p.add_argument("--samples", type=Path, default=REPO_SAMPLES, help="folder with samples.json and clips")
    settings_flags(p, skip=("listen",))
    return parser


def _video_commands(commands: _Commands) -> None:
    p = commands.client("ingest", "upload video files to the server")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--video-id", help="id for the video (only with one file; default: the file name without extension)")
    p.add_argument("--creator-id", default="")
    p.add_argument("--caption", default="")
    p.add_argument("--hashtag", action="append", default=[], help="repeatable")
    p.add_argument("--language", default="", help="language hint, e.g. en (default: detect)")

    p = commands.client("search", "nearest neighbours by video id, text or embedding")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--video-id")
    q.add_argument("--text")
    q.add_argument("--embedding", help="comma-separated floats, or @file.json with a list of floats")
    p.add_argument("-k", type=COUNT, default=10, help="neighbours to return (default 10)")
    p.add_argument("--performing", action="store_true", help="only videos in the performs-well pool")
    p.add_argument("--target", choices=list(modalities.EMBEDDED), default=modalities.VISUAL,
                   help="compare frames (CLIP), transcripts or captions (MiniLM); default visual")

    p = commands.client("get", "show what was extracted for a video")
    p.add_argument("video_id")
    p.add_argument("--embeddings", action="store_true", help="include the video and per-frame embeddings")

    p = commands.client("delete", "remove a video from the index")
    p.add_argument("video_id")


def _route_commands(commands: _Commands) -> None:
    p = commands.client("route", "performing videos most like a new one, with why each was chosen")
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
    p.add_argument("--fusion", choices=list(modalities.FUSIONS), default="", help="default: the server's --route-fusion")

    p = commands.client("rollout", "whether to widen a video's audience to the next tier, hold, or stop")
    p.add_argument("video_id")
    p.add_argument("--audience", type=CAP, default=0,
                   help="impressions granted so far (default: the first tier its impressions have not passed)")

    p = commands.client("engagement", "load engagement events from JSON Lines files ('-' for stdin)")
    p.add_argument("files", nargs="+", help="one JSON object per line: event_id, video_id, impressions, plays, "
                   "completions, watch_time_s, likes, comments, shares, follows, at")
    p.add_argument("--batch", type=COUNT, default=1000, help="events per call")


def _sound_commands(commands: _Commands) -> None:
    p = commands.client("sound-search", "videos that reuse a sound: of an indexed video, or of a local audio/video file")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--video-id")
    q.add_argument("--file", type=Path, help="uploaded for matching only; never stored")
    p.add_argument("--limit", type=COUNT, default=10, help="matches to return (default 10)")

    p = commands.client("sounds", "sounds by how many videos used them recently (trends)")
    p.add_argument("--window", type=positive_seconds, default=86400, help="recent window in seconds (default one day)")
    p.add_argument("--limit", type=COUNT, default=20, help="sounds to return (default 20)")

    p = commands.client("sound", "how many videos use one sound, in total and recently")
    p.add_argument("sound_id")
    p.add_argument("--window", type=positive_seconds, default=86400, help="recent window in seconds (default one day)")
