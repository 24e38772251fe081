"""The worker's Prometheus metrics: what a finished request adds, and two workers on one host."""

from __future__ import annotations

import socket
import urllib.request

from adfame.repositories.requests import Outcome
from inference.worker_metrics import WorkerMetrics, start_metrics_server


def _value(metrics: WorkerMetrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_finished_request_counts_its_status_stages_error_and_version() -> None:
    metrics = WorkerMetrics()
    timings = {"queue_wait_s": 0.2, "denoise_s": 1.5, "total_s": 2.0}
    metrics.observe(Outcome("succeeded", "champion", "3", timings))
    metrics.observe(Outcome("failed", "challenger", "4", {"queue_wait_s": 0.1}, error="RuntimeError: boom"))
    metrics.observe(Outcome("succeeded", "champion", "5", timings))  # the champion moved to version 5
    ok = {"status": "succeeded", "route": "champion", "model_version": "3"}
    assert _value(metrics, "adfame_worker_requests_total", ok) == 1
    assert _value(metrics, "adfame_worker_stage_seconds_count", {"stage": "queue_wait"}) == 3
    assert _value(metrics, "adfame_worker_stage_seconds_sum", {"stage": "denoise"}) == 3.0
    assert _value(metrics, "adfame_worker_errors_total", {"error": "RuntimeError"}) == 1
    assert _value(metrics, "adfame_worker_model_version", {"route": "champion", "model_version": "5"}) == 1
    assert _value(metrics, "adfame_worker_model_version", {"route": "champion", "model_version": "3"}) is None
    assert _value(metrics, "adfame_worker_model_version", {"route": "challenger", "model_version": "4"}) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_second_worker_on_the_host_takes_the_next_port_and_zero_is_off() -> None:
    port = _free_port()
    first, second = WorkerMetrics(), WorkerMetrics()
    first.observe(Outcome("succeeded", "base", "base", {"total_s": 1.0}))
    assert start_metrics_server(first, port, "127.0.0.1") == port
    taken = start_metrics_server(second, port, "127.0.0.1")
    assert taken is not None and taken > port
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'adfame_worker_requests_total{model_version="base",route="base",status="succeeded"} 1.0' in page
    assert start_metrics_server(WorkerMetrics(), 0, "127.0.0.1") is None
