"""What every client command shares: the client it talks through, and how it prints results and errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from coldopen.api.client import Client
from coldopen.cli.parser import DEFAULT_SERVER
from coldopen.config.settings import Settings, default_env


def configure_logging(settings: Settings) -> None:
    from coldopen.ops import logs

    logs.configure(settings.log_level, settings.log_json)


def connect(args):

    env = default_env()
    ca = args.ca_cert or (Path(env["COLDOPEN_CA_CERT"]) if env.get("COLDOPEN_CA_CERT") else None)
    return Client(server_address(args), timeout=args.timeout, token=args.token or env.get("COLDOPEN_TOKEN", ""), ca_cert=ca)


def server_address(args) -> str:
    return args.server or default_env().get("COLDOPEN_SERVER") or DEFAULT_SERVER


def say(args, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def report(args, result: dict, describe=None) -> None:
    if args.json:
        print(json.dumps(result), flush=True)
    elif "error" in result:
        print(f"{result.get('file', result.get('video_id'))}: error: {result['error']}", file=sys.stderr, flush=True)
    else:
        print(describe(result) if describe else json.dumps(result, indent=2), flush=True)


def fail(args, message: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"error": message}), flush=True)
    print(f"coldopen: error: {message}", file=sys.stderr, flush=True)


def parse_embedding(spec: str) -> list[float]:
    text = Path(spec[1:]).read_text() if spec.startswith("@") else "[" + spec + "]"
    return [float(v) for v in json.loads(text)]
