"""Protobuf <-> the domain's dataclasses, at the API boundary: every conversion in one place."""

from __future__ import annotations

import math

import numpy as np

from coldopen.domain.engagement import COUNTER_NAMES, Counters, EngagementEvent, Performance
from coldopen.domain.modalities import SIGNALS
from coldopen.domain.outlook import Posterior, Prior
from coldopen.domain.sounds import SoundNeighbour, SoundStats, SoundUse, format_sound_id
from coldopen.domain.videos import Extraction, IngestResult, SearchQuery, SearchResult, VideoMetadata, VideoRecord
from coldopen.ranking.coldstart.rollout import Decision
from coldopen.ranking.routing import RouteOptions, RouteResult
from coldopen.ranking.weights import DEFAULT_WEIGHTS
from coldopen.sounds import sharing
from coldopen.v1 import coldopen_pb2 as pb


def event_from_pb(e: pb.EngagementEvent) -> EngagementEvent:
    counters = Counters(**{name: getattr(e, name) for name in COUNTER_NAMES})
    return EngagementEvent(event_id=e.event_id, video_id=e.video_id, counters=counters, at=e.at)


def sound_match_to_pb(m: SoundNeighbour) -> pb.SoundMatch:
    return pb.SoundMatch(
        video_id=m.video_id,
        sound_id=format_sound_id(m.sound_id),
        matched_frames=m.matched_frames,
        query_start_s=m.query_start_s,
        reference_start_s=m.reference_start_s,
        duration_s=m.duration_s,
        confidence=m.confidence,
    )


def sound_to_pb(s: SoundStats, window_s: float, recent: list[str] | None = None) -> pb.Sound:
    return pb.Sound(
        sound_id=format_sound_id(s.sound_id),
        created_at=s.created_at,
        first_video_id=s.first_video,
        video_count=s.videos,
        recent_video_count=s.recent_videos,
        window_s=window_s,
        recent_video_ids=recent or [],
    )


def metadata_from_pb(m: pb.VideoMetadata) -> VideoMetadata:
    return VideoMetadata(
        video_id=m.video_id,
        creator_id=m.creator_id,
        caption=m.caption,
        hashtags=tuple(h.lstrip("#") for h in m.hashtags if h.strip("# ")),
        language_hint=m.language_hint.strip().lower(),
        filename=m.filename,
    )


def extraction_to_pb(e: Extraction) -> pb.Extraction:
    t = e.transcript
    return pb.Extraction(
        media=pb.MediaInfo(**e.media.__dict__),
        frames_sampled=e.frames_sampled,
        frames_skipped=e.frames_skipped,
        embedding_model=e.embedding_model,
        embedding_dim=e.embedding_dim,
        transcript=pb.Transcript(
            text=t.text,
            language=t.language,
            language_probability=t.language_probability,
            model=t.model,
            segments=[pb.TranscriptSegment(**s.__dict__) for s in t.segments],
        ),
        timings=[pb.StageTiming(stage=k, ms=v) for k, v in e.timings_ms.items()],
        sound_id=format_sound_id(e.sound_id),
        landmarks=e.landmarks,
        sampling=e.sampling,
        new_sound=e.new_sound,
        sounds=[sound_use_to_pb(u) for u in e.sounds],
        queue_wait=[pb.StageTiming(stage=k, ms=v) for k, v in e.queue_wait_ms.items()],
        batches=[pb.BatchSize(stage=k, mean=v) for k, v in e.batch_sizes.items()],
    )


def sound_use_to_pb(u: SoundUse) -> pb.SoundUse:
    start_s, sound_start_s, duration_s = sharing.times(u)
    return pb.SoundUse(
        sound_id=format_sound_id(u.sound_id),
        primary=u.primary,
        started=u.started,
        start_s=start_s,
        sound_start_s=sound_start_s,
        duration_s=duration_s,
        speed=u.scale,
        matched_frames=u.matched_frames,
        confidence=u.confidence,
        pitch_semitones=round(12 * math.log2(u.pitch), 3),
    )


def ingest_result_to_pb(r: IngestResult) -> pb.IngestResponse:
    return pb.IngestResponse(
        video_id=r.video_id,
        replaced=r.replaced,
        bytes_received=r.bytes_received,
        extraction=extraction_to_pb(r.extraction),
        new_sound=r.new_sound,
        sound_matches=[sound_match_to_pb(m) for m in r.sound_matches],
        vectors_pending=r.vectors_pending,
    )


def prior_to_pb(p: Prior) -> pb.ContentPrior:
    return pb.ContentPrior(
        mean=p.mean,
        low=p.low,
        high=p.high,
        coverage=p.coverage,
        neighbours=p.neighbours,
        calibrated=p.calibrated,
        calibration_videos=p.calibration_samples,
        weights=pb.PriorWeights(**{m: float(p.weights.get(m, 0.0)) for m in SIGNALS}),
        creator_videos=p.creator_videos,
    )


def posterior_to_pb(p: Posterior) -> pb.Posterior:
    return pb.Posterior(
        mean=p.mean,
        low=p.low,
        high=p.high,
        level=p.level,
        p_beats_threshold=p.p_beats_threshold,
        prior_impressions=p.prior_impressions,
    )


