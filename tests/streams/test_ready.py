"""`/ready` on the metrics endpoint: 503 until the process says it serves, 200 after, 503 again when it
stops serving; `/metrics` answers all along and exports the ready gauge."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rci.services.ports import free_port
from rci.streams.metrics import ProcessMetrics, WorkerMetrics, serve_metrics
from rci.streams.shadow.metrics import ShadowMetrics


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _gauge(text: str, name: str) -> float:
    [value] = [s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]
    return value


@pytest.mark.parametrize(("metrics", "gauge"), [(WorkerMetrics, "rci_worker_ready"), (ShadowMetrics, "rci_shadow_ready")])
def test_ready_answers_503_until_marked_ready_then_200(metrics: type[ProcessMetrics], gauge: str) -> None:
    process = metrics()
    port = free_port()
    server = serve_metrics(process, "127.0.0.1", port)
    try:
        status, body = _get(port, "/ready")
        assert (status, body.strip()) == (503, "not ready")
        status, text = _get(port, "/metrics")  # alive before it is ready: what the old health check saw
        assert status == 200 and _gauge(text, gauge) == 0

        process.mark_ready()
        if isinstance(process, WorkerMetrics):  # models and clients open, but not yet in the group
            assert _get(port, "/ready")[0] == 503
            process.mark_ready(condition="joined")
        assert _get(port, "/ready") == (200, "ready\n")
        assert _gauge(_get(port, "/metrics")[1], gauge) == 1

        process.mark_ready(False)  # stopping (SIGTERM drain, shadow loop ended)
        assert _get(port, "/ready")[0] == 503
        assert _gauge(_get(port, "/metrics")[1], gauge) == 0
    finally:
        server.shutdown()
        server.server_close()


def test_the_state_is_per_process_metrics_object() -> None:
    one, other = WorkerMetrics(), WorkerMetrics()
    one.mark_ready(condition="joined")
    one.mark_ready()
    assert one.is_ready and not other.is_ready


def test_a_worker_is_ready_after_serving_and_joined_in_either_order() -> None:
    for order in (("serving", "joined"), ("joined", "serving")):
        metrics = WorkerMetrics()
        metrics.mark_ready(condition=order[0])
        assert not metrics.is_ready
        metrics.mark_ready(condition=order[1])
        assert metrics.is_ready
        metrics.mark_ready(condition="joined")  # a later rebalance keeps it ready
        assert metrics.is_ready


def test_once_stopping_a_later_assignment_does_not_make_it_ready_again() -> None:
    metrics = WorkerMetrics()
    metrics.mark_ready()
    metrics.mark_ready(condition="joined")
    metrics.mark_ready(False)  # SIGTERM: draining
    metrics.mark_ready(condition="joined")  # the group rebalances while this worker leaves
    assert not metrics.is_ready


def test_port_zero_serves_nothing() -> None:
    assert serve_metrics(WorkerMetrics(), "127.0.0.1", 0) is None
