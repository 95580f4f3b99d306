"""Sounds as they cross layers: fingerprints, a video's uses of sounds, what it shares with others, and
the sound-id format.

A sound's timeline is counted in fingerprint frames (FRAME_SECONDS each), the hop of the hash format
FINGERPRINT_FORMAT (coldopen/models/fingerprint.py computes them; stored fingerprints and postings of another
format cannot be matched).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from coldopen.domain.errors import InvalidInput

FINGERPRINT_FORMAT = "triplet32-v2"
FRAME_SECONDS = 256 / 16_000  # a fingerprint frame: a hop of 256 samples at 16 kHz

_NONE_U32 = np.zeros(0, np.uint32)
_NONE_I32 = np.zeros(0, np.int32)
_NONE_U16 = np.zeros(0, np.uint16)


@dataclass(frozen=True)
class Fingerprint:
    """A clip's landmark hashes, on both sides of the index.

    ``hashes``/``times`` are the query side (what a lookup sends); ``index_hashes``/``index_times`` the
    sparse index side (what becomes postings when the clip brings new sound). A fingerprint loaded from
    the store carries only the index side, and uses it as its query side too.
    """

    hashes: np.ndarray  # uint32 query-side triplet hashes
    times: np.ndarray   # int32 anchor frame of each
    duration_s: float
    peaks: int
    index_hashes: np.ndarray = dataclasses.field(default_factory=lambda: _NONE_U32)
    index_times: np.ndarray = dataclasses.field(default_factory=lambda: _NONE_I32)
    # Query-side hypotheses (models/fingerprint.py): hash i was computed with a change undone, the clip
    # playing group_scales[groups[i] - 1] times as fast as the sound and its frequencies group_pitches[...]
    # times the sound's (group 0: the clip as it is; empty: every hash is group 0). Its time is still the
    # clip's own frame; the sound's frame is round(time x scale) + offset.
    groups: np.ndarray = dataclasses.field(default_factory=lambda: _NONE_U16)
    group_scales: tuple[float, ...] = ()
    group_pitches: tuple[float, ...] = ()
    plain_groups: int = 0  # groups 1..plain_groups are a few explicit pitch shifts, voted like the clip as it is

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    @property
    def landmarks(self) -> int:
        """Index-side hashes: the postings this clip would add as a new sound."""
        return int(self.index_hashes.shape[0])

    @classmethod
    def stored(cls, hashes: np.ndarray, times: np.ndarray, duration_s: float) -> Fingerprint:
        """A fingerprint read back from its index side (the store keeps only that)."""
        return cls(hashes, times, duration_s, 0, hashes, times)


@dataclass(frozen=True)
class SoundUse:
    """A video's use of a sound: where the sound's timeline meets the video's (sounds/sharing.py).

    A sound frame is round(video frame x scale) + offset; [first, last] is the stretch of the sound's
    timeline the video covers; matched_frames and confidence are the evidence the link rests on (0 frames:
    linked before links kept it). `started`: this video is the one the sound was created from."""

    sound_id: int
    primary: bool
    offset: int
    scale: float
    first: int
    last: int
    matched_frames: int
    confidence: float
    started: bool = False
    pitch: float = 1.0  # the video's frequencies are the sound's x pitch (1: as is; a key change up: > 1)


@dataclass(frozen=True)
class SoundLink:
    """A video's link to its primary sound, and the postings the link adds (sounds/identity.py decides it)."""

    sound_id: int | None     # None: a new sound
    offset: int              # sound frame = round(video frame x scale) + offset
    first: int               # the video's span on the sound's timeline
    last: int
    hashes: np.ndarray       # postings to add: uint32 hashes ...
    times: np.ndarray        # ... at these sound frames
    scale: float = 1.0
    matched_frames: int = 0  # the evidence of the link (a new sound: the clip's own anchor frames)
    confidence: float = 1.0
    pitch: float = 1.0       # the video's frequencies are the sound's x pitch


@dataclass(frozen=True)
class Chunk:
    """Postings one link write added (table sound_chunks): `seq` numbers it, so a chunk read twice counts once."""

    seq: int
    sound: int
    hashes: np.ndarray  # uint32
    times: np.ndarray   # frames on the sound's timeline


@dataclass(frozen=True)
class SoundNeighbour:
    """A video sharing a stretch of sound with the query: where it starts in each, and for how long."""

    video_id: str
    sound_id: int | None
    matched_frames: int
    query_start_s: float
    reference_start_s: float
    duration_s: float
    confidence: float


@dataclass(frozen=True)
class SoundStats:
    sound_id: int
    created_at: str
    first_video: str
    videos: int
    recent_videos: int


SOUND_PREFIX = "snd-"
MAX_SOUND_DIGITS = 18  # sound ids are positive int64 values: at most 18 digits stay below 2^63


def format_sound_id(sound_id: int | None) -> str:
    return f"{SOUND_PREFIX}{sound_id}" if sound_id is not None else ""


def parse_sound_id(text: str) -> int:
    """The number in 'snd-42'. Only ASCII digits count (str.isdigit also takes '²' and Arabic-Indic
    digits, which int() would read as another id), and at most MAX_SOUND_DIGITS of them."""
    digits = text[len(SOUND_PREFIX):] if text.startswith(SOUND_PREFIX) else ""
    if not (0 < len(digits) <= MAX_SOUND_DIGITS and digits.isascii() and digits.isdigit()):
        raise InvalidInput(f"sound_id {text[:40]!r} is invalid: sound ids look like 'snd-42' (as returned by Ingest "
                           f"and ListSounds), with at most {MAX_SOUND_DIGITS} digits")
    return int(digits)
