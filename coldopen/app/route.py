"""Route: the performing videos most like a new one (an indexed video, or an upload processed without being
stored unless asked), fused over its modalities, with its content prior."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from coldopen.app.core import Core
from coldopen.app.ingest import Ingest
from coldopen.app.outlook import Outlook
from coldopen.app.sounds import SoundQueries
from coldopen.app.validation import validate_metadata
from coldopen.domain.errors import InvalidInput, StorageUnavailable
from coldopen.domain.modalities import ALL, CAPTION, SPOKEN, VISUAL
from coldopen.domain.sounds import SoundUse
from coldopen.domain.videos import IngestResult, VideoMetadata
from coldopen.ranking import routing
from coldopen.ranking.coldstart.signals import sound_similarity


class Route:
    def __init__(self, core: Core, ingest: Ingest, sounds: SoundQueries, outlook: Outlook):
        self._core = core
        self._ingest = ingest
        self._sounds = sounds
        self._outlook = outlook

    def route(
        self,
        options: routing.RouteOptions,
        video_id: str | None = None,
        upload: tuple[VideoMetadata, Path, int] | None = None,
        store: bool = False,
        deadline: float | None = None,
    ) -> tuple[routing.RouteResult, IngestResult | None]:
        """Performing neighbours of an indexed video, or of an upload (processed without being stored
        unless `store`). Returns the routing and, for a stored upload, its ingest result."""
        core = self._core
        core.check_count(options.k, "k", "neighbours")
        bad = [m for m in options.weights if m not in ALL]
        if bad:
            raise InvalidInput(f"unknown modality weights {bad}; use {', '.join(ALL)}")
        odd = {m: w for m, w in options.weights.items() if not (math.isfinite(w) and w >= 0)}
        if odd:
            raise InvalidInput(f"modality weights must be finite and at least 0 (got {odd}); give e.g. sound=0.5, "
                               "or none to let the server choose")
        ingested = None
        if upload is not None and store:
            meta, path, size = upload
            ingested = self._ingest.ingest(meta, path, size, deadline=deadline)
            video_id, upload = meta.video_id, None
        query, uses = self._query(video_id, upload, deadline)
        prior_query = self._outlook.query({VISUAL: query.visual, SPOKEN: query.spoken, CAPTION: query.caption}, uses,
                                          query.creator_id, query.exclude_row)
        # the shared sounds' coherence, measured once for the prior and for Route's sound similarity
        coherence: dict[int, float] | None = None
        try:
            coherence = core.priors.sound_coherences(prior_query.sounds)
            prior_query = dataclasses.replace(prior_query, coherence=coherence)
        except StorageUnavailable:  # the prior says so (None); Route's own use below raises it, as before
            pass
        content_prior = self._outlook.live_prior(prior_query)
        sharing = self._sounds.pool_sharing(uses, query.exclude_row)
        if sharing:  # a shared sound counts as its match x how alike its videos perform (coldstart/signals.py)
            if coherence is None:
                coherence = core.priors.sound_coherences(prior_query.sounds)
            query = dataclasses.replace(query, sound_confidence=sound_similarity(sharing, coherence),
                                        shared_sound={r: snd for r, (snd, _) in sharing.items()})
        # Not under the view's lock: the coherences and the weights read the pool's score book, which takes its
        # refresh lock, and a replica's feed thread takes the two the other way round (refresh, then view):
        # holding both here deadlocked a Route against a pool sync (tests/integration/test_replicas.py).
        options = self._weights(options, routing.present(query))
        with core.pool.reading() as view:  # held still against a concurrent engagement batch
            try:
                result = routing.route(view, query, options, performance=core.pool.scores_now)
            except ValueError as e:
                raise InvalidInput(str(e)) from None
        return dataclasses.replace(result, content_prior=content_prior), ingested

    def _query(self, video_id: str | None, upload: tuple[VideoMetadata, Path, int] | None, deadline: float | None
               ) -> tuple[routing.RouteQuery, list[SoundUse]]:
        """What is routed: an indexed video's stored profile and sounds, or what an upload's analysis found."""
        core = self._core
        if video_id is not None:
            row, p = core.profile(video_id)
            assert p.visual is not None  # a profile read with its vectors
            query = routing.RouteQuery(p.visual, p.spoken, p.caption, {}, p.creator_id, exclude_row=row)
            return query, core.store.sounds.uses(video_id)
        assert upload is not None
        meta, path, size = upload
        validate_metadata(meta, core.settings, require_id=False)
        if size == 0:
            raise InvalidInput("the route upload is empty (0 bytes): send a complete video file (API clients: its "
                               "bytes in chunk messages after the query)")
        a = core.pipeline.analyse(meta, path, {}, deadline)
        query = routing.RouteQuery(a.embedding, a.text_embeddings["spoken"], a.text_embeddings["caption"], {},
                                   meta.creator_id)
        return query, self._sounds.query_uses(a.fingerprint, limit=100)

    def _weights(self, options: routing.RouteOptions, present: dict[str, bool]) -> routing.RouteOptions:
        """The request's weights, or (none in the request) the server's: learned from engagement, else from the
        content (--route-weights learned), or the defaults (--route-weights default); and why."""
        if not options.learned:
            given = "the request's weights" if options.weights_basis == "request" else "the defaults (--route-weights default)"
            return dataclasses.replace(options, weights_reason=options.weights_reason or given)
        choice = self._core.priors.route_weights(present)
        return dataclasses.replace(options, weights=choice.weights, weights_basis=choice.basis,
                                   weights_reason=choice.reason)
