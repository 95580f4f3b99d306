"""What a setting may be: checks declared with each field (``settings.py``) and applied by one loop, and
the few rules that relate two fields. A check returns what is wrong (to be prefixed with the field's
name) or None; NaN fails every numeric check, as it should."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], "str | None"]


def at_least(low: float) -> Check:
    def check(v: Any) -> str | None:
        return None if v >= low else f"must be >= {low:g} (got {v})"
    return check


def above(low: float) -> Check:
    def check(v: Any) -> str | None:
        return None if v > low else f"must be > {low:g} (got {v})"
    return check


def within(low: float, high: float, high_open: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok = low <= v < high if high_open else low <= v <= high
        return None if ok else f"must be within {low:g}..{high:g} (got {v})"
    return check


def host_port(v: str) -> str | None:
    """host:port, or empty (off)."""
    if not v:
        return None
    _, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        return f"must be host:port, e.g. 127.0.0.1:9464 (got {v!r})"
    return None


def json_object(v: str) -> str | None:
    try:
        if isinstance(json.loads(v), dict):
            return None
        problem = "not an object"
    except ValueError as e:
        problem = str(e)
    return f"must be a JSON object such as {{\"ef\": 64}} (got {v!r}: {problem})"


def increasing_tiers(v: str) -> str | None:
    """Increasing positive integers separated by commas."""
    try:
        tiers = [int(x) for x in v.split(",") if x.strip()]
        if not tiers or tiers[0] < 1 or any(b <= a for a, b in zip(tiers, tiers[1:])):
            raise ValueError("not increasing positive integers")
    except ValueError as e:
        return f"must be increasing impressions such as 300,3000,30000 (got {v!r}: {e})"
    return None


def key_values(v: str) -> str | None:
    """name=value pairs separated by commas (FAISS search parameters), or empty."""
    for part in (p for p in v.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            return f"must be name=value pairs such as efSearch=64 or nprobe=32 (got {v!r})"
    return None


def relations(s: Any) -> list[str]:
    """The rules that relate two settings."""
    problems = []
    if s.max_open_streams < s.max_concurrent_ingests:
        problems.append(f"max_open_streams ({s.max_open_streams}) must be at least max_concurrent_ingests "
                        f"({s.max_concurrent_ingests}): every upload is a stream")
    if s.max_streams_per_caller > s.max_open_streams:
        problems.append(f"max_streams_per_caller ({s.max_streams_per_caller}) cannot exceed max_open_streams "
                        f"({s.max_open_streams})")
    if not 0 <= s.rollout_stop_below < s.rollout_widen_at <= 1:
        problems.append(f"rollout_stop_below ({s.rollout_stop_below}) must be below rollout_widen_at "
                        f"({s.rollout_widen_at}), both within 0..1")
    if s.clip_precision == "fp16" and s.device == "cpu":
        problems.append("clip_precision fp16 needs CUDA (device is cpu); use int8 or fp32 on the CPU")
    if s.clip_precision == "int8" and s.device == "cuda":
        problems.append("clip_precision int8 is the CPU path (ONNX Runtime); use fp16 or auto with device cuda")
    if bool(s.tls_cert) != bool(s.tls_key):
        problems.append("tls_cert and tls_key must be given together (PEM certificate chain and its private key)")
    if s.metrics_listen and s.metrics_listen == s.listen and not s.listen.endswith(":0"):
        problems.append("metrics_listen must differ from listen (the gRPC address)")
    return problems
