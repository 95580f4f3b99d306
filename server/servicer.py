"""gRPC front end: the only module that touches protobuf. Converts messages to dataclasses at the
boundary, calls the service, and maps domain errors to status codes in one table."""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from coldopen.v1 import coldopen_pb2 as pb
from coldopen.v1 import coldopen_pb2_grpc as pb_grpc
from server.domain import (
    EngagementEvent, Extraction, IngestResult, SearchQuery, SoundNeighbour, SoundStats, SoundUse, VideoMetadata, VideoRecord,
)
from server.auth import READ, WRITE, Authenticator, Caller
from server.engagement import Counters
from server.logs import clean_request_id, request_context
from server.metrics import Observer
from server.errors import (
    ColdOpenError,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    NotReady,
    StorageUnavailable,
    Overloaded,
    PermissionDenied,
    TooLarge,
    Unauthenticated,
)
from server.routing import DEFAULT_WEIGHTS, FUSIONS, RouteOptions
from server.service import ColdOpenService
from server.sounds import sharing
from server.settings import MAX_CHUNK_BYTES, MIB, Settings
from server.validation import format_sound_id, validate_metadata

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 86_400.0
_TARGETS = {pb.TARGET_VISUAL: "visual", pb.TARGET_SPOKEN: "spoken", pb.TARGET_CAPTION: "caption"}

