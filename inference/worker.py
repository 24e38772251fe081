"""The inference worker: a Kafka consumer-group member that turns prompts into candidate videos.

For each message on ``adfame.prompts``:

1. validate it (``PromptRequest``); what a worker cannot honour goes to ``adfame.prompts.dlq``
   with the reason, and the offset moves on;
2. claim the request's row; a request that already succeeded (a redelivery after a crash or a
   rebalance) only has its completion event published again, and one the API refused (Kafka acked its
   message too late, so the client was told 503 and may have sent it again) is not served;
3. route it to the champion or the challenger by the canary weight (``inference.routing``);
4. ask the model server for all candidates in one batched call, hot-swapping the LoRA
   (``ModelServer.generate``);
5. store the mp4s under deterministic keys (``inference.candidate_videos``: a retry overwrites, never
   orphans), then record the candidate rows and the request's status in one transaction
   (``adfame.repositories.requests``), then publish the event;
6. commit the Kafka offset: only now is the message done.

A request that fails (a LoRA that cannot be loaded, a pipeline error) is recorded as failed, with
its route, and its partial uploads removed. When a service around the model fails instead (object
store, database, Kafka, model registry), the request is not at fault: its message is read again
after a pause, so an outage delays requests but loses none. SIGTERM lets the current request finish
and commit before the worker leaves the group.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from adfame.contracts import GENERATIONS_TOPIC, PROMPTS_DLQ_TOPIC, PROMPTS_TOPIC
from adfame.db import DatabaseUnavailable
from adfame.repositories.requests import Candidate, Outcome, claim_request, finish_request, get_job
from adfame.schemas import DeadLetter, GenerationEvent, PromptRequest
from adfame.settings import Settings
from adfame.storage import ObjectStore, ObjectStoreError
from inference.candidate_videos import CandidateVideos
from inference.routing import BASE_ROUTE, ModelRouter, RegistryUnavailable
from inference.variations import plan_candidates
from inference.worker_metrics import WorkerMetrics, start_metrics_server

if TYPE_CHECKING:
    from inference.model import ModelServer, ModelVersionRef

log = logging.getLogger(__name__)
# After a service failed, the message is read again after this pause, doubled per failure up to the cap.
RETRY_PAUSE_S = 1.0

# MLflow's client retries a registry that does not answer for about four minutes by default. A worker asks
# the registry only to move between versions and serves the versions it knows meanwhile, so it gives up
# within seconds instead of holding every request that long (an explicit setting in the environment wins).
REGISTRY_CLIENT_ENVIRONMENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

# Failures of the services around the model rather than of the request (see the module docstring).
SERVICE_ERRORS: tuple[type[Exception], ...] = (
    ObjectStoreError,
    DatabaseUnavailable,
    OperationalError,
    InterfaceError,
    KafkaError,
    RegistryUnavailable,
)


class Worker:
    """One consumer-group member: the loop over messages, and the steps of serving one request."""

    def __init__(
        self,
        settings: Settings,
        server: ModelServer,
        *,
        engine: Engine,
        store: ObjectStore,
        producer: KafkaProducer,
        consumer: KafkaConsumer,
        registry: Any = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or WorkerMetrics()  # Prometheus (inference/worker_metrics.py)
        self.server = server  # a warm pipeline with hot-swappable LoRAs
        self.engine = engine
        self.producer = producer
        self.consumer = consumer
        self.router = ModelRouter(settings, engine, registry)  # registry: an MlflowClient, or None
        self.videos = CandidateVideos(store, encoders=settings.inference_threads or os.cpu_count() or 1)
        self.stop = threading.Event()
        self.processed = 0

    # ---- loop ---------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: object) -> None:
            log.info("signal %d: finishing the current request, then leaving the group", signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    def run(self, max_messages: int | None = None) -> int:
        """Consume until stopped (or ``max_messages`` handled); returns the number handled."""
        import torch

        log.info(
            "worker in group %s on %s, serving %s with %d CPU threads",
            self.settings.worker_group,
            PROMPTS_TOPIC,
            self.server.active_version,
            torch.get_num_threads(),
        )
        pause = RETRY_PAUSE_S
        try:
            while not self.stop.is_set():
                for partition, records in self.consumer.poll(timeout_ms=1000, max_records=1).items():
                    for record in records:
                        try:
                            self.handle(record)
                        except SERVICE_ERRORS as exc:
                            self.read_again_later(partition, record, exc, pause)
                            pause = min(2 * pause, self.settings.worker_retry_pause_max_s)
                            break
                        pause = RETRY_PAUSE_S
                        self.commit_offset(record)
                        self.processed += 1
                        self.metrics.observe_lag(self.consumer)
                if max_messages is not None and self.processed >= max_messages:
                    break
        finally:
            self.consumer.close()
            self.videos.close()
        return self.processed

    def read_again_later(self, partition: Any, record: Any, exc: Exception, pause: float) -> None:
        """Rewind to ``record`` and wait: the next poll returns it again, unless SIGTERM came first."""
        log.warning(
            "%s[%d]@%d: %s: %s; reading the message again in %.0f s",
            record.topic,
            record.partition,
            record.offset,
            exc.__class__.__name__,
            exc,
            pause,
        )
        self.consumer.seek(partition, record.offset)
        self.stop.wait(pause)

    def commit_offset(self, record: Any) -> None:
        """The request's results are durable; a lost commit only makes a redelivery republish its event."""
        try:
            self.consumer.commit()
        except KafkaError as exc:  # e.g. the group rebalanced meanwhile: the partition's new owner redoes it
            log.warning(
                "committing %s[%d]@%d failed (%s): a redelivery will find the request done",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )

    def handle(self, record: Any) -> None:
        received = datetime.now(UTC)
        try:
            request = PromptRequest.model_validate_json(record.value)
        except (ValidationError, ValueError) as exc:
            self.dead_letter(record, _reason(exc))
            return
        if record.key is not None and record.key != str(request.request_id):
            self.dead_letter(record, f"message key {record.key!r} is not the request id {request.request_id}")
            return
        claim = claim_request(self.engine, request)
        if claim.status == "other-tenant":
            self.dead_letter(record, f"request id {request.request_id} already belongs to another tenant")
        elif claim.status == "refused":  # the API answered 503 for it; the client may have sent it again
            log.warning(
                "request %s was refused by the API (not queued in time): not serving it", request.request_id
            )
        elif claim.status == "done":
            log.info(
                "request %s already succeeded (redelivery): publishing its event again", request.request_id
            )
            self.publish(self.replayed_event(request))
        else:
            self.serve(request, received, _kafka_lag_s(record, received), route_seq=claim.route_seq)

    # ---- serving one request: generate + store, record, publish ------------------------------------
    def serve(
        self, request: PromptRequest, received: datetime, kafka_lag_s: float | None, *, route_seq: int
    ) -> None:
        """Generate and store the claimed request's candidates, then record and publish how it ended.

        ``route_seq`` (from the claim) places the request in the canary split (``inference.routing``).

        Timings (seconds): ``queue_wait_s`` submit -> received by this worker, ``kafka_lag_s`` the
        message's Kafka timestamp -> received; ``activate_s`` the version switch, ``denoise_s`` and
        ``decode_s`` the pipeline; ``encode_s`` and ``upload_s`` summed over the candidates, ``store_s``
        the wall time of encoding and uploading them side by side; ``total_s`` received -> ready to commit.
        """
        from inference.model import version_label

        timings = {"queue_wait_s": max(0.0, (received - request.submitted_at).total_seconds())}
        if kafka_lag_s is not None:
            timings["kafka_lag_s"] = kafka_lag_s
        route, version = self.router.choose(route_seq)
        model_version = version_label(version)
        candidates = plan_candidates(request, self.settings.variation_strategy)
        try:
            self.make_videos(request, version, candidates, timings)
        except SERVICE_ERRORS:
            raise  # not the request's fault: run() reads its message again
        except Exception as exc:  # a failed request is recorded and reported, never retried forever
            log.exception("request %s failed on %s (%s)", request.request_id, model_version, route)
            error = f"{exc.__class__.__name__}: {exc}"
            outcome = Outcome("failed", route, model_version, timings, error=error)
        else:
            timings["total_s"] = (datetime.now(UTC) - received).total_seconds()
            outcome = Outcome("succeeded", route, model_version, timings, candidates=candidates)
        self.record(request, outcome)
        self.metrics.observe(outcome)
        self.publish(self.finished_event(request, outcome))
        if outcome.status == "succeeded":
            log.info(
                "request %s: %d candidates by %s (%s) in %.2fs",
                request.request_id,
                len(candidates),
                model_version,
                route,
                timings["total_s"],
            )

    def record(self, request: PromptRequest, outcome: Outcome) -> None:
        """Write the request's candidate rows and final state (one transaction, in PostgreSQL)."""
        finish_request(self.engine, request.request_id, outcome)

    def make_videos(
        self,
        request: PromptRequest,
        version: ModelVersionRef | None,
        candidates: list[Candidate],
        timings: dict[str, float],
    ) -> None:
        """Ask the model server for the candidates and store them; adds each phase's seconds to ``timings``.

        ``timings`` is filled as the phases end, so a request that fails midway records how far it got.
        """
        generation = self.server.generate(
            version,
            [c.variation_prompt for c in candidates],
            [c.seed for c in candidates],
            num_frames=request.num_frames,
            height=request.height,
            width=request.width,
            num_inference_steps=self.settings.inference_steps,
        )
        timings.update(generation.timings)
        keys = [c.object_key for c in candidates]
        timings.update(self.videos.put_all(keys, generation.videos, request.fps))

    @staticmethod
    def finished_event(request: PromptRequest, outcome: Outcome) -> GenerationEvent:
        return GenerationEvent.finished(
            request.request_id,
            request.tenant,
            model_version=outcome.model_version,
            route=outcome.route,
            candidates=[c.object_key for c in outcome.candidates],
            error=outcome.error,
        )

    def replayed_event(self, request: PromptRequest) -> GenerationEvent:
        """The completion event of a request that already succeeded, rebuilt from its rows."""
        job = get_job(self.engine, request.request_id)
        assert job is not None, "a request claimed as done has a row"
        return GenerationEvent.finished(
            job.request_id,
            job.tenant,
            model_version=job.model_version,
            route=job.route or BASE_ROUTE,
            candidates=[c.object_key for c in job.candidates],
        )

    def publish(self, event: GenerationEvent) -> None:
        self.producer.send(GENERATIONS_TOPIC, key=str(event.request_id), value=event.model_dump(mode="json"))
        self.producer.flush(timeout=30)

    def dead_letter(self, record: Any, reason: str) -> None:
        log.warning("dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
        letter = DeadLetter(
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            payload=(record.value or b"").decode("utf-8", errors="replace"),
        )
        self.producer.send(PROMPTS_DLQ_TOPIC, key=record.key, value=letter.model_dump(mode="json"))
        self.producer.flush(timeout=30)


def _kafka_lag_s(record: Any, received: datetime) -> float | None:
    """Seconds from the message's Kafka timestamp (producer create time or broker append time)."""
    if record.timestamp is None or record.timestamp < 0:
        return None
    return max(0.0, received.timestamp() - record.timestamp / 1000)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors()[0]["type"] == "json_invalid":
        return f"not a JSON prompt message: {exc.errors()[0]['msg']}"
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors())
    return f"not a JSON prompt message: {exc}"


