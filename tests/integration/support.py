"""Helpers the integration tests share: a `coldopen serve` process of their own, and Prometheus scrapes."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from testkit import serveproc
from testkit.paths import REPO

ROOT = REPO


class ServeProcess(serveproc.ServeProcess):
    """`coldopen serve` in its own process with the tiny CLIP on the CPU."""

    def __init__(self, tiny_clip, data_dir: Path, log: Path, *extra: str):
        super().__init__(data_dir, log, "--clip-model", str(tiny_clip[0]), "--clip-pretrained", str(tiny_clip[1]),
                         "--device", "cpu", "--decode-workers", "1", *extra)


def stack_flags(stack: dict) -> list[str]:
    """`serve` flags for a stack's settings overrides (tests/conftest.py)."""
    return [x for name, value in stack.items() for x in (f"--{name.replace('_', '-')}", str(value))]


def stored_rows(stack: dict, data_dir: Path) -> list[tuple]:
    """(video_id, embedding bytes, transcript JSON) of every video in the stack's catalog."""
    from coldopen.storage.database import Database, sqlite_url

    db = Database(stack.get("database_url") or sqlite_url(data_dir / "coldopen.sqlite3"))
    with db.read() as conn:
        rows = conn.exec_driver_sql("SELECT video_id, length(embedding), transcript FROM videos").all()
    db.dispose()
    return [tuple(r) for r in rows]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """/metrics over HTTP, parsed by prometheus_client's own parser: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
