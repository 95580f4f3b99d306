"""The cold-start loop for one video: its content prior (stored with it, or computed now), its posterior,
and the rollout decision (ranking/coldstart/)."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timezone

import numpy as np

from coldopen.app.core import Core
from coldopen.domain.engagement import Performance
from coldopen.domain.errors import InvalidInput, StorageUnavailable
from coldopen.domain.modalities import CAPTION, SPOKEN, VISUAL
from coldopen.domain.outlook import Prior
from coldopen.domain.sounds import SoundUse
from coldopen.domain.videos import VideoMetadata
from coldopen.ranking import scores
from coldopen.ranking.coldstart import posterior, rollout
from coldopen.ranking.coldstart.prior import MIN_CALIBRATION
from coldopen.ranking.coldstart.signals import PriorQuery
from coldopen.storage.catalog import Profile

log = logging.getLogger(__name__)
PRIOR_WEIGHT_CAP = 10  # a stored content prior weighs at most this many times prior_impressions


class Outlook:
    def __init__(self, core: Core):
        self._core = core

    def outlook(self, video_id: str) -> Performance:
        """An indexed video's performance with its content prior and posterior."""
        row, profile = self._core.profile(video_id)
        return self.of(row, profile)

    def query(self, vectors: dict[str, np.ndarray | None], uses: list[SoundUse], creator: str, exclude: int | None
              ) -> PriorQuery:
        """What a content prior is asked about: the video's vectors, the stored videos sharing a stretch of a
        sound with it (through its uses of sounds), its creator; `exclude`: its own row, if stored."""
        sharers = self._core.relations.sharers_of(uses, exclude_row=exclude)
        return PriorQuery(vectors, sharers, creator, exclude)

    def live_prior(self, query: PriorQuery) -> Prior | None:
        """The content prior computed now; None (logged) while the vector store it searches is unavailable, so
        Route and GetVideo keep answering from what they hold."""
        try:
            return self._core.priors.prior(query)
        except StorageUnavailable as e:
            log.warning("content prior unavailable: %s", e)
            return None

    def to_store(self, vectors: dict[str, np.ndarray | None], uses: list[SoundUse], meta: VideoMetadata
                 ) -> tuple[float, float, str] | None:
        """(prior rate, its weight in impressions, the prior as JSON) to store with a video: what its score
        smooths toward. None while the pool is still loading at start (ingests do not wait for it) and while
        the prior is not calibrated (too few engaged videos): the score then smooths toward the corpus mean."""
        core = self._core
        if not core.pool.wait_ready(0) or core.priors.calibration()[0].samples < MIN_CALIBRATION:
            return None
        try:  # a re-ingest is not its own neighbour
            p = core.priors.prior(self.query(vectors, uses, meta.creator_id, core.store.videos.row_id(meta.video_id)))
        except StorageUnavailable as e:  # the vector store is down: the video is still stored (and shipped later)
            log.warning("no content prior stored for this ingest: %s", e)
            return None
        if not p.calibrated:
            return None
        shape, rate = p.gamma()
        weight = min(rate, PRIOR_WEIGHT_CAP * core.settings.prior_impressions)  # never outweighs 10x the usual smoothing
        return shape / rate, weight, json.dumps(dataclasses.asdict(p))

    def of(self, row: int, profile: Profile) -> Performance:
        """Performance with the content prior (as stored with the video, else computed now) and posterior."""
        core = self._core
        perf = core.pool.performance(row)
        stored = core.store.engagement.stored_prior(row)
        if stored is not None and stored[2]:
            content_prior = Prior.from_json(stored[2])
        else:
            vectors = {VISUAL: profile.visual, SPOKEN: profile.spoken, CAPTION: profile.caption}
            found = self.live_prior(self.query(vectors, core.store.sounds.uses(profile.video_id), profile.creator_id, row))
            if found is None:  # the vector store is down: counters and score only
                return perf
            content_prior = found
        c = perf.counters
        # its rate against the threshold, both decayed to now
        threshold = perf.pool_threshold / max(scores.decay(c, core.settings, datetime.now(timezone.utc)), 1e-300)
        shape, rate = content_prior.gamma()
        if stored is not None:  # the weight the score uses (capped)
            shape, rate = stored[0] * stored[1], stored[1]
        post = posterior.posterior(shape, rate, scores.weighted(c, core.settings), float(c.impressions), threshold)
        return dataclasses.replace(perf, content_prior=content_prior, posterior=post)

    def rollout(self, video_id: str, audience: int = 0) -> tuple[rollout.Decision, Performance]:
        """WIDEN, HOLD or STOP for a video in its rollout (ranking/coldstart/rollout.py)."""
        if audience < 0:
            raise InvalidInput(f"audience must be >= 0 impressions (got {audience}); 0 = the tier its impressions reached")
        perf = self.outlook(video_id)
        if perf.posterior is None:
            raise StorageUnavailable(
                f"video {video_id!r} has no stored content prior and the vector store its prior is computed from is "
                f"unavailable; retry when it is back")
        s = self._core.settings
        decision = rollout.decide(perf.posterior, int(perf.counters.impressions), s.tiers(), audience, s.rollout_widen_at,
                                  s.rollout_stop_below, s.rollout_min_impressions)
        return decision, perf
