"""The performs-well pool as dense per-modality matrices: what Route scores with one matrix product per
modality, and what performing-only search reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from coldopen.storage.catalog.records import Profile


class PoolView:
    """The performs-well pool as dense arrays, in an arbitrary but shared row order, changed in place by
    `add` and `remove` (a removed row's slot takes the last row), so a pool update costs what moved,
    not the pool's size. The owner serialises changes with reads (ranking/pool/ holds a lock)."""

    def __init__(self, visual_dim: int, text_dim: int):
        self._n = 0
        self._rows = np.zeros(0, np.int64)
        self._sounds = np.zeros(0, np.int64)       # sound id, -1 for none
        self._scores = np.zeros(0, np.float64)     # performance scores as published
        self._visual = np.zeros((0, visual_dim), np.float32)
        self._spoken = np.zeros((0, text_dim), np.float32)   # zero rows where there is no transcript
        self._caption = np.zeros((0, text_dim), np.float32)  # zero rows where there is no caption
        self._has_spoken = np.zeros(0, bool)
        self._has_caption = np.zeros(0, bool)
        self.video_ids: list[str] = []
        self.creators: list[str] = []
        self.languages: list[str] = []
        self._at: dict[int, int] = {}              # row -> slot

    @classmethod
    def build(cls, profiles: Sequence[Profile], scores: dict[int, float], visual_dim: int, text_dim: int) -> PoolView:
        view = cls(visual_dim, text_dim)
        view.add(profiles, scores)
        return view

    rows = property(lambda self: self._rows[: self._n])
    sounds = property(lambda self: self._sounds[: self._n])
    scores = property(lambda self: self._scores[: self._n])
    visual = property(lambda self: self._visual[: self._n])
    spoken = property(lambda self: self._spoken[: self._n])
    caption = property(lambda self: self._caption[: self._n])

    def __len__(self) -> int:
        return self._n

    def __contains__(self, row: int) -> bool:
        return int(row) in self._at

    def has(self, modality: str) -> np.ndarray:
        """Which members have this modality (visual: all; spoken, caption: a non-zero row)."""
        if modality == "visual":
            return np.ones(self._n, bool)
        return (self._has_spoken if modality == "spoken" else self._has_caption)[: self._n]

    def add(self, profiles: Sequence[Profile], scores: dict[int, float], vectors: dict[str, np.ndarray] | None = None) -> None:
        """Add (or refresh) members from their profiles; `vectors`: their (n, dim) embeddings per modality
        (zero rows where absent) when the profiles were read without them."""
        if not profiles:
            return
        if vectors is None:
            vectors = {m: np.stack([getattr(p, m) if getattr(p, m) is not None else np.zeros(a.shape[1], np.float32)
                                    for p in profiles]) for m, a in (("visual", self._visual), ("spoken", self._spoken),
                                                                     ("caption", self._caption))}
        self.add_columns([int(p.row) for p in profiles], [p.video_id for p in profiles], [p.creator_id for p in profiles],
                         [p.language for p in profiles],
                         [p.sound_id if p.sound_id is not None else -1 for p in profiles], scores, vectors)

    def add_columns(self, rows: list[int], video_ids: list[str], creators: list[str], languages: list[str],
                    sounds: Sequence[int], scores: dict[int, float], vectors: dict[str, np.ndarray]) -> None:
        """`add` from columns (sound -1: none): no object per member (a start adds ~10^5 members at once)."""
        if not len(rows):
            return
        self.remove([r for r in rows if r in self._at])
        n, m = self._n, len(rows)
        if n + m > len(self._rows):
            # headroom: growing copies every member's vectors (~1 s for 180k) under the pool's lock
            cap = max(n + m + (n + m) // 8, len(self._rows) * 3 // 2, 64)
            for name in ("_rows", "_sounds", "_scores", "_visual", "_spoken", "_caption", "_has_spoken", "_has_caption"):
                a = getattr(self, name)
                grown = np.zeros((cap, *a.shape[1:]), a.dtype)
                grown[:n] = a[:n]
                setattr(self, name, grown)
        self._rows[n : n + m] = rows
        self._sounds[n : n + m] = sounds
        self._scores[n : n + m] = [scores.get(r, 0.0) for r in rows]
        self._visual[n : n + m] = vectors["visual"]
        self._spoken[n : n + m] = vectors["spoken"]
        self._caption[n : n + m] = vectors["caption"]
        self._has_spoken[n : n + m] = np.any(vectors["spoken"] != 0, axis=1)
        self._has_caption[n : n + m] = np.any(vectors["caption"] != 0, axis=1)
        self.video_ids += video_ids
        self.creators += creators
        self.languages += languages
        self._at.update(zip(rows, range(n, n + m)))
        self._n = n + m

    def remove(self, rows: Iterable[int]) -> None:
        for row in rows:
            i = self._at.pop(int(row), None)
            if i is None:
                continue
            last = self._n - 1
            if i != last:
                for a in (self._rows, self._sounds, self._scores, self._visual, self._spoken, self._caption,
                          self._has_spoken, self._has_caption):
                    a[i] = a[last]
                for names in (self.video_ids, self.creators, self.languages):
                    names[i] = names[last]
                self._at[int(self._rows[i])] = i
            for names in (self.video_ids, self.creators, self.languages):
                names.pop()
            self._n = last

    def set_scores(self, scores: dict[int, float]) -> None:
        for row, score in scores.items():
            i = self._at.get(int(row))
            if i is not None:
                self._scores[i] = score
