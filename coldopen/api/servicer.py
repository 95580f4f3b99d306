"""The gRPC servicer: each handler reads its request (converted at the boundary: convert.py), calls the
service and converts the answer. What every call needs besides (request ids, authentication, stream quotas,
error mapping, metrics) happens in interceptors.py; streams are read through streams.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc

from coldopen.api import convert
from coldopen.api.auth import READ, WRITE, Authenticator
from coldopen.api.interceptors import current_caller
from coldopen.api.streams import StreamReader, first, no_more
from coldopen.app.service import ColdOpenService
from coldopen.app.validation import validate_metadata
from coldopen.config.settings import Settings
from coldopen.domain.engagement import EngagementEvent
from coldopen.domain.errors import InvalidInput, NotReady
from coldopen.domain.modalities import FUSIONS
from coldopen.v1 import coldopen_pb2 as pb
from coldopen.v1 import coldopen_pb2_grpc as pb_grpc

DEFAULT_WINDOW_S = 86_400.0
# RecordEngagement applies a stream's events in transactions of this many, so memory stays bounded.
ENGAGEMENT_BATCH = 1000

Messages = Iterator[Any]


class ContentIndexServicer(pb_grpc.ContentIndexServicer):
    def __init__(self, settings: Settings, auth: Authenticator | None = None):
        self._settings = settings
        self._service: ColdOpenService | None = None
        self._auth = auth or Authenticator()
        self._streams = StreamReader(settings)

    def attach(self, service: ColdOpenService) -> None:
        self._service = service

    def _ready(self) -> ColdOpenService:
        if self._service is None:
            raise NotReady("the server is still loading models and the index; retry when grpc.health.v1 reports SERVING")
        return self._service

    # --- streaming RPCs -------------------------------------------------------
    def Ingest(self, request_iterator: Messages, context: grpc.ServicerContext) -> pb.IngestResponse:
        service = self._ready()
        started = time.perf_counter()
        deadline = self._streams.deadline(context)
        messages = self._streams.messages(request_iterator, deadline)
        meta = validate_metadata(convert.metadata_from_pb(first(messages, "metadata", "IngestRequest")), self._settings)
        with self._streams.upload(service, messages, f"upload for {meta.video_id!r}", "metadata") as (path, total):
            receive_ms = (time.perf_counter() - started) * 1000
            result = service.ingest(meta, path, total, receive_ms, deadline)
        return convert.ingest_result_to_pb(result)

    def SearchBySound(self, request_iterator: Messages, context: grpc.ServicerContext) -> pb.SoundSearchResponse:
        service = self._ready()
        deadline = self._streams.deadline(context)
        messages = self._streams.messages(request_iterator, deadline)
        query = first(messages, "query", "SoundSearchRequest")
        limit = query.limit or 10
        source = query.WhichOneof("source")
        if source == "video_id":
            no_more(messages, "a sound search by video_id takes no chunks; send only the query")
            matches = service.search_by_sound(video_id=query.video_id, limit=limit)
        elif source == "upload":
            with self._streams.upload(service, messages, "sound search upload", "query") as (path, _):
                matches = service.search_by_sound(path=path, limit=limit, deadline=deadline)
        else:
            raise InvalidInput("a sound query needs a video_id or an upload")
        return pb.SoundSearchResponse(matches=[convert.sound_match_to_pb(m) for m in matches])

    def Route(self, request_iterator: Messages, context: grpc.ServicerContext) -> pb.RouteResponse:
        service = self._ready()
        deadline = self._streams.deadline(context)
        messages = self._streams.messages(request_iterator, deadline)
        q = first(messages, "query", "RouteRequest")
        source = q.WhichOneof("source")
        store = source == "upload" and q.store
        # Routing reads; storing the upload too is an ingest, which is a writer's call.
        if store:
            self._auth.require(current_caller(), WRITE, "Route with store=true (it ingests the upload)")
        else:
            self._auth.require(current_caller(), READ, "Route")
        options = convert.route_options_from_pb(q, self._settings.route_fusion, self._settings.route_weights == "learned")
        if options.fusion not in FUSIONS:
            raise InvalidInput(f"fusion {q.fusion!r} is unknown; use one of {', '.join(FUSIONS)}")
        if source == "video_id":
            no_more(messages, "routing by video_id takes no chunks; send only the query")
            result, ingested = service.route(options, video_id=q.video_id)
        elif source == "upload":
            meta = validate_metadata(convert.metadata_from_pb(q.upload), self._settings, require_id=store)
            with self._streams.upload(service, messages, "route upload", "query") as (path, total):
                result, ingested = service.route(options, upload=(meta, path, total), store=store, deadline=deadline)
        else:
            raise InvalidInput("a route query needs a video_id or an upload")
        return convert.route_result_to_pb(result, ingested)

    def RecordEngagement(self, request_iterator: Messages, context: grpc.ServicerContext) -> pb.RecordEngagementResponse:
        """Events are applied in transactions of ENGAGEMENT_BATCH as they arrive (memory stays bounded);
        each event counts once per event_id, so a client that retries a broken stream loses and doubles nothing."""
        service = self._ready()
        messages = self._streams.messages(request_iterator, self._streams.deadline(context))
        cap = self._settings.max_events_per_stream
        accepted = duplicates = seen = 0
        rejected: list[tuple[str, str]] = []
        pool_size, threshold = 0, 0.0
        batch: list[EngagementEvent] = []

        def apply() -> None:
            nonlocal accepted, duplicates, pool_size, threshold
            r = service.record_engagement(batch)
            accepted += r.accepted
            duplicates += r.duplicates
            rejected.extend(r.rejected)
            pool_size, threshold = r.pool_size, r.pool_threshold
            batch.clear()

        for message in messages:
            seen += 1
            if seen > cap:
                if batch:
                    apply()
                raise InvalidInput(
                    f"the stream carries more than {cap} events (max_events_per_stream); the first {cap} were recorded "
                    f"({accepted} accepted, {duplicates} duplicates, {len(rejected)} rejected): send the rest in "
                    f"another stream (re-sent events are counted once)",
                    limit="max_events_per_stream",
                )
            batch.append(convert.event_from_pb(message))
            if len(batch) >= ENGAGEMENT_BATCH:
                apply()
        if batch:
            apply()
        if not seen:
            raise InvalidInput("no engagement events were sent; stream one EngagementEvent per event")
        return convert.engagement_reply(accepted, duplicates, rejected, pool_size, threshold)

    # --- unary RPCs -----------------------------------------------------------
    def GetSound(self, request: pb.GetSoundRequest, context: grpc.ServicerContext) -> pb.Sound:
        window = request.window_s or DEFAULT_WINDOW_S
        stats, recent = self._ready().sound_stats(request.sound_id, window)
        return convert.sound_to_pb(stats, window, recent)

    def ListSounds(self, request: pb.ListSoundsRequest, context: grpc.ServicerContext) -> pb.ListSoundsResponse:
        window = request.window_s or DEFAULT_WINDOW_S
        sounds = self._ready().list_sounds(window, request.limit or 20)
        return pb.ListSoundsResponse(sounds=[convert.sound_to_pb(s, window) for s in sounds])

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        service = self._ready()
        if request.WhichOneof("query") is None:
            raise InvalidInput("a search needs exactly one of video_id, text or embedding")
        return convert.search_result_to_pb(service.search(convert.search_query_from_pb(request)))

    def GetVideo(self, request: pb.GetVideoRequest, context: grpc.ServicerContext) -> pb.Video:
        return convert.record_to_pb(self._ready().get(request.video_id, request.include_embeddings))

    def Rollout(self, request: pb.RolloutRequest, context: grpc.ServicerContext) -> pb.RolloutResponse:
        decision, perf = self._ready().rollout(request.video_id, request.audience)
        return convert.rollout_to_pb(decision, perf, self._settings.tiers())

    def DeleteVideo(self, request: pb.DeleteVideoRequest, context: grpc.ServicerContext) -> pb.DeleteVideoResponse:
        self._ready().delete(request.video_id)
        return pb.DeleteVideoResponse(video_id=request.video_id)