STATUS_FOR: dict[type[ColdOpenError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    StorageUnavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
# Overloaded replies carry gRPC's retry pushback trailer, which grpc retry policies honour.
RETRY_PUSHBACK_MS = "1000"
REQUEST_ID_HEADER = "x-request-id"
# RecordEngagement applies a stream's events in transactions of this many, so memory stays bounded.
ENGAGEMENT_BATCH = 1000


def _guarded(role: str | None, stream: bool = False):
    """Give the call a request id (the caller's x-request-id, or a new one) that every log line about it
    carries and the trailing metadata returns; authenticate and authorise the caller (role None: the
    method authorises itself, once it knows what is asked); count its streams; turn domain errors into
    their status code (anything else is INTERNAL, logged with its traceback); and report the call to the
    metrics."""

    def decorate(method):
        name = method.__name__

        @functools.wraps(method)
        def wrapper(self, request, context):
            metadata = context.invocation_metadata()
            rid = clean_request_id(next((v for k, v in metadata if k == REQUEST_ID_HEADER), None))
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            trailers = [(REQUEST_ID_HEADER, rid)]
            caller = None
            with request_context(rid):
                try:
                    caller = self._auth.authenticate(metadata)
                    if role is not None:
                        self._auth.require(caller, role, name)
                    if not stream:
                        return method(self, request, context, caller)
                    with self._streams.hold(caller, context.peer(), metadata):
                        return method(self, request, context, caller)
                except ColdOpenError as e:
                    code = STATUS_FOR.get(type(e), grpc.StatusCode.INVALID_ARGUMENT)
                    log.info("rpc=%s caller=%s status=%s message=%s", name, caller.name if caller else "?", code.name, e)
                    if e.limit:
                        self._observer.refusal(e.limit)
                    if isinstance(e, Overloaded):
                        trailers.append(("grpc-retry-pushback-ms", RETRY_PUSHBACK_MS))
                    context.set_trailing_metadata(tuple(trailers))
                    context.abort(code, str(e))
                except Exception:
                    if context.is_active() is False:
                        code = grpc.StatusCode.CANCELLED
                        log.info("rpc=%s ended: the client went away", name)
                        return None
                    code = grpc.StatusCode.INTERNAL
                    log.exception("rpc=%s failed with an unexpected error", name)
                    context.set_trailing_metadata(tuple(trailers))
                    context.abort(
                        grpc.StatusCode.INTERNAL,
                        f"{name} failed with an internal error (request id {rid}); the server log has the traceback. "
                        f"Retrying may help",
                    )
                finally:
                    if code == grpc.StatusCode.OK:
                        context.set_trailing_metadata(tuple(trailers))
                    self._observer.rpc(name, code.name, time.perf_counter() - started)

        return wrapper

    return decorate


class CallerStreams:
    """At most `total` streaming RPCs open at once, and `per_caller` per caller. A caller is its token name
    with auth on; without auth, the value of a trusted proxy's header (`key_header`, e.g. x-forwarded-for:
    its first address) if configured, else the peer address."""

    def __init__(self, total: int, per_caller: int, key_header: str = ""):
        self._total = total
        self._limit = per_caller
        self._header = key_header.lower()
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._count = 0

    def key(self, caller: Caller, peer: str, metadata) -> str:
        if caller.name != "anonymous":
            return f"token:{caller.name}"
        if self._header:
            value = next((v for k, v in metadata if k == self._header), None)
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if value and value.split(",")[0].strip():
                return f"{self._header}:{value.split(',')[0].strip()[:256]}"
        return "peer:" + peer.rsplit(":", 1)[0]

    @contextlib.contextmanager
    def hold(self, caller: Caller, peer: str, metadata=()):
        key = self.key(caller, peer, metadata)
        with self._lock:
            if self._count >= self._total:
                raise Overloaded(
                    f"the server already has {self._total} streams open (max_open_streams); retry in a few seconds "
                    f"with backoff",
                    limit="max_open_streams",
                )
            if self._open.get(key, 0) >= self._limit:
                raise Overloaded(
                    f"caller {key!r} already has {self._limit} uploads or streams open (max_streams_per_caller); "
                    f"wait for one to finish, then retry",
                    limit="max_streams_per_caller",
                )
            self._open[key] = self._open.get(key, 0) + 1
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
                self._open[key] -= 1
                if not self._open[key]:
                    del self._open[key]


class ContentIndexServicer(pb_grpc.ContentIndexServicer):
    def __init__(self, settings: Settings, auth: Authenticator | None = None, observer: Observer | None = None):
        self._settings = settings
        self._service: ColdOpenService | None = None
        self._auth = auth or Authenticator()
        self._observer = observer or Observer()
        self._streams = CallerStreams(
            settings.max_open_streams, settings.max_streams_per_caller, settings.caller_key_header
        )

    def _deadline(self, context) -> float:
        """time.monotonic() by which this RPC must finish: the caller's deadline or rpc_deadline_s, the sooner."""
        left = self._settings.rpc_deadline_s
        remaining = context.time_remaining()
        if remaining is not None:
            left = min(left, remaining)
        return time.monotonic() + left

    def attach(self, service: ColdOpenService) -> None:
        self._service = service

    def _ready(self) -> ColdOpenService:
        if self._service is None:
            raise NotReady("the server is still loading models and the index; retry when grpc.health.v1 reports SERVING")
        return self._service

    # --- streaming RPCs -------------------------------------------------------
    @_guarded(WRITE, stream=True)
    def Ingest(self, request_iterator, context, caller):
        service = self._ready()
        started = time.perf_counter()
        deadline = self._deadline(context)
        messages = self._messages(request_iterator, deadline)
        meta = validate_metadata(_metadata_from_pb(_first(messages, "metadata", "IngestRequest")), self._settings)
        with self._upload(service, messages, f"upload for {meta.video_id!r}", "metadata") as (path, total):
            receive_ms = (time.perf_counter() - started) * 1000
            result = service.ingest(meta, path, total, receive_ms, deadline)
        return _ingest_result_to_pb(result)

    @_guarded(READ, stream=True)
    def SearchBySound(self, request_iterator, context, caller):
        service = self._ready()
        deadline = self._deadline(context)
        messages = self._messages(request_iterator, deadline)
        query = _first(messages, "query", "SoundSearchRequest")
        limit = query.limit or 10
        source = query.WhichOneof("source")
        if source == "video_id":
            _no_more(messages, "a sound search by video_id takes no chunks; send only the query")
            matches = service.search_by_sound(video_id=query.video_id, limit=limit)
        elif source == "upload":
            with self._upload(service, messages, "sound search upload", "query") as (path, _):
                matches = service.search_by_sound(path=path, limit=limit, deadline=deadline)
        else:
            raise InvalidInput("a sound query needs a video_id or an upload")
        return pb.SoundSearchResponse(matches=[_sound_match_to_pb(m) for m in matches])

    @_guarded(None, stream=True)
    def Route(self, request_iterator, context, caller):
        service = self._ready()
        deadline = self._deadline(context)
        messages = self._messages(request_iterator, deadline)
        q = _first(messages, "query", "RouteRequest")
        source = q.WhichOneof("source")
        store = source == "upload" and q.store
        # Routing reads; storing the upload too is an ingest, which is a writer's call.
        if store:
            self._auth.require(caller, WRITE, "Route with store=true (it ingests the upload)")
        else:
            self._auth.require(caller, READ, "Route")
        weights = dict(DEFAULT_WEIGHTS)
        for m in DEFAULT_WEIGHTS:
            if q.weights.HasField(m):
                weights[m] = getattr(q.weights, m)
        options = RouteOptions(
            k=q.k or 10,
            weights=weights,
            exclude_same_creator=q.exclude_same_creator,
            language=q.language.strip().lower(),
            max_per_creator=q.max_per_creator,
            max_per_sound=q.max_per_sound,
            fusion=q.fusion.strip().lower() or self._settings.route_fusion,
            learned=self._settings.route_weights == "learned" and not any(q.weights.HasField(m) for m in DEFAULT_WEIGHTS),
        )
        if options.fusion not in FUSIONS:
            raise InvalidInput(f"fusion {q.fusion!r} is unknown; use one of {', '.join(FUSIONS)}")
        if source == "video_id":
            _no_more(messages, "routing by video_id takes no chunks; send only the query")
            result, ingested = service.route(options, video_id=q.video_id)
        elif source == "upload":
            meta = validate_metadata(_metadata_from_pb(q.upload), self._settings, require_id=store)
            with self._upload(service, messages, "route upload", "query") as (path, total):
                result, ingested = service.route(options, upload=(meta, path, total), store=store, deadline=deadline)
        else:
            raise InvalidInput("a route query needs a video_id or an upload")
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
        )
        if result.content_prior is not None:
            reply.content_prior.CopyFrom(_prior_to_pb(result.content_prior))
        if ingested is not None:
            reply.ingested.CopyFrom(_ingest_result_to_pb(ingested))
        return reply

    @_guarded(WRITE, stream=True)
    def RecordEngagement(self, request_iterator, context, caller):
        """Events are applied in transactions of ENGAGEMENT_BATCH as they arrive (memory stays bounded);
        each event counts once per event_id, so a client that retries a broken stream loses and doubles nothing."""
        service = self._ready()
        messages = self._messages(request_iterator, self._deadline(context))
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
            batch.append(_event_from_pb(message))
            if len(batch) >= ENGAGEMENT_BATCH:
                apply()
        if batch:
            apply()
        if not seen:
            raise InvalidInput("no engagement events were sent; stream one EngagementEvent per event")
        return pb.RecordEngagementResponse(
            accepted=accepted,
            duplicates=duplicates,
            rejected=[pb.EngagementRejection(event_id=i, reason=why) for i, why in rejected],
            pool_size=pool_size,
            pool_threshold=threshold if pool_size else 0.0,
        )

    # --- the one stream reader and upload path ---------------------------------
    def _messages(self, request_iterator, deadline: float):
        """A stream's messages, read by a helper thread so a client that goes quiet is noticed: no message
        for upload_idle_timeout_s, or the RPC deadline passing, ends the RPC with DEADLINE_EXCEEDED (which
        frees the reader). Every streaming RPC reads its requests through this."""
        q: queue.Queue = queue.Queue(maxsize=8)  # bounded: a fast client cannot buffer a whole file here
        done = object()
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def read():
            try:
                for message in request_iterator:
                    if not put(message):
                        return
                put(done)
            except BaseException as e:  # the client cancelled, or the stream broke
                put(e)

        threading.Thread(target=read, name="coldopen-stream-reader", daemon=True).start()
        try:
            yield from self._drain(q, done, deadline)
        finally:
            stop.set()  # the handler is done with the stream (finished, failed or refused it)

    def _drain(self, q: queue.Queue, done, deadline: float):
        idle = self._settings.upload_idle_timeout_s
        while True:
            wait = min(idle, max(0.0, deadline - time.monotonic()))
            try:
                item = q.get(timeout=wait)
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise DeadlineExceeded(
                        "the stream did not finish before the request's deadline; send faster, or use a longer "
                        "deadline (the server allows at most rpc_deadline_s)",
                        limit="rpc_deadline_s",
                    ) from None
                raise DeadlineExceeded(
                    f"no message arrived for {idle:.0f} s (upload_idle_timeout_s): the client stopped sending "
                    f"mid-stream without closing it; re-send, and close the stream when done",
                    limit="upload_idle_timeout_s",
                ) from None
            if item is done:
                return
            if isinstance(item, BaseException):
                raise InvalidInput("the stream broke off before it was complete; re-send it whole") from None
            yield item

    @contextlib.contextmanager
    def _upload(self, service: ColdOpenService, messages, what: str, header: str):
        """The one upload path (Ingest, Route and SearchBySound uploads): an ingest slot, a private temporary
        file, the chunk and size limits. Yields (path, bytes received); decoding then goes through the
        pipeline's worker pool with the same media limits and deadline."""
        with service.ingest_slot(), service.upload_file() as upload:
            total = self._receive(messages, upload, what, header)
            if total == 0:
                raise InvalidInput(f"the {what} is empty (0 bytes): send a complete file (API clients: its bytes in "
                                   f"chunk messages after the {header})")
            yield Path(upload.name), total

    def _receive(self, messages, upload, what: str, header: str) -> int:
        """Write the remaining chunk messages to `upload`, enforcing chunk and total size limits."""
        limit = self._settings.max_upload_bytes
        total = 0
        for message in messages:
            if message.WhichOneof("payload") != "chunk":
                raise InvalidInput(
                    f"{what}: {header} may be sent only once, as the first message; every later message must carry a chunk"
                )
            size = len(message.chunk)
            if size > MAX_CHUNK_BYTES:
                raise InvalidInput(f"a chunk of {size} bytes exceeds the 1 MiB chunk limit; split the file into smaller chunks")
            total += size
            if total > limit:
                raise TooLarge(
                    f"{what} exceeds the server's max upload size of {_human_bytes(limit)} "
                    f"(max_upload_bytes); send a smaller or shorter file",
                    limit="max_upload_bytes",
                )
            upload.write(message.chunk)
        upload.flush()
        return total

    # --- unary RPCs -----------------------------------------------------------
    @_guarded(READ)
    def GetSound(self, request, context, caller):
        window = request.window_s or DEFAULT_WINDOW_S
        stats, recent = self._ready().sound_stats(request.sound_id, window)
        return _sound_to_pb(stats, window, recent)

    @_guarded(READ)
    def ListSounds(self, request, context, caller):
        window = request.window_s or DEFAULT_WINDOW_S
        sounds = self._ready().list_sounds(window, request.limit or 20)
        return pb.ListSoundsResponse(sounds=[_sound_to_pb(s, window) for s in sounds])

    @_guarded(READ)
    def Search(self, request, context, caller):
        service = self._ready()
        which = request.WhichOneof("query")
        if which is None:
            raise InvalidInput("a search needs exactly one of video_id, text or embedding")
        query = SearchQuery(
            k=request.k,
            performing_only=request.performing_only,
            target=_TARGETS.get(request.target, "unknown"),
            video_id=request.video_id if which == "video_id" else None,
            text=request.text if which == "text" else None,
            embedding=np.asarray(request.embedding.values, dtype=np.float32) if which == "embedding" else None,
        )
        result = service.search(query)
        return pb.SearchResponse(
            neighbours=[
                pb.Neighbour(
                    video_id=n.video_id, score=n.score, creator_id=n.creator_id, caption=n.caption, duration_s=n.duration_s
                )
                for n in result.neighbours
            ],
            embedding_model=result.embedding_model,
            index_size=result.index_size,
        )

    @_guarded(READ)
    def GetVideo(self, request, context, caller):
        record = self._ready().get(request.video_id, request.include_embeddings)
        return _record_to_pb(record)

    @_guarded(READ)
    def Rollout(self, request, context, caller):
        decision, perf = self._ready().rollout(request.video_id, request.audience)
        threshold = perf.pool_threshold
        return pb.RolloutResponse(
            decision=pb.RolloutDecision.Value(decision.action), audience=decision.audience,
            next_audience=decision.next_audience, impressions=decision.impressions,
            p_beats_threshold=decision.p_beats_threshold, pool_threshold=threshold if threshold != float("inf") else 0.0,
            content_prior=_prior_to_pb(perf.content_prior), posterior=_posterior_to_pb(perf.posterior),
            reason=decision.reason, tiers=list(self._settings.tiers()),
        )

    @_guarded(WRITE)
    def DeleteVideo(self, request, context, caller):
        self._ready().delete(request.video_id)
        return pb.DeleteVideoResponse(video_id=request.video_id)


def _no_more(messages, why: str) -> None:
    """The stream must end after its first message."""
    if next(messages, None) is not None:
        raise InvalidInput(why)


def _first(request_iterator, field: str, message: str):
    """The `field` payload of a stream's first message; every later message carries a chunk."""
    first = next(request_iterator, None)
    if first is None:
        raise InvalidInput(f"the stream is empty; the first {message} must carry a {field} message, then chunks follow")
    if first.WhichOneof("payload") != field:
        raise InvalidInput(f"the first {message} must carry a {field} message; a chunk arrived before it")
    return getattr(first, field)


def _human_bytes(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n} bytes"


def _event_from_pb(e: pb.EngagementEvent) -> EngagementEvent:
    counters = Counters(
        impressions=e.impressions, plays=e.plays, completions=e.completions, watch_time_s=e.watch_time_s,
        likes=e.likes, comments=e.comments, shares=e.shares, follows=e.follows,
    )
    return EngagementEvent(event_id=e.event_id, video_id=e.video_id, counters=counters, at=e.at)


def _sound_match_to_pb(m: SoundNeighbour) -> pb.SoundMatch:
    return pb.SoundMatch(
        video_id=m.video_id,
        sound_id=format_sound_id(m.sound_id),
        matched_frames=m.matched_frames,
        query_start_s=m.query_start_s,
        reference_start_s=m.reference_start_s,
        duration_s=m.duration_s,
        confidence=m.confidence,
    )


def _sound_to_pb(s: SoundStats, window_s: float, recent: list[str] | None = None) -> pb.Sound:
    return pb.Sound(
        sound_id=format_sound_id(s.sound_id),
        created_at=s.created_at,
        first_video_id=s.first_video,
        video_count=s.videos,
        recent_video_count=s.recent_videos,
        window_s=window_s,
        recent_video_ids=recent or [],
    )


def _metadata_from_pb(m: pb.VideoMetadata) -> VideoMetadata:
    return VideoMetadata(
        video_id=m.video_id,
        creator_id=m.creator_id,
        caption=m.caption,
        hashtags=tuple(h.lstrip("#") for h in m.hashtags if h.strip("# ")),
        language_hint=m.language_hint.strip().lower(),
        filename=m.filename,
    )


def _extraction_to_pb(e: Extraction) -> pb.Extraction:
    t = e.transcript
    return pb.Extraction(
        media=pb.MediaInfo(**e.media.__dict__),
        frames_sampled=e.frames_sampled,
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
        sounds=[_sound_use_to_pb(u) for u in e.sounds],
        queue_wait=[pb.StageTiming(stage=k, ms=v) for k, v in e.queue_wait_ms.items()],
        batches=[pb.BatchSize(stage=k, mean=v) for k, v in e.batch_sizes.items()],
    )


def _sound_use_to_pb(u: SoundUse) -> pb.SoundUse:
    start_s, sound_start_s, duration_s = sharing.times(u)
    return pb.SoundUse(
        sound_id=format_sound_id(u.sound_id), primary=u.primary, started=u.started, start_s=start_s,
        sound_start_s=sound_start_s, duration_s=duration_s, speed=u.scale, matched_frames=u.matched_frames,
        confidence=u.confidence,
    )


def _ingest_result_to_pb(r: IngestResult) -> pb.IngestResponse:
    return pb.IngestResponse(
        video_id=r.video_id,
        replaced=r.replaced,
        bytes_received=r.bytes_received,
        extraction=_extraction_to_pb(r.extraction),
        new_sound=r.new_sound,
        sound_matches=[_sound_match_to_pb(m) for m in r.sound_matches],
        vectors_pending=r.vectors_pending,
    )


def _prior_to_pb(p) -> pb.ContentPrior:
    return pb.ContentPrior(mean=p.mean, low=p.low, high=p.high, coverage=p.coverage, neighbours=p.neighbours,
                           calibrated=p.calibrated, calibration_videos=p.calibration_samples)


def _posterior_to_pb(p) -> pb.Posterior:
    return pb.Posterior(mean=p.mean, low=p.low, high=p.high, level=p.level, p_beats_threshold=p.p_beats_threshold,
                        prior_impressions=p.prior_impressions)


def _record_to_pb(r: VideoRecord) -> pb.Video:
    m = r.metadata
    video = pb.Video(
        metadata=pb.VideoMetadata(
            video_id=m.video_id, creator_id=m.creator_id, caption=m.caption, hashtags=list(m.hashtags), language_hint=m.language_hint
        ),
        extraction=_extraction_to_pb(r.extraction),
        ingested_at=r.ingested_at,
    )
    if r.performance is not None:
        p, c = r.performance, r.performance.counters
        video.performance.CopyFrom(
            pb.Performance(
                impressions=c.impressions, plays=c.plays, completions=c.completions, watch_time_s=c.watch_time_s,
                likes=c.likes, comments=c.comments, shares=c.shares, follows=c.follows,
                last_event_at=c.last_event_at, score=p.score, completion_rate=p.completion_rate,
                in_pool=p.in_pool, pool_threshold=p.pool_threshold if p.pool_threshold != float("inf") else 0.0,
            )
        )
        if p.content_prior is not None:
            video.performance.content_prior.CopyFrom(_prior_to_pb(p.content_prior))
        if p.posterior is not None:
            video.performance.posterior.CopyFrom(_posterior_to_pb(p.posterior))
    if r.embedding is not None:
        video.embedding.extend(r.embedding.tolist())
        for t, e in zip(r.frame_times_s or [], r.frame_embeddings if r.frame_embeddings is not None else []):
            video.frames.append(pb.FrameEmbedding(t_s=t, values=e.tolist()))
    return video
