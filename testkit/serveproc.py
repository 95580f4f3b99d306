"""`coldopen serve --json` from a checkout, in its own process (so it can be killed), on a free loopback
port, logging to a file: for tests and benchmarks that need a real server process (or an older checkout's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc

from testkit.paths import REPO


class ServeProcess:
    def __init__(self, data_dir: Path, log: Path, *flags: str, repo: Path = REPO, env: dict | None = None,
                 required: bool = True):
        """Start it and wait until it serves (its first JSON line). `repo`: the checkout whose code runs (its
        `coldopen` package comes first on the path); `required`: raise when it exits instead of serving
        (else `serving` is False and `exit_code()` says how it ended)."""
        from coldopen.v1 import coldopen_pb2_grpc as pb_grpc

        self.log = log
        self._log = open(log, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coldopen.cli", "serve", "--json", "--listen", "127.0.0.1:0", "--data-dir",
             str(data_dir), *flags],
            stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo), **(env or {})},
        )
        line = self.proc.stdout.readline() if self.proc.stdout is not None else ""
        event = json.loads(line) if line.strip() else {}
        self.serving = "address" in event
        if not self.serving and required:
            raise RuntimeError(f"serve exited early ({self.proc.wait()}): {log.read_text()[-3000:]}")
        self.address: str = event.get("address", "")
        if self.serving:
            self.channel = grpc.insecure_channel(self.address)
            self.stub = pb_grpc.ContentIndexStub(self.channel)

    def exit_code(self) -> int:
        return self.proc.wait(120)

    def close(self) -> None:
        if self.serving:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(60)
        self._log.close()
