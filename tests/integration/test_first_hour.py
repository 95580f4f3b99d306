"""What a new user meets in their first hour, as they meet it: the `coldopen` command in real processes.

A second server on a busy port, a busy metrics port, an unreachable database or a Milvus Lite file in use
exits with status 2 in one line, before any model loads; every command's --help works; careless input
through the CLI gets a message that says what was wrong and what to do, never a server path, an errno or
a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coldopen.cli.main import build_parser
from testkit.paths import REPO

pytestmark = pytest.mark.slow

ROOT = REPO


def coldopen(*args: str, timeout: float = 120, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coldopen.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, stdin=stdin)


def model_flags(tiny_clip) -> list[str]:
    return ["--clip-model", str(tiny_clip[0]), "--clip-pretrained", str(tiny_clip[1]), "--device", "cpu"]


@pytest.fixture(scope="module")
def serving(tiny_clip, tmp_path_factory):
    """One real `coldopen serve` (with metrics), as a user starts it; its `serving` event."""
    data = tmp_path_factory.mktemp("first-hour")
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldopen.cli", "serve", "--json", "--listen", "127.0.0.1:0", "--data-dir", str(data),
         "--metrics-listen", "127.0.0.1:0", *model_flags(tiny_clip)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"serve exited early: {proc.wait()} {proc.stderr.read()}")
    event = json.loads(line)
    yield event
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def _one_line_exit_2(r: subprocess.CompletedProcess, *words: str) -> None:
    """Exit status 2 and the failure in one line (the server's own log lines before it are fine), no traceback."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    errors = [x for x in r.stderr.splitlines() if x.startswith("coldopen: error: ")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert all(w in errors[0] for w in words), (words, errors[0])


def test_a_second_server_on_a_busy_port_exits_2_within_5_s_and_the_first_keeps_serving(serving, tiny_clip, tmp_path):
    port = serving["address"].rsplit(":", 1)[1]
    started = time.monotonic()
    r = coldopen("serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "second"), *model_flags(tiny_clip))
    assert time.monotonic() - started < 5
    _one_line_exit_2(r, f"port {port}", "--listen")
    # A port it shares with nothing else, but the first server's metrics port: the same.
    metrics = str(serving["metrics_port"])
    started = time.monotonic()
    r = coldopen("serve", "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{metrics}",
                 "--data-dir", str(tmp_path / "third"), *model_flags(tiny_clip))
    assert time.monotonic() - started < 5
    _one_line_exit_2(r, f"port {metrics}", "--metrics-listen")
    # Every call still reaches the first server (nothing split the port with it).
    for _ in range(10):
        assert coldopen("sounds", "--server", serving["address"]).returncode == 0


def test_an_unreachable_database_exits_2_in_one_line_before_models_load(tiny_clip, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    started = time.monotonic()
    r = coldopen("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path),
                 "--database-url", f"postgresql://nobody:secret@127.0.0.1:{free}/coldopen",
                 "--clip-pretrained", str(tmp_path / "weights-that-would-take-a-minute.pt"))  # never reached
    assert time.monotonic() - started < 20
    _one_line_exit_2(r, "cannot reach the catalog database", "--database-url", f"127.0.0.1:{free}")
    assert "secret" not in r.stderr and "retry with backoff" not in r.stderr


def test_a_milvus_lite_file_in_use_exits_2_saying_replicas_need_a_milvus_server(tmp_path):
    from pymilvus import MilvusClient

    path = tmp_path / "vectors.db"
    client = MilvusClient(uri=str(path))  # this process holds the file
    try:
        r = coldopen("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
                     "--vector-store", str(path), "--clip-pretrained", str(tmp_path / "never-loaded.pt"))
        _one_line_exit_2(r, "in use by another process", "milvus_lite server")
    finally:
        client.close()


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("command", ["", *_commands()])
def test_every_command_prints_its_help(command):
    r = coldopen(*([command] if command else []), "--help", timeout=60)
    assert r.returncode == 0 and "usage: coldopen" in r.stdout and not r.stderr, r.stderr
    if command == "serve":  # every setting, as the README says
        assert "--max-upload-bytes" in r.stdout and "--pool-percentile" in r.stdout and "--metrics-listen" in r.stdout


def test_serve_json_names_the_metrics_port_or_null(serving):
    assert isinstance(serving["metrics_port"], int) and serving["metrics_port"] > 0
    assert set(serving) >= {"event", "address", "pid", "videos", "metrics_port"}


# (what a careless user runs, exit status, words the message must have); no message may show a server path,
# an errno number, gRPC's "Exception iterating requests" or a traceback.
CARELESS = [
    ("ingest a directory", lambda a, d: ["ingest", "--server", a, str(d)], 1, ["is a directory", "*.mp4"]),
    ("ingest a text file", lambda a, d: ["ingest", "--server", a, str(d / "notes.txt")], 1,
     ["not a readable media file", "VP8", "H.264"]),
    ("ingest an empty file", lambda a, d: ["ingest", "--server", a, str(d / "empty.mp4")], 1, ["is empty (0 bytes)"]),
    ("ingest a missing file", lambda a, d: ["ingest", "--server", a, str(d / "nope.mp4")], 1, ["does not exist"]),
    ("a wrong --server", lambda a, d: ["search", "--server", "127.0.0.1:1", "--text", "cats"], 1,
     ["cannot reach a ColdOpen server at 127.0.0.1:1", "--server"]),
    ("-k 0", lambda a, d: ["search", "--server", a, "--text", "cats", "-k", "0"], 2, ["must be at least 1"]),
    ("--limit -1", lambda a, d: ["sound-search", "--server", a, "--video-id", "x", "--limit", "-1"], 2,
     ["must be at least 1"]),
    ("an unknown video", lambda a, d: ["get", "--server", a, "no-such-video"], 1, ["NOT_FOUND", "request id"]),
    ("a malformed sound id", lambda a, d: ["sound", "--server", a, "snd-x"], 1, ["INVALID_ARGUMENT", "snd-42"]),
    ("a weight without a number", lambda a, d: ["route", "--server", a, "--video-id", "x", "--weight", "sound=lots"], 2,
     ["MODALITY=NUMBER"]),
    ("sound search with a text file", lambda a, d: ["sound-search", "--server", a, "--file", str(d / "notes.txt")], 1,
     ["not a readable media file"]),
]


@pytest.mark.parametrize("case", CARELESS, ids=[c[0] for c in CARELESS])
def test_careless_input_gets_a_message_that_says_what_to_do(serving, tmp_path, case):
    _, args, status, words = case
    (tmp_path / "notes.txt").write_text("shopping list: milk, eggs, a video camera\n" * 50)
    (tmp_path / "empty.mp4").write_bytes(b"")
    r = coldopen(*args(serving["address"], tmp_path), timeout=60)
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    message = r.stderr + r.stdout
    assert all(w in message for w in words), (words, message)
    for forbidden in ("Traceback", "Errno", "Exception iterating", "/upload-", str(Path(os.sep, "tmp", "coldopen"))):
        assert forbidden not in message, (forbidden, message)


def test_a_closed_pipe_ends_a_client_command_quietly(serving, clips):
    assert coldopen("ingest", "--server", serving["address"], str(clips["fox"])).returncode == 0
    # `get --embeddings --json` prints far more than `head` reads.
    r = subprocess.run(f"{sys.executable} -m coldopen.cli get --server {serving['address']} --embeddings --json fox | head -c 20",
                       shell=True, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert len(r.stdout) == 20 and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_json_counts_are_numbers(serving, clips):
    assert coldopen("ingest", "--server", serving["address"], str(clips["coffee"])).returncode == 0
    out = json.loads(coldopen("search", "--server", serving["address"], "--json", "--text", "coffee").stdout)
    assert isinstance(out["index_size"], int)
    got = json.loads(coldopen("get", "--server", serving["address"], "--json", "coffee").stdout)
    assert isinstance(got["extraction"]["media"]["width"], int) and isinstance(got["performance"]["impressions"], int)
