"""Validation of caller-supplied ids, metadata and engagement events, and the sound-id format.

Pure functions: they raise InvalidInput (or return a reason) with a message saying what to fix."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import datetime, timedelta, timezone

from coldopen.config.settings import Settings
from coldopen.domain.engagement import COUNTER_NAMES, EngagementEvent
from coldopen.domain.errors import InvalidInput
from coldopen.domain.timing import utc_text
from coldopen.domain.videos import VIDEO_ID, VideoMetadata, validate_video_id


def validate_metadata(meta: VideoMetadata, settings: Settings, require_id: bool = True) -> VideoMetadata:
    """Check an upload's metadata against the configured limits; each refusal names the setting it enforces."""
    if require_id or meta.video_id:
        validate_video_id(meta.video_id)
    checks = (
        (len(meta.creator_id), settings.max_creator_id_chars, "creator_id", "characters", "max_creator_id_chars"),
        (len(meta.caption), settings.max_caption_chars, "caption", "characters", "max_caption_chars"),
        (len(meta.hashtags), settings.max_hashtags, "the video", "hashtags", "max_hashtags"),
    )
    for size, limit, what, unit, setting in checks:
        if size > limit:
            raise InvalidInput(f"{what} has {size} {unit}; the limit is {limit} ({setting}): shorten it", limit=setting)
    for tag in meta.hashtags:
        if len(tag) > settings.max_hashtag_chars:
            raise InvalidInput(
                f"hashtag {tag[:40]!r}... has {len(tag)} characters; the limit is {settings.max_hashtag_chars} "
                f"(max_hashtag_chars): shorten it",
                limit="max_hashtag_chars",
            )
    if meta.creator_id and not meta.creator_id.isprintable():
        raise InvalidInput("creator_id has control characters; use printable text")
    if meta.language_hint and not re.fullmatch(r"[a-z]{2,3}", meta.language_hint):
        raise InvalidInput(
            f"language_hint {meta.language_hint[:20]!r} is not an ISO 639-1 code such as 'en'; leave it empty to detect"
        )
    return meta




def parse_event_time(text: str) -> datetime:
    """An RFC 3339 time with a zone; ValueError (with what to send instead) otherwise."""
    if not _RFC3339.match(text):
        raise ValueError(f"at {text[:40]!r} is not an RFC 3339 time with a zone, such as 2026-11-23T10:00:00Z")
    t = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    if t.tzinfo is None:  # the pattern requires a zone; this is belt and braces
        raise ValueError(f"at {text[:40]!r} has no time zone; add Z or an offset such as +02:00")
    return t


# utc_text's format: a time in it is stored as sent
_CANONICAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def check_event(e: EngagementEvent, settings: Settings, now: datetime) -> tuple[EngagementEvent | None, str]:
    """(the event with `at` normalised to UTC, "") or (None, why it is rejected). Nothing is stored before this."""
    if not e.event_id:
        return None, "event_id is missing; give every event a unique id so retries are counted once"
    if len(e.event_id) > 256 or not e.event_id.isprintable():
        return None, "event_id must be at most 256 printable characters"
    if not e.video_id or not VIDEO_ID.match(e.video_id):
        return None, f"video_id {e.video_id[:40]!r} is missing or invalid"
    at = e.at or utc_text(now)
    canonical = _CANONICAL.match(at)  # already what is stored (most senders): no re-formatting
    try:
        when = datetime.fromisoformat(at[:-1] + "+00:00") if canonical else parse_event_time(at)
    except ValueError as err:
        return None, str(err)
    ahead = (when - now).total_seconds()
    if ahead > settings.max_event_future_s:
        return None, (
            f"at {at} is {ahead:.0f} s ahead of the server's clock; at most {settings.max_event_future_s:.0f} s "
            f"is allowed (max_event_future_s): check the sender's clock"
        )
    if when.year < 2000:
        return None, f"at {at} is before the year 2000; send the time the engagement happened"
    c = e.counters
    values = (c.impressions, c.plays, c.completions, c.watch_time_s, c.likes, c.comments, c.shares, c.follows)
    if not all(0 <= v <= settings.max_event_count for v in values):  # also False for NaN
        named = dict(zip(COUNTER_NAMES, values))
        bad = [f for f, v in named.items() if not math.isfinite(v)]
        if bad:
            return None, f"counters must be finite numbers (not NaN or infinity: {', '.join(bad)})"
        negative = [f for f, v in named.items() if v < 0]
        if negative:
            return None, f"counters must be >= 0 (negative: {', '.join(negative)})"
        huge = [f for f, v in named.items() if v > settings.max_event_count]
        return None, (
            f"counters over {settings.max_event_count:g} per event (max_event_count): {', '.join(huge)}; "
            f"split the counts over several events"
        )
    if not any(values):
        return None, "the event carries no counts; set at least one of " + ", ".join(COUNTER_NAMES)
    return (e if canonical and e.at else dataclasses.replace(e, at=utc_text(when))), ""


def window_start(window_s: float) -> str:
    if not window_s > 0:
        raise InvalidInput(f"window_s must be > 0 seconds (got {window_s}); e.g. 3600 for the last hour")
    return utc_text(datetime.now(timezone.utc) - timedelta(seconds=min(window_s, 3650 * 86400)))
