"""Prometheus metrics of an inference worker, served over HTTP on ``worker_metrics_port`` (0: off).

Why beside ``generation_requests``: the table answers "how did each request end" for the canary and the
dashboard; these answer "what is this worker doing now" for a scraper, without a database query:

- ``adfame_worker_requests_total{status, route, model_version}``: finished requests;
- ``adfame_worker_stage_seconds{stage}``: each stage of a request's ``timings`` (``queue_wait``,
  ``kafka_lag``, ``activate``, ``denoise``, ``decode``, ``encode``, ``upload``, ``store``, ``total``);
- ``adfame_worker_errors_total{error}``: failed requests by exception class;
- ``adfame_worker_consumer_lag_records{partition}``: messages of the worker's partitions not read yet;
- ``adfame_worker_model_version{route, model_version}``: 1 for the version each route serves now.

Each worker has its own registry. Several workers on one host: ``start_metrics_server`` binds the first
free port of ``port .. port + PORT_SPAN - 1`` and logs it, so the second worker gets ``port + 1``.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from adfame.repositories.requests import Outcome

log = logging.getLogger(__name__)

PORT_SPAN = 16
_STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class MetricsPortsTaken(OSError):
    """No port of the worker's metrics range was free."""


class WorkerMetrics:
    """A worker's counters, histograms and gauges in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "adfame_worker_requests", "Finished requests", ["status", "route", "model_version"],
            registry=self.registry,
        )  # fmt: skip
        self.stages = Histogram(
            "adfame_worker_stage_seconds", "Seconds per stage of a request", ["stage"],
            buckets=_STAGE_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "adfame_worker_errors", "Failed requests by exception class", ["error"], registry=self.registry
        )
        self.lag = Gauge(
            "adfame_worker_consumer_lag_records", "Messages not read yet, per partition", ["partition"],
            registry=self.registry,
        )  # fmt: skip
        self.version = Gauge(
            "adfame_worker_model_version", "1 for the version a route serves now", ["route", "model_version"],
            registry=self.registry,
        )  # fmt: skip
        self._serving: dict[str, str] = {}

    def observe(self, outcome: Outcome) -> None:
        """Count a finished request, its stages, its error, and the version its route serves."""
        self.requests.labels(outcome.status, outcome.route, outcome.model_version).inc()
        for name, seconds in outcome.timings.items():
            self.stages.labels(name.removesuffix("_s")).observe(seconds)
        if outcome.error is not None:
            self.errors.labels(outcome.error.split(":", 1)[0]).inc()
        previous = self._serving.get(outcome.route)
        if previous != outcome.model_version:
            if previous is not None:
                self.version.remove(outcome.route, previous)
            self.version.labels(outcome.route, outcome.model_version).set(1)
            self._serving[outcome.route] = outcome.model_version

    def observe_lag(self, consumer: Any) -> None:
        """The consumer's lag per assigned partition: the log end offset minus its position. Best effort:
        a broker that does not answer leaves the last values (and the loop, which handles it, goes on)."""
        assigned = list(consumer.assignment())
        if not assigned:
            return
        try:
            ends = consumer.end_offsets(assigned)
        except KafkaError as exc:
            log.debug("consumer lag not measured: %s", exc)
            return
        for partition in assigned:
            lag = max(0, ends[partition] - consumer.position(partition))
            self.lag.labels(f"{partition.topic}-{partition.partition}").set(lag)


def start_metrics_server(metrics: WorkerMetrics, port: int, host: str) -> int | None:
    """Serve ``metrics`` on the first free port from ``port`` (None when ``port`` is 0: off); the port."""
    if port == 0:
        return None
    for candidate in range(port, min(port + PORT_SPAN, 65536)):
        try:
            start_http_server(candidate, addr=host, registry=metrics.registry)
        except OSError:
            continue
        log.info("worker metrics on http://%s:%d/metrics", host, candidate)
        return candidate
    raise MetricsPortsTaken(f"no free port for worker metrics in {port}..{port + PORT_SPAN - 1} on {host}")
