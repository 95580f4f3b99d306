"""What every ColdOpen RPC goes through before its handler, as gRPC server interceptors:

* `Guard`: a request id (the caller's x-request-id, or a new one) that every log line about the call
  carries and the trailing metadata returns; authentication, and authorisation by the method's role (Route
  authorises itself, once it knows whether it stores); the stream quotas; domain errors mapped to their
  status code in one table (anything else is INTERNAL, logged with its traceback); the call reported to
  the metrics.
* `PoolRouter`: streaming RPCs on the streams' thread pool, health and reflection on their own.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

from coldopen.api.auth import READ, WRITE, Authenticator, Caller
from coldopen.api.streams import CallerStreams
from coldopen.domain.errors import (
    Broken,
    ColdOpenError,
    DeadlineExceeded,
    DiskFull,
    InvalidInput,
    NotFound,
    NotReady,
    Overloaded,
    PermissionDenied,
    StorageUnavailable,
    TooLarge,
    Unauthenticated,
    disk_full,
)
from coldopen.ops.logs import clean_request_id, request_context
from coldopen.ops.metrics import Observer

log = logging.getLogger(__name__)

STATUS_FOR: dict[type[ColdOpenError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    StorageUnavailable: grpc.StatusCode.UNAVAILABLE,
    Broken: grpc.StatusCode.DATA_LOSS,
    DiskFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
# Overloaded replies carry gRPC's retry pushback trailer, which grpc retry policies honour.
RETRY_PUSHBACK_MS = "1000"
REQUEST_ID_HEADER = "x-request-id"
SERVICE_PREFIX = "/coldopen.v1.ContentIndex/"
# The role each method needs; None: the method authorises itself (Route: reading, or storing with `store`).
ROLES: dict[str, str | None] = {
    "Ingest": WRITE, "DeleteVideo": WRITE, "RecordEngagement": WRITE, "Route": None,
    "Search": READ, "GetVideo": READ, "SearchBySound": READ, "GetSound": READ, "ListSounds": READ, "Rollout": READ,
}

_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("coldopen_caller")


def current_caller() -> Caller:
    """The authenticated caller of the RPC this thread is serving (set by Guard)."""
    return _caller.get()


Behaviour = Callable[[Any, grpc.ServicerContext], Any]


def _kind(handler: grpc.RpcMethodHandler) -> str:
    return ("stream" if handler.request_streaming else "unary") + "_" + ("stream" if handler.response_streaming else "unary")


class _Wrapping(grpc.ServerInterceptor):
    """Replace the behaviour of the handlers it applies to, once per method."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}  # method -> (given, wrapped)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return None
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._cache[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        raise NotImplementedError


class Guard(_Wrapping):
    def __init__(self, auth: Authenticator, streams: CallerStreams, observer: Observer,
                 on_broken: Callable[[Broken], None] | None = None):
        super().__init__()
        self._auth, self._streams, self.observer = auth, streams, observer
        self.on_broken = on_broken  # the server turns health NOT_SERVING

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if not method.startswith(SERVICE_PREFIX):
            return handler  # health, reflection: open to all, counted nowhere
        name = method[len(SERVICE_PREFIX):]
        kind = _kind(handler)
        behaviour: Behaviour = getattr(handler, kind)

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            return self._call(name, handler.request_streaming, behaviour, request, context)

        return handler._replace(**{kind: guarded})

    def _call(self, name: str, stream: bool, behaviour: Behaviour, request: Any, context: grpc.ServicerContext) -> Any:
        metadata = context.invocation_metadata()
        rid = clean_request_id(next((v for k, v in metadata if k == REQUEST_ID_HEADER), None))
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        trailers = [(REQUEST_ID_HEADER, rid)]
        caller: Caller | None = None
        with request_context(rid):
            try:
                caller = self._auth.authenticate(metadata)
                role = ROLES.get(name, READ)
                if role is not None:
                    self._auth.require(caller, role, name)
                token = _caller.set(caller)
                try:
                    if not stream:
                        return behaviour(request, context)
                    with self._streams.hold(caller, context.peer(), metadata):
                        return behaviour(request, context)
                finally:
                    _caller.reset(token)
            except ColdOpenError as e:
                code = STATUS_FOR.get(type(e), grpc.StatusCode.INVALID_ARGUMENT)
                log.info("rpc=%s caller=%s status=%s message=%s", name, caller.name if caller else "?", code.name, e)
                if e.limit:
                    self.observer.refusal(e.limit)
                if isinstance(e, Overloaded):
                    trailers.append(("grpc-retry-pushback-ms", RETRY_PUSHBACK_MS))
                if isinstance(e, DiskFull):
                    log.error("rpc=%s: the disk is full; reads keep serving, writes resume once space is freed", name)
                if isinstance(e, Broken) and self.on_broken is not None:
                    self.on_broken(e)
                context.set_trailing_metadata(tuple(trailers))
                context.abort(code, str(e))
            except Exception as e:
                if context.is_active() is False:
                    code = grpc.StatusCode.CANCELLED
                    log.info("rpc=%s ended: the client went away", name)
                    return None
                if disk_full(e):  # wherever the write was (a temporary upload, a snapshot): one answer
                    code = grpc.StatusCode.RESOURCE_EXHAUSTED
                    log.error("rpc=%s: the disk is full (%s); reads keep serving, writes resume once space is freed",
                              name, e)
                    self.observer.refusal("disk_full")
                    context.set_trailing_metadata(tuple(trailers))
                    context.abort(code, DiskFull.MESSAGE.format(what=f"{name}'s write"))
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
                self.observer.rpc(name, code.name, time.perf_counter() - started)


class PoolRouter(_Wrapping):
    """Runs streaming-request RPCs on the streams pool and health/reflection on the control pool.

    gRPC Python picks a handler's thread pool from its behaviour's `experimental_thread_pool` attribute
    (grpc/_server.py, _select_thread_pool_for_behavior); this wraps each handler's behaviour in a function
    carrying the right pool. The default pool (unary ColdOpen RPCs) needs nothing. It must be the outermost
    interceptor, so that its function is the one gRPC calls."""

    _CONTROL = ("/grpc.health.v1.Health/", "/grpc.reflection.")

    def __init__(self, streams: futures.ThreadPoolExecutor, control: futures.ThreadPoolExecutor):
        super().__init__()
        self._streams = streams
        self._control = control

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if method.startswith(self._CONTROL):
            pool = self._control
        elif handler.request_streaming:
            pool = self._streams
        else:
            return handler
        kind = _kind(handler)
        behaviour = getattr(handler, kind)

        def run(*args: Any, **kwargs: Any) -> Any:
            return behaviour(*args, **kwargs)

        run.experimental_thread_pool = pool  # type: ignore[attr-defined]
        return handler._replace(**{kind: run})
