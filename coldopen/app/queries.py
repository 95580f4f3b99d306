"""Search (nearest neighbours by video, text or embedding), GetVideo, and engagement batches."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np

from coldopen.app.core import Core
from coldopen.app.outlook import Outlook
from coldopen.app.validation import check_event
from coldopen.domain.engagement import EngagementEvent, EngagementResult
from coldopen.domain.errors import InvalidInput, NotFound
from coldopen.domain.modalities import EMBEDDED, VISUAL
from coldopen.domain.videos import MAX_TEXT_CHARS, Neighbour, SearchQuery, SearchResult, VideoRecord, validate_video_id

log = logging.getLogger(__name__)


class Queries:
    def __init__(self, core: Core, outlook: Outlook):
        self._core = core
        self._outlook = outlook
        self._engagement_lock = threading.Lock()

    def search(self, query: SearchQuery) -> SearchResult:
        core = self._core
        k = core.check_count(query.k or 10, "k", "neighbours")
        target = query.target
        if target not in core.indexes:
            raise InvalidInput(f"target {target!r} is unknown; use {', '.join(EMBEDDED)}")
        model_name = core.models.clip.name if target == VISUAL else core.models.text.name
        vector, exclude = self._query_vector(query, model_name)
        index = core.indexes[target]
        search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
        if index.shared:  # one store for every replica: it filters on its pool-membership field
            size = len(core.pool) if query.performing_only else len(index)

            def search(q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
                return index.search(q, n, performing_only=query.performing_only)  # type: ignore[call-arg]
        else:  # in process: the pool has its own indexes
            local = core.pool.index(target) if query.performing_only else index
            size, search = len(local), local.search
        fetch = min(k + (1 if exclude is not None else 0), max(size, 1))
        scores, ids = search(vector[None, :], fetch)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and i != exclude][:k]
        info = core.store.videos.summaries([i for i, _ in hits])
        neighbours = [
            Neighbour(video_id=info[i][0], score=s, creator_id=info[i][1], caption=info[i][2], duration_s=info[i][3])
            for i, s in hits
            if i in info  # deleted between the index lookup and this read
        ]
        return SearchResult(neighbours, model_name, size)

    def _query_vector(self, query: SearchQuery, model_name: str) -> tuple[np.ndarray, int | None]:
        """The vector a search looks for, and the row it must not return (the query video itself)."""
        core, target = self._core, query.target
        if sum(q is not None for q in (query.video_id, query.text, query.embedding)) != 1:
            raise InvalidInput("a search needs exactly one of video_id, text or embedding")
        if query.video_id is not None:
            validate_video_id(query.video_id)
            exclude = core.store.videos.row_id(query.video_id)
            if exclude is None:
                raise NotFound(f"video {query.video_id!r} is not indexed; ingest it first or check the id")
            vector = core.store.videos.embedding(query.video_id, target)
            if vector is None:
                what = "speech" if target == "spoken" else "caption or hashtags"
                raise InvalidInput(f"video {query.video_id!r} has no {what}, so it cannot be searched by target {target}")
            return vector, exclude
        if query.text is not None:
            text = query.text.strip()
            if not text:
                raise InvalidInput("text query is empty; send a few words describing what to find")
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidInput(f"text query is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
            embed = core.models.clip.embed_texts if target == VISUAL else core.models.text.embed
            return embed([text])[0], None
        dim = core.models.dims()[target]
        vector = np.asarray(query.embedding, dtype=np.float32).reshape(-1)
        if vector.shape[0] != dim:
            raise InvalidInput(
                f"embedding has {vector.shape[0]} values but the {target} index holds {dim}-d {model_name} embeddings"
            )
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidInput("embedding must be finite and non-zero")
        return vector / norm, None

    def get(self, video_id: str, include_embeddings: bool = False) -> VideoRecord:
        core = self._core
        validate_video_id(video_id)
        record = core.store.videos.get(video_id, include_embeddings)
        row = core.store.videos.row_id(video_id)
        if record is None or row is None:
            raise NotFound(f"video {video_id!r} is not indexed; ingest it first or check the id")
        profiles = core.store.videos.profiles([row])
        performance = self._outlook.of(row, profiles[0]) if profiles else core.pool.performance(row)
        return dataclasses.replace(record, performance=performance)

    def record_engagement(self, events: list[EngagementEvent]) -> EngagementResult:
        """Validate every event, then add the valid ones' counters (idempotently per event id) in one
        transaction, then refresh scores and the pool. Nothing invalid is ever stored."""
        core = self._core
        now = datetime.now(timezone.utc)
        valid, rejected = [], []
        for e in events:
            checked, problem = check_event(e, core.settings, now)
            if checked is None:
                rejected.append((e.event_id, problem))
            else:
                valid.append(checked)
        with self._engagement_lock:  # the pool gets batches' counters in commit order
            accepted, duplicates, unknown, *_ = core.pool.record(valid)
        log.info("engagement accepted=%d duplicates=%d rejected=%d pool=%d", accepted, duplicates,
                 len(rejected) + len(unknown), len(core.pool))
        return EngagementResult(accepted, duplicates, rejected + unknown, len(core.pool), core.pool.threshold)
