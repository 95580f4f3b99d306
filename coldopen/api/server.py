"""Server assembly: ``create_server`` builds a gRPC server (tests bind port 0); ``serve`` runs one
until SIGTERM/SIGINT. Health reports NOT_SERVING until models and the index are loaded."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from coldopen.api.auth import Authenticator
from coldopen.api.interceptors import Guard, PoolRouter
from coldopen.api.servicer import ContentIndexServicer
from coldopen.api.streams import CallerStreams
from coldopen.app import startup
from coldopen.app.service import ColdOpenService, Models
from coldopen.config.settings import MAX_CHUNK_BYTES, Settings
from coldopen.domain.errors import StartupError
from coldopen.ops import gcpolicy
from coldopen.ops.metrics import Metrics, Observer
from coldopen.storage.datadir import DataDirLock
from coldopen.v1 import coldopen_pb2, coldopen_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = coldopen_pb2.DESCRIPTOR.services_by_name["ContentIndex"].full_name
# Room for the protobuf framing around a full 1 MiB chunk.
_MAX_MESSAGE_BYTES = MAX_CHUNK_BYTES + 64 * 1024


class ColdOpenServer:
    """A started-or-not gRPC server plus its health service; ``attach`` makes it SERVING.

    Three thread pools, so no kind of call can starve another: unary RPCs run on `grpc_workers` threads;
    streaming RPCs (uploads, engagement), which hold a thread as long as their client keeps the stream
    open, on their own pool (max_open_streams, plus a few threads to refuse the ones over it); health
    checks and reflection on a small pool of their own, so they answer even when every other thread is busy.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._pools = [
            futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="coldopen-rpc"),
            futures.ThreadPoolExecutor(max_workers=settings.max_open_streams + 4, thread_name_prefix="coldopen-stream"),
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="coldopen-health"),
        ]
        unary, streams, control = self._pools
        self.auth = Authenticator.from_files(
            Path(settings.reader_tokens_file) if settings.reader_tokens_file else None,
            Path(settings.writer_tokens_file) if settings.writer_tokens_file else None,
        )
        self.observer: Observer = _observer(settings)
        self._guard = Guard(self.auth, CallerStreams(settings.max_open_streams, settings.max_streams_per_caller,
                                                     settings.caller_key_header), self.observer, self._broken)
        self._grpc = grpc.server(
            unary,
            # the pool router outermost: its function, which names the thread pool, is the one gRPC calls
            interceptors=[PoolRouter(streams, control), self._guard],
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                # gRPC sets SO_REUSEPORT by default: a second server on a busy port would start silently and
                # take half the connections. Bound exclusively, the second one fails to start instead.
                ("grpc.so_reuseport", 0),
            ],
        )
        self.servicer = ContentIndexServicer(settings, self.auth)
        coldopen_pb2_grpc.add_ContentIndexServicer_to_server(self.servicer, self._grpc)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._grpc)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._grpc,
        )
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            if settings.tls_cert:
                self.port = self._grpc.add_secure_port(settings.listen, _tls_credentials(settings))
            else:
                self.port = self._grpc.add_insecure_port(settings.listen)
        except RuntimeError:  # gRPC: "Failed to bind to address"
            self.port = 0
        except BaseException:
            self.observer.close()
            raise
        if self.port == 0:
            self.observer.close()
            raise StartupError(f"cannot listen on {settings.listen} (--listen): the port is in use or the address is "
                               f"not this machine's; stop the other server or pass another --listen")
        self.service: ColdOpenService | None = None
        self._damaged = False

    @property
    def address(self) -> str:
        host = self.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def start(self) -> ColdOpenServer:
        self._grpc.start()
        return self

    @property
    def metrics_port(self) -> int | None:
        return getattr(self.observer, "port", None)

    def attach(self, service: ColdOpenService) -> None:
        self.service = service
        service.observer = self.observer
        self.observer.attach(service)
        self.servicer.attach(service)
        self._set_health(health_pb2.HealthCheckResponse.SERVING)

    def _broken(self, e: Exception) -> None:
        """A component every call needs is damaged: load balancers should stop sending us traffic."""
        if not self._damaged:
            self._damaged = True
            log.error("health: NOT_SERVING: %s", e)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)

    def stop(self, grace: float | None = 5.0) -> None:
        """NOT_SERVING first, so load balancers drain us; then finish in-flight RPCs within `grace`."""
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._grpc.stop(grace).wait()
        if self.service is not None:
            self.service.close()
        self.observer.close()
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def wait(self) -> None:
        self._grpc.wait_for_termination()

    def _set_health(self, status) -> None:
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)


def _observer(settings: Settings) -> Observer:
    if not settings.metrics_listen:
        return Observer()
    try:
        return Metrics(settings.metrics_listen)
    except OSError as e:
        raise StartupError(f"cannot serve metrics on {settings.metrics_listen} (--metrics-listen): {e.strerror}; stop "
                           f"what uses that port or pass another --metrics-listen") from None


def _tls_credentials(settings: Settings) -> grpc.ServerCredentials:
    try:
        cert = Path(settings.tls_cert).read_bytes()
        key = Path(settings.tls_key).read_bytes()
    except OSError as e:
        raise ValueError(
            f"TLS certificate or key cannot be read ({e.filename}: {e.strerror}); check tls_cert and tls_key"
        ) from None
    if b"PRIVATE KEY" not in key or b"CERTIFICATE" not in cert:
        raise ValueError("tls_cert must be a PEM certificate chain and tls_key a PEM private key")
    return grpc.ssl_server_credentials([(key, cert)])


def create_server(settings: Settings) -> ColdOpenServer:
    return ColdOpenServer(settings)


def serve(settings: Settings, on_ready=None, lock: DataDirLock | None = None) -> None:
    """Check everything that needs no model (data dir lock, ports, catalog, vector store: app/startup.py),
    start listening (health NOT_SERVING), load models and index, then serve until signalled. `lock`: the
    data dir's, when the caller ran startup.preflight already."""
    lock = lock or startup.preflight(settings)  # a second server on this data dir or port stops here
    store = None
    try:
        server = create_server(settings).start()
    except BaseException:
        lock.release()
        raise
    try:
        startup.index_type(settings)
        store = startup.catalog(settings)
        startup.vector_store(settings)
    except BaseException:
        if store is not None:
            store.close()
        server.stop(0)
        lock.release()
        raise
    log.info("listening on %s; loading models (health NOT_SERVING until ready)", server.address)
    stop = threading.Event()

    def _signal(signum, _frame):
        log.info("received %s; draining", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    try:
        models = Models.load(settings)
    except BaseException:
        store.close()
        server.stop(0)
        lock.release()
        raise
    try:
        service = ColdOpenService.open(settings, models, lock, store=store)  # closes the store if it fails
        service.pipeline.warm_up()  # start the decode processes before reporting SERVING
        server.attach(service)
    except BaseException:
        server.stop(0)
        lock.release()
        raise
    log.info("serving on %s with %d videos indexed", server.address, service.size)
    # once the pool has loaded in the background, what start built is exempted from full collections
    threading.Thread(target=lambda: service.wait_ready() and gcpolicy.freeze_long_lived(),
                     name="coldopen-gc-freeze", daemon=True).start()
    if on_ready is not None:
        on_ready(server)
    stop.wait()
    in_flight = service.ingests_in_flight
    log.info("draining: health NOT_SERVING, no new RPCs, %d uploads in flight, grace %.0f s",
             in_flight, settings.shutdown_grace_s)
    server.stop(grace=settings.shutdown_grace_s)
    log.info("stopped cleanly")
