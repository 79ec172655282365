"""Prometheus metrics of the worker (the shadow consumer's are in `rci.streams.shadow.metrics`).

One registry per process, exposed by `serve_metrics` on settings.metrics_host (loopback
by default) : settings.metrics_port, next to `/ready`: 503 until the process met each of its readiness
conditions (`mark_ready(condition=...)`: the worker once its models, index and sink are open in the running
agent, "serving", and its consumer joined the group and got its assignment, possibly empty, "joined"; the
shadow consumer once its teacher is loaded, its catalog caught up and it subscribed), then 200, and 503 again
once it stops serving (`mark_ready(False)`), and 503 for as long as a passing trouble lasts
(`mark_trouble`: the worker while it retries an outage, or while one batch has been in flight longer than
RCI_READY_STALL_S). `/metrics` answers from the first second, so it tells a health check only that the
process is alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _get_best_family, _SilentHandler

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ProcessMetrics:
    """One process's registry and its per-stage timer (the worker's and the shadow's metrics are both)."""

    registry: CollectorRegistry
    stage_seconds: Histogram  # labelled by "stage"
    ready: Gauge  # 1 once the process serves (what /ready answers 200 for), else 0

    def _readiness(self, name: str, conditions: tuple[str, ...] = ("serving",)) -> None:
        self.ready = Gauge(name, "1 once the process serves: models loaded, clients open, consuming; else 0",
                           registry=self.registry)  # fmt: skip
        self._ready = threading.Event()
        self._conditions = frozenset(conditions)
        self._met: set[str] = set()
        self._troubles: set[str] = set()
        self._ready_lock = threading.Lock()

    def mark_ready(self, ready: bool = True, condition: str = "serving") -> None:
        """Record that `condition` is met: `/ready` (and the ready gauge) turn ready once all the process's
        conditions are. `ready=False`: the process stops serving (draining, stopped), not ready from then on."""
        with self._ready_lock:
            if ready:
                self._met.add(condition)
            else:
                self._met.clear()
            self._update_ready()

    def mark_trouble(self, trouble: str, present: bool = True) -> None:
        """A passing reason not to be ready while it lasts (the worker: "retrying" an outage, "stalled" on a
        batch in flight too long); `/ready` answers 503 until every trouble is cleared."""
        with self._ready_lock:
            (self._troubles.add if present else self._troubles.discard)(trouble)
            self._update_ready()

    def _update_ready(self) -> None:
        now = self._conditions <= self._met and not self._troubles
        (self._ready.set if now else self._ready.clear)()
        self.ready.set(1 if now else 0)

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block into `stage_seconds{stage=name}`, also when it raises."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(name).observe(time.perf_counter() - start)


class WorkerMetrics(ProcessMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_in = Counter("rci_events_in", "video.published records consumed", registry=r)
        self.scores_out = Counter("rci_scores_out", "rci.scores records written", ["deboost"], registry=r)
        self.dead_letters = Counter("rci_dead_letters", "records sent to the DLQ", ["code"], registry=r)
        self.retries = Counter("rci_transient_retries", "batches retried after a transient error", registry=r)
        self.poison_records = Counter(
            "rci_poison_records", "records dead-lettered as internal_error after failing alone (rci.streams.isolation)",
            ["exception"], registry=r,
        )
        self.index_failures = Counter(
            "rci_index_failures", "scored videos left out of the index after failing alone (rci.streams.isolation)",
            ["exception"], registry=r,
        )
        self.stage_seconds = Histogram(
            "rci_stage_seconds", "time per pipeline stage per batch", ["stage"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.end_to_end_seconds = Histogram(
            "rci_end_to_end_seconds", "Kafka timestamp of the input to score written", buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "rci_batch_size", "records per micro-batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )
        self.consumer_lag = Gauge("rci_consumer_lag", "high watermark minus position", ["partition"], registry=r)
        self._readiness("rci_worker_ready", ("serving", "joined"))  # rci.streams.service, rci.streams.worker


Start = Callable[[str, list[tuple[str, str]]], object]


def metrics_app(metrics: ProcessMetrics) -> Callable[[dict, Start], Iterable[bytes]]:
    """WSGI app: `/ready` answers 200 once `metrics.mark_ready()` was called, 503 before; anything
    else is prometheus_client's exposition (`/metrics`)."""
    exposition = make_wsgi_app(metrics.registry)

    def app(environ: dict, start_response: Start) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/ready":
            ready = metrics.is_ready
            body = b"ready\n" if ready else b"not ready\n"
            start_response("200 OK" if ready else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])  # fmt: skip
            return [body]
        return exposition(environ, start_response)

    return app


def serve_metrics(metrics: ProcessMetrics, host: str, port: int) -> WSGIServer | None:
    """Expose /metrics and /ready over HTTP on host:port (settings: loopback unless configured), from a
    daemon thread; None when port is 0."""
    if not port:
        return None

    class Server(ThreadingWSGIServer):  # as prometheus_client's start_http_server: IPv4 or IPv6 by the host
        pass

    Server.address_family, host = _get_best_family(host, port)
    server = make_server(host, port, metrics_app(metrics), Server, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
