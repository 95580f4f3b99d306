"""The `coldopen` command's entry points: `main(argv)` (also called in-process) and the console script `run`.
Commands live in commands.py and demo.py, the parser in parser.py, what they print in render.py."""

from __future__ import annotations

import signal
import sys

import grpc

from coldopen.api.client import UploadError, describe_error
from coldopen.cli.commands import (
    cmd_delete,
    cmd_engagement,
    cmd_get,
    cmd_ingest,
    cmd_rollout,
    cmd_route,
    cmd_search,
    cmd_serve,
    cmd_sound,
    cmd_sound_search,
    cmd_sounds,
)
from coldopen.cli.console import fail, server_address
from coldopen.cli.demo import cmd_demo
from coldopen.cli.parser import build_parser
from coldopen.domain.errors import DataDirLocked, ModelLoadError, StartupError

HANDLERS = {
    "serve": cmd_serve, "ingest": cmd_ingest, "search": cmd_search, "get": cmd_get, "delete": cmd_delete,
    "demo": cmd_demo, "sound-search": cmd_sound_search, "engagement": cmd_engagement, "route": cmd_route,
    "rollout": cmd_rollout, "sounds": cmd_sounds, "sound": cmd_sound,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = HANDLERS[args.command]
    try:
        return handler(args)
    except StartupError as e:  # one line, exit 2: what was wrong and what to do
        fail(args, f"cannot start: {e}")
        return 2
    except (ModelLoadError, DataDirLocked) as e:
        fail(args, f"cannot start: {e}")
        return 2
    except UploadError as e:
        fail(args, str(e))
        return 2
    except ValueError as e:  # invalid settings
        fail(args, str(e))
        return 2
    except grpc.RpcError as e:
        fail(args, describe_error(e, server_address(args), getattr(args, "request_id", "")))
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """The `coldopen` console script. A client command piped into `head` ends quietly when the reader goes
    away, as Unix tools do (the default SIGPIPE action); the server commands keep Python's, which turns a
    closed socket into an error instead of ending the process."""
    if sys.argv[1:2] and sys.argv[1] not in ("serve", "demo"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    run()
