"""Validation of caller-supplied ids, metadata and engagement events, and the sound-id format.

Pure functions: they raise InvalidInput (or return a reason) with a message saying what to fix."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from server.domain import EngagementEvent, VideoMetadata
from server.errors import InvalidInput

VIDEO_ID = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")
MAX_TEXT_CHARS = 1000
MAX_CAPTION_CHARS = 5000


def validate_video_id(video_id: str) -> str:
    if not video_id:
        raise InvalidInput("video_id is missing; set metadata.video_id to your platform's id for this clip")
    if not VIDEO_ID.match(video_id):
        raise InvalidInput(
            f"video_id {video_id[:40]!r} is invalid: use 1-256 printable characters without whitespace"
        )
    return video_id


SOUND_PREFIX = "snd-"


def format_sound_id(sound_id: int | None) -> str:
    return f"{SOUND_PREFIX}{sound_id}" if sound_id is not None else ""


def parse_sound_id(text: str) -> int:
    if not text.startswith(SOUND_PREFIX) or not text[len(SOUND_PREFIX) :].isdigit():
        raise InvalidInput(f"sound_id {text[:40]!r} is invalid: sound ids look like 'snd-42' (as returned by Ingest)")
    return int(text[len(SOUND_PREFIX) :])


def validate_metadata(meta: VideoMetadata, require_id: bool = True) -> VideoMetadata:
    if require_id or meta.video_id:
        validate_video_id(meta.video_id)
    if len(meta.caption) > MAX_CAPTION_CHARS:
        raise InvalidInput(f"caption is {len(meta.caption)} characters; the limit is {MAX_CAPTION_CHARS}")
    if meta.language_hint and not re.fullmatch(r"[a-z]{2,3}", meta.language_hint):
        raise InvalidInput(
            f"language_hint {meta.language_hint[:20]!r} is not an ISO 639-1 code such as 'en'; leave it empty to detect"
        )
    return meta


_COUNTER_FIELDS = ("impressions", "plays", "completions", "watch_time_s", "likes", "comments", "shares", "follows")


def engagement_problem(e: EngagementEvent) -> str:
    if not e.event_id:
        return "event_id is missing; give every event a unique id so retries are counted once"
    if len(e.event_id) > 256:
        return "event_id is longer than 256 characters"
    if not e.video_id or not VIDEO_ID.match(e.video_id):
        return f"video_id {e.video_id[:40]!r} is missing or invalid"
    try:
        datetime.fromisoformat(e.at.replace("Z", "+00:00"))
    except ValueError:
        return f"at {e.at[:40]!r} is not an RFC 3339 time such as 2026-11-23T10:00:00Z"
    negative = [f for f in _COUNTER_FIELDS if getattr(e.counters, f) < 0]
    if negative:
        return f"counters must be >= 0 (negative: {', '.join(negative)})"
    if not any(getattr(e.counters, f) for f in _COUNTER_FIELDS):
        return "the event carries no counts; set at least one of " + ", ".join(_COUNTER_FIELDS)
    return ""


def window_start(window_s: float) -> str:
    if not window_s > 0:
        raise InvalidInput(f"window_s must be > 0 seconds (got {window_s}); e.g. 3600 for the last hour")
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=min(window_s, 3650 * 86400))
    return cutoff.isoformat(timespec="milliseconds").replace("+00:00", "Z")
