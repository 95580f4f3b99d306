"""How values are stored in the catalog's columns, in one place: vectors as blobs, fingerprints, stage
timings, counters, sound chunks and links. Readers are lenient: a value an older version wrote still reads."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

from coldopen.domain.engagement import Counters
from coldopen.domain.sounds import Chunk, Fingerprint, SoundLink, SoundUse
from coldopen.domain.videos import Extraction, VideoMetadata
from coldopen.storage import schema as s
from coldopen.storage.catalog.records import COUNTER_CAP


def blob(v: np.ndarray, dtype=np.float32) -> bytes:
    return np.ascontiguousarray(v, dtype=dtype).tobytes()


def frame_vector(blob: bytes, dim: int) -> np.ndarray:
    """A stored frame embedding as float32: fp16 blobs are 2 bytes per value, fp32 ones (older rows, or
    --frame-embeddings fp32) 4."""
    return np.frombuffer(blob, dtype=np.float16 if len(blob) == 2 * dim else np.float32).astype(np.float32)


def fingerprint_blob(fp: Fingerprint) -> bytes:
    """The index side of a fingerprint (the query side is recomputed from audio, never stored)."""
    return (
        np.concatenate([fp.index_hashes.astype(np.uint32).view(np.int32), fp.index_times.astype(np.int32)]).tobytes()
        + np.float32(fp.duration_s).tobytes()
    )


def fingerprint_from_blob(blob: bytes) -> Fingerprint:
    data = np.frombuffer(blob[:-4], dtype=np.int32)
    n = data.shape[0] // 2
    return Fingerprint.stored(
        data[:n].view(np.uint32).copy(), data[n:].copy(), float(np.frombuffer(blob[-4:], dtype=np.float32)[0])
    )


def timings_json(e: Extraction) -> str:
    """A video's stage timings as stored: stage -> ms, with the model stages' queue waits and batch sizes."""
    return json.dumps({**e.timings_ms, "queue_wait": e.queue_wait_ms, "batches": e.batch_sizes})


_LEGACY_BATCHES = {"clip_batch": "embed_frames", "whisper_batch": "transcribe"}  # stored as stages before issue 28


def timings_from_json(text: str) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(stage -> ms, model stage -> queue wait in ms, model stage -> mean batch size), from `timings_json`."""
    stored = json.loads(text)
    waits, batches = stored.pop("queue_wait", {}), stored.pop("batches", {})
    for key, stage in _LEGACY_BATCHES.items():
        if key in stored:
            batches.setdefault(stage, stored.pop(key))
    return stored, waits, batches


def counters_of(values) -> Counters:
    """Stored counters as the API's types, whatever an older version left: counts that overflowed into
    floats are clamped into int64, non-finite or NULL values read as 0."""

    def count(v) -> int:
        v = float(v or 0)
        return int(min(max(v, 0.0), COUNTER_CAP)) if math.isfinite(v) else 0

    impressions, plays, completions, watch, likes, comments, shares, follows, last = values
    counts = (impressions, plays, completions, likes, comments, shares, follows)
    # what this version writes: nothing to clean (the common case, ~3x cheaper). SQLite hands back a REAL
    # that holds a whole number (the sum of whole watch seconds) as an int.
    if all(type(v) is int and 0 <= v <= COUNTER_CAP for v in counts) and type(watch) in (float, int) and math.isfinite(watch):
        return Counters(impressions, plays, completions, float(watch), likes, comments, shares, follows, str(last or ""))
    watch = float(watch or 0.0)
    return Counters(
        count(impressions),
        count(plays),
        count(completions),
        watch if math.isfinite(watch) else 0.0,
        count(likes),
        count(comments),
        count(shares),
        count(follows),
        str(last or ""),
    )


def chunk_of(row) -> Chunk:
    """A sound_chunks row (seq, sound, hashes, times, ...) as a Chunk."""
    return Chunk(
        int(row[0]), int(row[1]), np.frombuffer(row[2], "<u4").astype(np.uint32), np.frombuffer(row[3], "<i4").astype(np.int32)
    )


USE_COLUMNS = tuple(
    getattr(s.sound_links.c, n)
    for n in ("sound_id", "is_primary", "sound_offset", "scale", "first_frame", "last_frame", "matched_frames", "confidence",
              "pitch")
)


def use_of(values, started: bool) -> SoundUse:
    sound, primary, offset, scale, first, last, frames, confidence, pitch = values
    return SoundUse(
        int(sound),
        bool(primary),
        int(offset),
        float(scale),
        int(first),
        int(last),
        int(frames),
        float(confidence),
        started=bool(started),
        pitch=float(pitch),
    )


def link_row(video_id: str, sound_id: int, link: SoundLink) -> dict:
    return dict(
        video_id=video_id,
        sound_id=sound_id,
        is_primary=True,
        sound_offset=link.offset,
        scale=link.scale,
        first_frame=link.first,
        last_frame=link.last,
        matched_frames=link.matched_frames,
        confidence=link.confidence,
        pitch=link.pitch,
    )


def use_row(video_id: str, u: SoundUse) -> dict:
    return dict(
        video_id=video_id,
        sound_id=u.sound_id,
        is_primary=False,
        sound_offset=u.offset,
        scale=u.scale,
        first_frame=u.first,
        last_frame=u.last,
        matched_frames=u.matched_frames,
        confidence=u.confidence,
        pitch=u.pitch,
    )


def video_row(meta: VideoMetadata, extraction: Extraction, embedding: np.ndarray, fingerprint: Fingerprint | None,
              text: dict[str, np.ndarray | None], prior: tuple[float, float, str] | None, now: str) -> dict[str, Any]:
    """A video's columns as stored (all but its ids and sound)."""
    return {
        **meta_columns(meta),
        **extraction_columns(extraction, now),
        **vector_columns(embedding, text.get("caption"), text.get("spoken")),
        "fingerprint": fingerprint_blob(fingerprint) if fingerprint is not None and fingerprint.landmarks else None,
        "prior_rate": prior[0] if prior is not None else None,
        "prior_weight": prior[1] if prior is not None else None,
        "content_prior": prior[2] if prior is not None else None,
    }


def meta_columns(meta: VideoMetadata) -> dict[str, Any]:
    return dict(creator_id=meta.creator_id, caption=meta.caption, hashtags=json.dumps(list(meta.hashtags)),
                language_hint=meta.language_hint)


def extraction_columns(extraction: Extraction, now: str) -> dict[str, Any]:
    """The columns of what the pipeline extracted, other than vectors."""
    return dict(
        language=extraction.transcript.language or "",
        media=json.dumps(dataclasses.asdict(extraction.media)),
        frames_sampled=extraction.frames_sampled,
        frames_skipped=extraction.frames_skipped,
        sampling=extraction.sampling,
        embedding_model=extraction.embedding_model,
        transcript=json.dumps(dataclasses.asdict(extraction.transcript)),
        timings=timings_json(extraction),
        ingested_at=now,
    )


def vector_columns(embedding: np.ndarray, caption: np.ndarray | None, spoken: np.ndarray | None) -> dict[str, Any]:
    return dict(
        embedding=blob(embedding),
        caption_embedding=blob(caption) if caption is not None else None,
        transcript_embedding=blob(spoken) if spoken is not None else None,
    )
