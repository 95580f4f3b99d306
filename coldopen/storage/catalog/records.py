"""The catalog's own read and write records, and facts every part of it shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from coldopen.domain.engagement import Counters
from coldopen.domain.modalities import CAPTION, SPOKEN, VISUAL

COUNTER_CAP = 2**62

# Text modality -> column holding its sentence embedding; EMBEDDING_COLUMNS adds the CLIP video embedding.
TEXT_COLUMNS = {CAPTION: "caption_embedding", SPOKEN: "transcript_embedding"}
EMBEDDING_COLUMNS = {VISUAL: "embedding", **TEXT_COLUMNS}


@dataclass(frozen=True)
class Profile:
    row: int
    video_id: str
    creator_id: str
    sound_id: int | None
    language: str
    visual: np.ndarray | None  # None: read without vectors (profiles(vectors=False))
    caption: np.ndarray | None
    spoken: np.ndarray | None


class EngagementWrite(NamedTuple):
    accepted: int
    duplicates: int
    rejected: list[tuple[str, str]]    # (event_id, reason)
    added: dict[int, Counters]         # row id -> what the batch added to the counters of the videos it changed
    published: tuple[str, list[int], list[int]] | None = None  # (version, moved, change seqs) of `then`'s moves


class PoolMoves(NamedTuple):
    """A change of the published pool: members that joined or whose score changed, with their scores, and
    rows that left, under a new head (prior, threshold). `ship`: log changes for an external vector store."""
    prior: float
    threshold: float
    scores: dict[int, float]
    left: list[int]
    ship: bool = False


class Written(NamedTuple):
    row: int                  # the video's row id (its vectors' id)
    replaced: bool            # it existed before
    sound_id: int | None
    change: int               # its vector_changes seq (storage/feed.py)


class RowVectors(NamedTuple):
    vectors: dict[str, np.ndarray | None]   # modality -> embedding
    attrs: dict                              # creator, language, sound, in_pool: filter fields of an external store


class Change(NamedTuple):
    seq: int
    row_id: int
    video_id: str