def record_to_pb(r: VideoRecord) -> pb.Video:
    m = r.metadata
    video = pb.Video(
        metadata=pb.VideoMetadata(
            video_id=m.video_id,
            creator_id=m.creator_id,
            caption=m.caption,
            hashtags=list(m.hashtags),
            language_hint=m.language_hint,
        ),
        extraction=extraction_to_pb(r.extraction),
        ingested_at=r.ingested_at,
    )
    if r.performance is not None:
        p, c = r.performance, r.performance.counters
        video.performance.CopyFrom(
            pb.Performance(
                impressions=c.impressions,
                plays=c.plays,
                completions=c.completions,
                watch_time_s=c.watch_time_s,
                likes=c.likes,
                comments=c.comments,
                shares=c.shares,
                follows=c.follows,
                last_event_at=c.last_event_at,
                score=p.score,
                completion_rate=p.completion_rate,
                in_pool=p.in_pool,
                pool_threshold=p.pool_threshold if p.pool_threshold != float("inf") else 0.0,
            )
        )
        if p.content_prior is not None:
            video.performance.content_prior.CopyFrom(prior_to_pb(p.content_prior))
        if p.posterior is not None:
            video.performance.posterior.CopyFrom(posterior_to_pb(p.posterior))
    if r.embedding is not None:
        video.embedding.extend(r.embedding.tolist())
        for t, e in zip(r.frame_times_s or [], r.frame_embeddings if r.frame_embeddings is not None else []):
            video.frames.append(pb.FrameEmbedding(t_s=t, values=e.tolist()))
    return video


TARGETS = {pb.TARGET_VISUAL: "visual", pb.TARGET_SPOKEN: "spoken", pb.TARGET_CAPTION: "caption"}


def search_query_from_pb(request: pb.SearchRequest) -> SearchQuery:
    which = request.WhichOneof("query")
    return SearchQuery(
        k=request.k,
        performing_only=request.performing_only,
        target=TARGETS.get(request.target, "unknown"),
        video_id=request.video_id if which == "video_id" else None,
        text=request.text if which == "text" else None,
        embedding=np.asarray(request.embedding.values, dtype=np.float32) if which == "embedding" else None,
    )


def search_result_to_pb(result: SearchResult) -> pb.SearchResponse:
    return pb.SearchResponse(
        neighbours=[
            pb.Neighbour(video_id=n.video_id, score=n.score, creator_id=n.creator_id, caption=n.caption, duration_s=n.duration_s)
            for n in result.neighbours
        ],
        embedding_model=result.embedding_model,
        index_size=result.index_size,
    )


def route_options_from_pb(q: pb.RouteQuery, default_fusion: str, learned: bool) -> RouteOptions:
    """The request's options; `learned`: the server learns weights (--route-weights learned), used only when
    the request gives none."""
    weights = dict(DEFAULT_WEIGHTS)
    given = [m for m in DEFAULT_WEIGHTS if q.weights.HasField(m)]
    for m in given:
        weights[m] = getattr(q.weights, m)
    basis = "request" if given else ("learned" if learned else "defaults")
    return RouteOptions(
        k=q.k or 10,
        weights=weights,
        exclude_same_creator=q.exclude_same_creator,
        language=q.language.strip().lower(),
        max_per_creator=q.max_per_creator,
        max_per_sound=q.max_per_sound,
        fusion=q.fusion.strip().lower() or default_fusion,
        learned=learned and not given,
        weights_basis=basis,
    )


def route_result_to_pb(result: RouteResult, ingested: IngestResult | None) -> pb.RouteResponse:
    reply = pb.RouteResponse(
        neighbours=[
            pb.RoutedNeighbour(
                video_id=n.video_id,
                creator_id=n.creator_id,
                sound_id=format_sound_id(n.sound_id),
                score=n.fused,
                contributions=pb.ModalityScores(**n.contributions),
                similarities=pb.ModalityScores(**n.similarities),
                performance=n.performance,
                shared_sound_id=format_sound_id(n.shared_sound_id),
            )
            for n in result.neighbours
        ],
        prior=result.prior,
        prior_uncertainty=result.prior_uncertainty,
        weights=pb.ModalityScores(**result.weights),
        pool_size=result.pool_size,
        weights_basis=result.weights_basis,
        weights_reason=result.weights_reason,
    )
    if result.content_prior is not None:
        reply.content_prior.CopyFrom(prior_to_pb(result.content_prior))
    if ingested is not None:
        reply.ingested.CopyFrom(ingest_result_to_pb(ingested))
    return reply


def rollout_to_pb(decision: Decision, perf: Performance, tiers: tuple[int, ...]) -> pb.RolloutResponse:
    assert perf.content_prior is not None and perf.posterior is not None  # a rollout always has both
    threshold = perf.pool_threshold
    return pb.RolloutResponse(
        decision=pb.RolloutDecision.Value(decision.action),
        audience=decision.audience,
        next_audience=decision.next_audience,
        impressions=decision.impressions,
        p_beats_threshold=decision.p_beats_threshold,
        pool_threshold=threshold if threshold != float("inf") else 0.0,
        content_prior=prior_to_pb(perf.content_prior),
        posterior=posterior_to_pb(perf.posterior),
        reason=decision.reason,
        tiers=list(tiers),
    )


def engagement_reply(
    accepted: int, duplicates: int, rejected: list[tuple[str, str]], pool_size: int, threshold: float
) -> pb.RecordEngagementResponse:
    return pb.RecordEngagementResponse(
        accepted=accepted,
        duplicates=duplicates,
        rejected=[pb.EngagementRejection(event_id=i, reason=why) for i, why in rejected],
        pool_size=pool_size,
        pool_threshold=threshold if pool_size else 0.0,
    )
