"""The `coldopen` command as a user runs it: a real `serve` process, the client commands, the demo."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.paths import REPO

pytestmark = pytest.mark.slow

ROOT = REPO


def coldopen(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coldopen.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def model_flags(tiny_clip) -> list[str]:
    return ["--clip-model", str(tiny_clip[0]), "--clip-pretrained", str(tiny_clip[1]), "--device", "cpu"]


def start_serve(tiny_clip, data_dir: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldopen.cli", "serve", "--json", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
         *model_flags(tiny_clip)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"serve exited early: {proc.wait()} {proc.stderr.read()}")
    event = json.loads(line)
    assert event["event"] == "serving"
    return proc, event["address"]


def test_serve_fails_fast_when_weights_cannot_load(tmp_path):
    started = time.monotonic()
    r = coldopen("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), "--clip-pretrained", str(tmp_path / "nope.pt"))
    assert r.returncode == 2
    assert "cannot start" in r.stderr and "does not exist" in r.stderr and "--clip-pretrained none" in r.stderr
    assert time.monotonic() - started < 60


def test_serve_ingest_search_get_delete_and_restart(tiny_clip, clips, tmp_path):
    proc, address = start_serve(tiny_clip, tmp_path / "data")
    try:
        r = coldopen("ingest", "--server", address, "--json", "--creator-id", "me", "--hashtag", "demo",
                     str(clips["fox"]), str(clips["coffee"]), str(tmp_path / "missing.mp4"))
        assert r.returncode == 1  # one file failed; the others were ingested
        results = [json.loads(line) for line in r.stdout.splitlines()]
        assert [x["video_id"] for x in results] == ["fox", "coffee", "missing"]
        assert "fox" in results[0]["extraction"]["transcript"]["text"].lower()
        assert "does not exist" in results[2]["error"]

        r = coldopen("ingest", "--server", address, str(clips["rocket"]), "--video-id", "launch")
        assert r.returncode == 0 and "launch:" in r.stdout and "rocket" in r.stdout.lower()

        r = coldopen("search", "--server", address, "--json", "--video-id", "fox", "-k", "5")
        assert r.returncode == 0
        assert {n["video_id"] for n in json.loads(r.stdout)["neighbours"]} == {"coffee", "launch"}
        r = coldopen("search", "--server", address, "--text", "coffee")
        assert r.returncode == 0 and "score" in r.stdout

        r = coldopen("get", "--server", address, "coffee")
        assert r.returncode == 0 and "coffee" in r.stdout and "#demo" in r.stdout

        sound_id = results[0]["extraction"]["sound_id"]
        r = coldopen("sound-search", "--server", address, "--json", "--file", str(clips["fox"]))
        assert r.returncode == 0 and [m["video_id"] for m in json.loads(r.stdout)["matches"]] == ["fox"]
        r = coldopen("sound-search", "--server", address, "--video-id", "coffee")
        assert r.returncode == 0 and "no video uses this sound" in r.stdout
        r = coldopen("sound", "--server", address, sound_id, "--window", "3600")
        assert r.returncode == 0 and f"{sound_id}" in r.stdout and "1 videos" in r.stdout and "fox" in r.stdout
        r = coldopen("sounds", "--server", address, "--json", "--limit", "2")
        assert r.returncode == 0 and len(json.loads(r.stdout)["sounds"]) == 2
        r = coldopen("delete", "--server", address, "--json", "coffee")
        assert r.returncode == 0 and json.loads(r.stdout) == {"video_id": "coffee"}
        r = coldopen("get", "--server", address, "coffee")
        assert r.returncode == 1 and "NOT_FOUND" in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0

    # once the pool had loaded, serve exempted start's objects from full garbage collections (ops/gcpolicy.py)
    assert "exempted from garbage collection" in proc.stderr.read()

    proc, address = start_serve(tiny_clip, tmp_path / "data")
    try:
        r = coldopen("get", "--server", address, "--json", "fox")
        assert r.returncode == 0 and json.loads(r.stdout)["metadata"]["creator_id"] == "me"
        r = coldopen("search", "--server", address, "--json", "--video-id", "fox")
        assert [n["video_id"] for n in json.loads(r.stdout)["neighbours"]] == ["launch"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_serve_refuses_a_data_dir_built_with_another_model(tiny_clip, clips, tmp_path):
    proc, address = start_serve(tiny_clip, tmp_path / "data")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    r = coldopen("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
                 "--clip-model", str(tiny_clip[0]), "--clip-pretrained", "none", "--device", "cpu")
    assert r.returncode == 2 and "holds embeddings from" in r.stderr and "new --data-dir" in r.stderr


def test_demo_ingests_the_samples_and_searches(tiny_clip):
    r = coldopen("demo", "--json", *model_flags(tiny_clip), timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    manifest = json.loads((ROOT / "samples/samples.json").read_text())
    assert [x["video_id"] for x in out["ingested"]] == [c["video_id"] for c in manifest["clips"]]
    assert "coffee" in out["ingested"][0]["extraction"]["transcript"]["text"].lower()
    text_searches = [s for s in out["searches"] if "text" in s["query"]]
    assert len(text_searches) == len(manifest["text_queries"]) and all(len(s["neighbours"]) == 3 for s in text_searches)
    # The two clips that share a song share a sound id, and the demo finds one from the other.
    by_id = {x["video_id"]: x for x in out["ingested"]}
    assert by_id["song-reuse"]["extraction"]["sound_id"] == by_id["song-original"]["extraction"]["sound_id"]
    assert [m["video_id"] for m in out["sound_searches"][0]["matches"]] == ["song-original"]
    assert out["sounds"][0]["sound_id"] == by_id["song-original"]["extraction"]["sound_id"]
    assert int(out["sounds"][0]["video_count"]) == 2  # int64 is a string in proto3 JSON
    # It ends by routing: the clip that reuses the song goes to the original's audience, for that reason.
    assert int(out["engagement"]["accepted"]) == len(manifest["clips"])
    route = next(r for r in out["routes"] if r["video_id"] == "song-reuse")
    top = route["neighbours"][0]
    assert top["video_id"] == "song-original" and top["contributions"]["sound"] > 0
