"""A data dir written before the package moved into `coldopen/` (issue 29), committed as it was: the new
layout opens its catalog and pool snapshot unchanged and answers as the old code did (its answers were
recorded with it: expected.json). Its index snapshots and postings segments predate checksums (issue 32):
they are not trusted unverified but rebuilt from the catalog, once, saying why."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from coldopen.v1 import coldopen_pb2 as pb
from testkit.paths import TEST_DATA

pytestmark = pytest.mark.slow

LEGACY = TEST_DATA / "legacy" / "datadir-before-layout"


def _as_if_stopped_just_now(data: Path) -> None:
    """The snapshots say when they were written; an upgrade follows a stop, so make that a minute ago (a
    snapshot older than the change feed's retention is rebuilt instead, by design)."""
    manifest = data / "snapshots" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["written_at"] = time.time() - 60
    manifest.write_text(json.dumps(m))
    pool = data / "snapshots" / "pool.npz"
    with np.load(pool, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["written_at"] = time.time() - 60
    arrays["meta"] = np.array(json.dumps(meta))
    with open(pool, "wb") as f:
        np.savez(f, **arrays)


def test_a_data_dir_from_before_the_move_opens_and_answers_unchanged(start_server, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(LEGACY, data)
    _as_if_stopped_just_now(data)
    expected = json.loads((data / "expected.json").read_text())
    with caplog.at_level(logging.INFO):
        server = start_server(data_dir=data, pool_min_impressions=1, pool_percentile=50.0)
        assert server.server.service.wait_ready(60)
    log = caplog.text
    assert "loaded from the snapshot" in log, log[-3000:]  # the pool's
    assert "it has format 1, this version reads 2" in log and "segment format 1" in log, log[-3000:]
    assert "could not be read" not in log
    stub = server.stub
    for video_id, want in expected["videos"].items():
        got = stub.GetVideo(pb.GetVideoRequest(video_id=video_id))
        e = got.extraction
        assert (e.sound_id, e.frames_sampled, e.landmarks, e.transcript.text) == (
            want["sound_id"], want["frames_sampled"], want["landmarks"], want["transcript"])
        assert got.performance.in_pool == want["in_pool"]
    neighbours = stub.Search(pb.SearchRequest(video_id="fox", k=4)).neighbours
    assert [n.video_id for n in neighbours] == expected["search_fox"]
    matches = stub.SearchBySound(iter([pb.SoundSearchRequest(query=pb.SoundQuery(video_id="reuse"))])).matches
    assert [[m.video_id, m.sound_id] for m in matches] == expected["sound_search_reuse"]
    sounds = stub.ListSounds(pb.ListSoundsRequest(window_s=3650 * 86400.0)).sounds
    assert {s.sound_id: s.video_count for s in sounds} == expected["sounds"]
    segments = [p for p in (data / "sound-postings").iterdir() if p.name.startswith("segment-")]
    assert all("checksums" in json.loads((p / "segment.json").read_text()) for p in segments)
