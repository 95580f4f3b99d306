"""Reading client streams: the one stream reader (a client that goes quiet is noticed), the one upload path
(an ingest slot, a private temporary file, the chunk and size limits), and the stream quotas."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from coldopen.api.auth import Caller
from coldopen.config.settings import MAX_CHUNK_BYTES, MIB, Settings
from coldopen.domain.errors import DeadlineExceeded, InvalidInput, Overloaded, TooLarge

if TYPE_CHECKING:
    from coldopen.app.service import ColdOpenService


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

    def key(self, caller: Caller, peer: str, metadata: Iterable[tuple[str, Any]]) -> str:
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
    def hold(self, caller: Caller, peer: str, metadata: Iterable[tuple[str, Any]] = ()) -> Iterator[None]:
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


class StreamReader:
    def __init__(self, settings: Settings):
        self._settings = settings

    def deadline(self, context: Any) -> float:
        """time.monotonic() by which this RPC must finish: the caller's deadline or rpc_deadline_s, the sooner."""
        left = self._settings.rpc_deadline_s
        remaining = context.time_remaining()
        if remaining is not None:
            left = min(left, remaining)
        return time.monotonic() + left

    def messages(self, request_iterator: Iterator[Any], deadline: float) -> Iterator[Any]:
        """A stream's messages, read by a helper thread so a client that goes quiet is noticed: no message
        for upload_idle_timeout_s, or the RPC deadline passing, ends the RPC with DEADLINE_EXCEEDED (which
        frees the reader). Every streaming RPC reads its requests through this."""
        q: queue.Queue[Any] = queue.Queue(maxsize=8)  # bounded: a fast client cannot buffer a whole file here
        done = object()
        stop = threading.Event()

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
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

    def _drain(self, q: queue.Queue[Any], done: object, deadline: float) -> Iterator[Any]:
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
    def upload(self, service: ColdOpenService, messages: Iterator[Any], what: str, header: str
               ) -> Iterator[tuple[Path, int]]:
        """The one upload path (Ingest, Route and SearchBySound uploads): an ingest slot, a private temporary
        file, the chunk and size limits. Yields (path, bytes received); decoding then goes through the
        pipeline's worker pool with the same media limits and deadline."""
        with service.ingest_slot(), service.upload_file() as upload:
            total = self._receive(messages, upload, what, header)
            if total == 0:
                raise InvalidInput(f"the {what} is empty (0 bytes): send a complete file (API clients: its bytes in "
                                   f"chunk messages after the {header})")
            yield Path(upload.name), total

    def _receive(self, messages: Iterator[Any], upload: IO[bytes], what: str, header: str) -> int:
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
                    f"{what} exceeds the server's max upload size of {human_bytes(limit)} "
                    f"(max_upload_bytes); send a smaller or shorter file",
                    limit="max_upload_bytes",
                )
            upload.write(message.chunk)
        upload.flush()
        return total


def no_more(messages: Iterator[Any], why: str) -> None:
    """The stream must end after its first message."""
    if next(messages, None) is not None:
        raise InvalidInput(why)


def first(request_iterator: Iterator[Any], field: str, message: str) -> Any:
    """The `field` payload of a stream's first message; every later message carries a chunk."""
    head = next(request_iterator, None)
    if head is None:
        raise InvalidInput(f"the stream is empty; the first {message} must carry a {field} message, then chunks follow")
    if head.WhichOneof("payload") != field:
        raise InvalidInput(f"the first {message} must carry a {field} message; a chunk arrived before it")
    return getattr(head, field)


def human_bytes(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n} bytes"
