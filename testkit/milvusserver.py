"""Milvus Lite's server mode for the tests: a separate process speaking Milvus's gRPC API on loopback
(as a Milvus standalone or cluster does), one data dir, stopped at the end of the session."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


class MilvusLiteServer:
    def __init__(self, root: Path):
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> MilvusLiteServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = open(self.root / "milvus.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.root / "data"),
             "--host", "127.0.0.1", "--port", str(self.port)],  # its default bind address is 0.0.0.0
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited ({self.proc.returncode}): "
                                   f"{(self.root / 'milvus.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"milvus-lite server did not listen on {self.port} within {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        if self.proc is not None:
            self._log.close()