def run_worker(settings: Settings, max_messages: int | None = None) -> int:
    """Assemble a worker from the settings (warm model, clients) and consume until SIGTERM."""
    from adfame.db import engine
    from adfame.messaging import create_consumer, create_producer
    from adfame.mlflow_setup import configure_mlflow
    from inference.model import ModelServer, enable_cache

    if settings.inference_threads:
        import torch

        torch.set_num_threads(settings.inference_threads)
    server = ModelServer(settings.model_source, device=settings.device or None)
    if settings.inference_cache:
        # MagCache calibrates for the step count the worker runs: ratios for another count misplace the skips.
        enable_cache(
            server.pipe,
            settings.inference_cache,
            settings.inference_cache_threshold,
            num_inference_steps=settings.inference_steps,
        )
    for variable, value in REGISTRY_CLIENT_ENVIRONMENT.items():
        os.environ.setdefault(variable, value)
    consumer = create_consumer(
        settings.worker_group,
        [PROMPTS_TOPIC],
        settings,
        # A real model on a CPU takes minutes per request; the group must not evict a busy worker,
        # but a dead one (its heartbeats stop) hands its partitions over within seconds.
        max_poll_interval_ms=30 * 60 * 1000,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=2_000,
    )
    worker = Worker(
        settings,
        server,
        engine=engine(),
        store=ObjectStore(settings),
        producer=create_producer(settings),
        consumer=consumer,
        registry=configure_mlflow(settings),
    )
    start_metrics_server(worker.metrics, settings.worker_metrics_port, settings.host)
    worker.install_signal_handlers()
    return worker.run(max_messages)
