"""Observability: Prometheus metrics scraped over real HTTP, request ids in trailers and logs, JSON logs,
and the README's settings agreeing with the code."""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import fields

import grpc
import pytest

from coldopen.cli.main import build_parser
from coldopen.config.settings import ENV_PREFIX, Settings
from coldopen.ops import logs
from coldopen.v1 import coldopen_pb2 as pb
from testkit.paths import REPO
from tests.conftest import upload
from tests.integration.support import scrape

pytestmark = pytest.mark.slow

ROOT = REPO


def test_metrics_endpoint_reports_rpcs_stages_batches_refusals_and_sizes(start_server, clips):
    server = start_server(metrics_listen="127.0.0.1:0", max_hashtags=1)
    port = server.server.metrics_port
    assert port
    server.ingest(clips["fox"], "fox")
    server.stub.Search(pb.SearchRequest(text="a fox", k=3), timeout=10)
    with pytest.raises(grpc.RpcError):
        server.ingest(clips["fox"], "too-many-tags", hashtags=["a", "b"])
    with pytest.raises(grpc.RpcError):
        server.stub.GetVideo(pb.GetVideoRequest(video_id="nope"), timeout=10)
    m = scrape(port)
    assert m[("coldopen_rpc_requests_total", (("code", "OK"), ("method", "Ingest")))] == 1
    assert m[("coldopen_rpc_requests_total", (("code", "NOT_FOUND"), ("method", "GetVideo")))] == 1
    assert m[("coldopen_rpc_duration_seconds_count", (("code", "OK"), ("method", "Search")))] == 1
    assert m[("coldopen_refusals_total", (("reason", "max_hashtags"),))] == 1
    for stage in ("decode", "embed_frames", "transcribe", "fingerprint", "store", "index"):
        assert m[("coldopen_ingest_stage_seconds_count", (("stage", stage),))] == 1, stage
    for batcher in ("clip", "whisper", "fingerprint", "text"):
        assert m[("coldopen_batch_size_count", (("batcher", batcher),))] >= 1, batcher
        assert ("coldopen_batch_queue_depth", (("batcher", batcher),)) in m
    assert m[("coldopen_ingests_in_flight", ())] == 0
    assert m[("coldopen_index_size", (("index", "visual"),))] == 1
    assert m[("coldopen_pool_size", ())] == 0
    assert ("coldopen_decode_worker_restarts_total", ()) in m


def test_metrics_are_off_by_default(start_server):
    assert start_server().server.metrics_port is None


def test_request_id_is_returned_and_on_every_log_line_about_the_request(start_server, clips, caplog):
    server = start_server()
    caplog.handler.addFilter(logs.RequestIdFilter())  # what logs.configure installs on its handler
    with caplog.at_level(logging.INFO):
        _, call = server.stub.Ingest.with_call(
            upload(clips["fox"].read_bytes(), "fox"), metadata=(("x-request-id", "req-abc-123"),), timeout=120
        )
        assert dict(call.trailing_metadata())["x-request-id"] == "req-abc-123"
        _, call = server.stub.Search.with_call(pb.SearchRequest(text="x", k=1), timeout=10)
        generated = dict(call.trailing_metadata())["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        with pytest.raises(grpc.RpcError) as e:
            server.stub.GetVideo(pb.GetVideoRequest(video_id="nope"), metadata=(("x-request-id", "req-404"),), timeout=10)
        assert dict(e.value.trailing_metadata())["x-request-id"] == "req-404"
    about_fox = [r for r in caplog.records if "video_id=fox" in r.getMessage()]
    assert about_fox and all(r.request_id == "req-abc-123" for r in about_fox)
    assert any(getattr(r, "request_id", "") == "req-404" and "NOT_FOUND" in r.getMessage() for r in caplog.records)


def test_json_logs_are_one_json_object_per_line():
    stream = io.StringIO()
    logs.configure("INFO", as_json=True, stream=stream)
    try:
        log = logging.getLogger("coldopen.test")
        with logs.request_context("rid-1"):
            log.info("quotes ' and \" and a newline\nin %s", "it")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed: %r", {"a": 1})
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 2
    assert entries[0]["msg"] == "quotes ' and \" and a newline\nin it" and entries[0]["request_id"] == "rid-1"
    assert entries[1]["level"] == "ERROR" and "ValueError: boom" in entries[1]["exc"]


def test_every_setting_is_a_serve_flag_and_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    flags = {opt for action in serve._actions for opt in action.option_strings}
    missing_flags, undocumented = [], []
    for f in fields(Settings):
        flag = "--json" if f.name == "log_json" else "--" + f.name.replace("_", "-")
        if flag not in flags:
            missing_flags.append(flag)
        if f"`{flag}`" not in readme or f"`{ENV_PREFIX}{f.name.upper()}`" not in readme:
            undocumented.append(f.name)
    assert not missing_flags and not undocumented, (missing_flags, undocumented)
    # and every flag the README's settings table names exists
    table = readme.split("### Settings", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(--[a-z0-9-]+)`", table))
    assert named <= flags, named - flags
