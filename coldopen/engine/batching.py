"""Cross-request micro-batching: one worker thread per model merges items from many requests.

Requests call ``submit(items)`` and block until their items are done. The worker takes the oldest
queued item, then keeps taking items (from any request) until it holds ``max_batch`` of them or
``max_wait_s`` has passed since the first, runs the model once on the whole batch, and hands each
request its own results in order. The queue holds at most ``max_queue`` items; a request that would
overflow it is refused with ``Overloaded`` instead of waiting without bound.

Written here rather than taken from a library: the serving frameworks that batch dynamically
(Triton, Ray Serve, TorchServe) are whole servers, and the small Python batchers on PyPI are
asyncio-only or unmaintained; this is a queue, a condition variable and a thread.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from coldopen.domain.errors import Overloaded

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Request:
    items: Sequence
    results: list
    pending: int
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    batch_sizes: list[int] = field(default_factory=list)
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0
    busy: float = 0.0  # seconds the batches it rode in ran


@dataclass(frozen=True)
class BatchReport:
    """What one request saw: time queued before its first item ran, the model time of the batches it rode
    in (its stage's own time: shared with the other requests in them), and their sizes."""

    wait_ms: float
    batch_sizes: tuple[int, ...]
    busy_ms: float = 0.0

    @property
    def mean_batch(self) -> float:
        return sum(self.batch_sizes) / len(self.batch_sizes) if self.batch_sizes else 0.0


@dataclass(frozen=True)
class BatcherStats:
    name: str
    batches: int
    items: int
    busy_s: float
    queued: int

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class Ticket(Generic[R]):
    def __init__(self, request: _Request, batcher: Batcher | None = None):
        self._request = request
        self._batcher = batcher

    def _cancel(self) -> None:
        """Nobody waits for these items any more (deadline passed): drop those still queued."""
        if self._batcher is not None:
            self._batcher._drop(self._request)

    def result(self, timeout: float | None = None) -> tuple[list[R], BatchReport]:
        """Wait for the results; TimeoutError after `timeout` seconds (the items may still run)."""
        r = self._request
        if not r.done.wait(timeout):
            self._cancel()
            raise TimeoutError(f"{len(r.items)} items not done within {timeout:.1f} s")
        if r.error is not None:
            raise r.error
        wait = (r.started - r.enqueued) * 1000 if r.started else 0.0
        return r.results, BatchReport(round(wait, 2), tuple(r.batch_sizes), round(r.busy * 1000, 2))


class Batcher(Generic[T, R]):
    def __init__(
        self,
        name: str,
        fn: Callable[[list[T]], list[R]],
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        on_batch: Callable[[str, int, float], None] | None = None,
    ):
        if max_batch < 1 or max_queue < max_batch or max_wait_s < 0:
            raise ValueError(f"batcher {name}: need max_batch >= 1, max_queue >= max_batch and max_wait_s >= 0")
        self.name = name
        self._fn = fn
        self._max_batch = max_batch
        self._max_wait = max_wait_s
        self._max_queue = max_queue
        self._on_batch = on_batch  # (name, batch size, seconds): metrics
        self._queue: collections.deque[tuple[_Request, int]] = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._batches = 0
        self._items = 0
        self._busy = 0.0
        self.dropped = 0  # requests whose queued items were dropped because their deadline passed
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def enqueue(self, items: Sequence[T]) -> Ticket[R]:
        """Queue `items` for shared batches; the ticket's result() waits for their results, in order."""
        request = _Request(items=items, results=[None] * len(items), pending=len(items))
        if not items:
            request.done.set()
            return Ticket(request)
        if len(items) > self._max_queue:
            raise ValueError(f"batcher {self.name}: {len(items)} items exceed the queue of {self._max_queue}")
        with self._cv:
            if self._closed:
                raise Overloaded(f"the {self.name} stage is shutting down; retry on another replica")
            if len(self._queue) + len(items) > self._max_queue:
                raise Overloaded(
                    f"the {self.name} queue is full ({len(self._queue)} of {self._max_queue} items waiting); "
                    f"retry in about a second with backoff"
                )
            self._queue.extend((request, i) for i in range(len(items)))
            self._cv.notify()
        return Ticket(request, self)

    def _drop(self, request: _Request) -> None:
        with self._cv:
            kept = [(r, i) for r, i in self._queue if r is not request]
            if len(kept) != len(self._queue):
                self._queue.clear()
                self._queue.extend(kept)
                self.dropped += 1

    def submit(self, items: Sequence[T]) -> tuple[list[R], BatchReport]:
        """enqueue(items).result()"""
        return self.enqueue(items).result()

    @property
    def capacity(self) -> int:
        """Most items one request may queue at once."""
        return self._max_queue

    def stats(self) -> BatcherStats:
        with self._cv:
            return BatcherStats(self.name, self._batches, self._items, self._busy, len(self._queue))

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()

    def _take(self) -> list[tuple[_Request, int]] | None:
        with self._cv:
            while not self._queue:
                if self._closed:
                    return None
                self._cv.wait()
            deadline = time.perf_counter() + self._max_wait
            while len(self._queue) < self._max_batch and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cv.wait(left)
            n = min(self._max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            if not batch:  # a deadline dropped everything queued while the batch was filling
                continue
            started = time.perf_counter()
            requests = {id(r): r for r, _ in batch}
            for r in requests.values():
                if not r.started:
                    r.started = started
                r.batch_sizes.append(len(batch))
            error: BaseException | None = None
            try:
                results = self._fn([r.items[i] for r, i in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{self.name} returned {len(results)} results for {len(batch)} items")
            except BaseException as e:  # delivered to every request in the batch; the worker lives on
                log.exception("batcher %s: a batch of %d items failed", self.name, len(batch))
                error, results = e, [None] * len(batch)  # type: ignore[list-item]  # not read: `error` is
            took = time.perf_counter() - started
            for r in requests.values():
                r.busy += took
            with self._cv:
                self._batches += 1
                self._items += len(batch)
                self._busy += took
            if self._on_batch is not None:
                self._on_batch(self.name, len(batch), took)
            for (r, i), result in zip(batch, results):
                if error is not None:
                    r.error = error
                else:
                    r.results[i] = result
                r.pending -= 1
                if r.pending == 0:
                    r.done.set()
