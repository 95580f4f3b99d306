"""The content prior's neighbours: stored videos with enough impressions that resemble a query in any
signal (the nearest of each vector modality, those sharing a sound, the creator's own), and every
signal's similarity to each of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from coldopen.config.settings import Settings
from coldopen.domain.modalities import CREATOR, EMBEDDED, SIGNALS, SOUND
from coldopen.ranking.coldstart.signals import (
    CORROBORATING,
    Baseline,
    PriorQuery,
    Relations,
    coherences,
    sound_similarity,
)

if TYPE_CHECKING:
    from coldopen.storage.vectors import VectorIndex

Rates = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
NEIGHBOUR_K = 4  # nearest neighbours whose likeness is the top of the corroborating scale


@dataclass(frozen=True)
class Found:
    rows: np.ndarray                 # candidates with enough impressions, sorted
    log_scores: np.ndarray
    sims: dict[str, np.ndarray]      # signal -> similarity to each candidate (0: none)
    creator_rows: int = 0            # the creator's engaged videos among them


class Neighbours:
    def __init__(self, settings: Settings, indexes: Mapping[str, VectorIndex],
                 vectors: Callable[[np.ndarray], dict[str, np.ndarray]], rates: Rates, relations: Relations | None):
        self._s = settings
        self._indexes = indexes
        self._vectors = vectors
        self._rates = rates
        self.relations = relations

    def find(self, queries: Sequence[PriorQuery], corpus_log_var: float, baselines: dict[str, Baseline] | None = None
             ) -> list[Found]:
        """Per query: its candidates and every signal's similarity to them. The vector modalities' candidates
        are searched in one batch per index and their vectors read once for all queries (they overlap)."""
        by_creator = self._creator_rows([q.creator for q in queries])
        found = self._search(queries)
        for i, q in enumerate(queries):
            found[i].update(q.sounds)
            found[i].update(int(r) for r in by_creator.get(q.creator, ()))
            found[i].discard(q.exclude if q.exclude is not None else -1)
        kept = []
        for candidates in found:
            arr = np.array(sorted(candidates), np.int64)
            rates, imp = self._rates(arr)
            keep = (imp >= self._s.prior_min_impressions) & (rates > 0)
            kept.append((arr[keep], np.log(rates[keep])))
        sharers = {r for q in queries for r in q.sounds}
        union = np.unique(np.concatenate([r for r, _ in kept] + [np.array(sorted(sharers), np.int64)]))
        vectors = self._vectors(union) if len(union) else {}
        logs = {int(r): y for rows_, ys in kept for r, y in zip(rows_.tolist(), ys.tolist())}
        corroborating = {int(r): {m: vectors[m][i] for m in CORROBORATING if m in vectors}
                         for i, r in enumerate(union.tolist()) if r in sharers}
        out = []
        for q, (r, ys) in zip(queries, kept):
            at = np.searchsorted(union, r)
            sims = {m: vectors[m][at] @ v if (v := q.vectors.get(m)) is not None and len(r) else np.zeros(len(r))
                    for m in EMBEDDED}
            coherent = (q.coherence if q.coherence is not None
                        else coherences(q.sounds, logs, corpus_log_var, corroborating, baselines) if q.sounds else {})
            sound = sound_similarity(q.sounds, coherent)
            sims[SOUND] = np.array([sound.get(int(x), 0.0) for x in r])
            own = set(int(x) for x in by_creator.get(q.creator, ()))
            sims[CREATOR] = np.array([1.0 if int(x) in own else 0.0 for x in r])
            out.append(Found(r, ys, {m: sims[m] for m in SIGNALS}, int(sims[CREATOR].sum())))
        return out

    def baselines(self, held: np.ndarray, vectors: dict[str, np.ndarray]) -> dict[str, Baseline]:
        """How alike random pairs of these videos are in each corroborating modality, and how alike each is
        with its NEIGHBOUR_K nearest neighbours."""
        out = {}
        for m in CORROBORATING:
            index = self._indexes.get(m)
            v = vectors.get(m)
            if index is None or v is None or len(index) <= NEIGHBOUR_K:
                continue
            have = v[np.any(v != 0, axis=1)]
            if len(have) < 3:
                continue
            pairs = have @ have.T
            random_pair = float((pairs.sum() - np.trace(pairs)) / (len(have) * (len(have) - 1)))
            sims, ids = index.search(have.astype(np.float32), NEIGHBOUR_K + 1)
            neighbour = float(np.mean(np.sort(np.where(ids >= 0, sims, -np.inf), axis=1)[:, ::-1][:, 1 : NEIGHBOUR_K + 1]))
            out[m] = Baseline(random_pair, neighbour)
        return out

    def _search(self, queries: Sequence[PriorQuery]) -> list[set[int]]:
        found: list[set[int]] = [set() for _ in queries]
        for m in EMBEDDED:
            index = self._indexes.get(m)
            have = [i for i, q in enumerate(queries) if q.vectors.get(m) is not None]
            if index is None or not have or len(index) == 0:
                continue
            k = min(self._s.prior_candidates + 1, len(index))
            _, ids = index.search(np.stack([v for i in have if (v := queries[i].vectors[m]) is not None]).astype(np.float32), k)
            for i, row_ids in zip(have, ids):
                found[i].update(int(x) for x in row_ids if x >= 0)
        return found

    def _creator_rows(self, creators: Sequence[str]) -> dict[str, np.ndarray]:
        named = sorted({c for c in creators if c})
        if self.relations is None or not named:
            return {}
        return self.relations.creator_rows(named)

    def held_out_queries(self, held: np.ndarray, vectors: dict[str, np.ndarray]) -> list[PriorQuery]:
        """Stored videos as queries: their vectors, the sounds they share, their creator; each excluded from
        its own neighbours."""
        sharers = self.relations.sound_sharers(held.tolist()) if self.relations is not None else [{} for _ in held]
        creators = self.relations.creators(held.tolist()) if self.relations is not None else ["" for _ in held]
        return [
            PriorQuery({m: (vectors[m][i] if np.any(vectors[m][i]) else None) for m in EMBEDDED}, sharers[i], creators[i],
                       exclude=int(row))
            for i, row in enumerate(held)
        ]
