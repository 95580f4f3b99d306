"""Observability: what the service reports as it works, and the Prometheus endpoint that exposes it.

The service and the servicer report to an ``Observer`` (RPCs, refusals, ingest stages, model batches);
the base class does nothing, so without ``--metrics-listen`` nothing is recorded. ``Metrics`` records
into its own prometheus-client registry (one per server, so several servers in one process, as in the
tests, never collide) and reads gauges from the live service at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol


class QueueStats(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def queued(self) -> int: ...


class Observed(Protocol):
    """What metrics read from the live service at scrape time (app/service.py is one)."""

    @property
    def ingests_in_flight(self) -> int: ...

    @property
    def pool_size(self) -> int: ...

    @property
    def device(self) -> str: ...

    @property
    def decode_restarts(self) -> int: ...

    def queues(self) -> Sequence[QueueStats]: ...

    def index_sizes(self) -> dict[str, int]: ...

    def replication(self) -> dict[str, float] | None: ...

log = logging.getLogger(__name__)



class Observer:
    """Receives what the service does; this base class ignores it (metrics off)."""

    def rpc(self, method: str, code: str, seconds: float) -> None:
        pass

    def refusal(self, reason: str) -> None:
        pass

    def stages(self, timings_ms: dict[str, float]) -> None:
        pass

    def batch(self, batcher: str, size: int, seconds: float) -> None:
        pass

    def attach(self, service: Observed) -> None:
        pass

    def close(self) -> None:
        pass


class Metrics(Observer):
    """Prometheus metrics, served over HTTP at `listen` (host:port) under /metrics."""

    def __init__(self, listen: str):
        from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._rpcs = Counter("coldopen_rpc_requests", "RPCs handled, by method and status code",
                             ["method", "code"], registry=r)
        self._rpc_seconds = Histogram(
            "coldopen_rpc_duration_seconds", "RPC latency, by method and status code", ["method", "code"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self._refusals = Counter("coldopen_refusals", "requests refused, by the limit (setting) that refused them",
                                 ["reason"], registry=r)
        self._stages = Histogram(
            "coldopen_ingest_stage_seconds", "time per ingest stage", ["stage"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self._batch_sizes = Histogram(
            "coldopen_batch_size", "items per model batch, by batcher", ["batcher"], registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self._batch_seconds = Histogram(
            "coldopen_batch_duration_seconds", "model time per batch, by batcher", ["batcher"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._live = _LiveCollector()
        r.register(self._live)
        host, _, port = listen.rpartition(":")
        self._http, _thread = start_http_server(int(port), addr=host or "0.0.0.0", registry=r)
        self.port = self._http.server_port
        log.info("metrics on http://%s:%d/metrics", host or "0.0.0.0", self.port)

    def rpc(self, method: str, code: str, seconds: float) -> None:
        self._rpcs.labels(method, code).inc()
        self._rpc_seconds.labels(method, code).observe(seconds)

    def refusal(self, reason: str) -> None:
        self._refusals.labels(reason).inc()

    def stages(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self._stages.labels(stage).observe(ms / 1000.0)

    def batch(self, batcher: str, size: int, seconds: float) -> None:
        self._batch_sizes.labels(batcher).observe(size)
        self._batch_seconds.labels(batcher).observe(seconds)

    def attach(self, service: Observed) -> None:
        self._live.service = service

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


class _LiveCollector:
    """Gauges read from the service at scrape time: nothing to keep in step as it changes."""

    def __init__(self) -> None:
        self.service: Observed | None = None

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        service = self.service
        if service is None:
            return
        yield GaugeMetricFamily("coldopen_ingests_in_flight", "uploads holding an ingest slot", value=service.ingests_in_flight)
        depth = GaugeMetricFamily("coldopen_batch_queue_depth", "items waiting per model batcher", labels=["batcher"])
        for s in service.queues():
            depth.add_metric([s.name], s.queued)
        yield depth
        yield CounterMetricFamily(
            "coldopen_decode_worker_restarts", "decode worker pools restarted after a worker died",
            value=service.decode_restarts,
        )
        sizes = GaugeMetricFamily("coldopen_index_size", "vectors per index", labels=["index"])
        for name, size in service.index_sizes().items():
            sizes.add_metric([name], size)
        yield sizes
        yield GaugeMetricFamily("coldopen_pool_size", "videos in the performs-well pool", value=service.pool_size)
        replication = service.replication()
        if replication is not None:  # replicas on a shared catalog or vector store
            yield GaugeMetricFamily(
                "coldopen_feed_seconds_since_poll", "seconds since this replica last read the change feed",
                value=replication["seconds_since_poll"],
            )
            yield CounterMetricFamily(
                "coldopen_feed_changes_read", "changes read from the change feed", value=replication["changes_read"]
            )
            yield GaugeMetricFamily(
                "coldopen_vector_changes_unshipped", "committed writes not yet in the shared vector store",
                value=replication["unshipped"],
            )
        yield from _gpu_metrics(service)


def _gpu_metrics(service: Observed):
    from prometheus_client.core import GaugeMetricFamily

    if service.device != "cuda":
        return
    import torch

    used = GaugeMetricFamily("coldopen_gpu_memory_bytes", "GPU memory held by torch", labels=["device", "kind"])
    util = GaugeMetricFamily("coldopen_gpu_utilization_ratio", "GPU busy fraction (NVML)", labels=["device"])
    for i in range(torch.cuda.device_count()):
        used.add_metric([str(i), "allocated"], torch.cuda.memory_allocated(i))
        used.add_metric([str(i), "reserved"], torch.cuda.memory_reserved(i))
        try:
            util.add_metric([str(i)], torch.cuda.utilization(i) / 100.0)
        except Exception:  # NVML (pynvml) missing: memory only
            pass
    yield used
    yield util
