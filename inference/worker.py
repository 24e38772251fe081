"""The inference worker: a Kafka consumer-group member that turns prompts into candidate videos.

For each message on ``adfame.prompts``:

1. validate it (``PromptRequest``); what a worker cannot honour goes to ``adfame.prompts.dlq``
   with the reason, and the offset moves on;
2. claim the request's row; a request that already succeeded (a redelivery after a crash or a
   rebalance) only has its completion event published again;
3. route it to the champion or the challenger by the canary weight, hot-swapping the LoRA;
4. generate all candidates in one batched call;
5. upload the mp4s under deterministic keys (a retry overwrites, never orphans), then commit the
   candidate rows and the request's status in one transaction, then publish the event;
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
import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy import Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError

from adfame.contracts import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    GENERATIONS_TOPIC,
    PROMPTS_DLQ_TOPIC,
    PROMPTS_TOPIC,
    VIDEOS_BUCKET,
    video_object_key,
)
from adfame.db import DatabaseUnavailable
from adfame.schemas import DeadLetter, GenerationEvent, PromptRequest
from adfame.settings import Settings
from adfame.storage import ObjectStore, ObjectStoreError
from inference.jobs import claim_request
from inference.routing import route_for
from inference.variations import candidate_seeds, expand

log = logging.getLogger(__name__)
ALIAS_REFRESH_S = 30.0
BASE_ROUTE = "base"
# After a service failed, the message is read again after this pause, doubled per failure up to the cap.
RETRY_PAUSE_S = 1.0
RETRY_PAUSE_MAX_S = 30.0


class RegistryUnavailable(RuntimeError):
    """The model registry could not be asked which versions carry the aliases."""


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
    def __init__(
        self,
        settings: Settings,
        server: Any,
        *,
        engine: Engine,
        store: ObjectStore,
        producer: KafkaProducer,
        consumer: KafkaConsumer,
        registry: Any = None,
    ) -> None:
        self.settings = settings
        self.server = server  # inference.model.ModelServer: a warm pipeline with hot-swappable LoRAs
        self.engine = engine
        self.store = store
        self.producer = producer
        self.consumer = consumer
        self.registry = registry  # an MlflowClient, or None to serve the base model only
        self.stop = threading.Event()
        # An encoder on every core this worker is given, plus one thread whose upload waits on the network.
        cores = settings.inference_threads or os.cpu_count() or 1
        self.store_pool = ThreadPoolExecutor(cores + 1, thread_name_prefix="store")
        self._aliases: dict[str, Any] | None = None  # None until the registry first answered
        self._aliases_at = 0.0
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
                            pause = min(2 * pause, RETRY_PAUSE_MAX_S)
                            break
                        pause = RETRY_PAUSE_S
                        self.commit_offset(record)
                        self.processed += 1
                if max_messages is not None and self.processed >= max_messages:
                    break
        finally:
            self.consumer.close()
            self.store_pool.shutdown()
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
        if claim == "other-tenant":
            self.dead_letter(record, f"request id {request.request_id} already belongs to another tenant")
        elif claim == "done":
            log.info(
                "request %s already succeeded (redelivery): publishing its event again", request.request_id
            )
            self.publish(self.completed_event(request))
        else:
            self.generate(request, received, _kafka_lag_s(record, received))

    # ---- steps --------------------------------------------------------------------------------
    def generate(self, request: PromptRequest, received: datetime, kafka_lag_s: float | None) -> None:
        """Generate, store and record one claimed request.

        Timings (seconds): ``queue_wait_s`` submit -> received by this worker, ``kafka_lag_s`` the
        message's Kafka timestamp -> received; ``denoise_s`` and ``decode_s`` the pipeline;
        ``encode_s`` and ``upload_s`` summed over the candidates, ``store_s`` the wall time of
        encoding and uploading them side by side; ``total_s`` received -> ready to commit.
        """
        from inference.model import generate, version_label

        timings: dict[str, float] = {
            "queue_wait_s": max(0.0, (received - request.submitted_at).total_seconds())
        }
        if kafka_lag_s is not None:
            timings["kafka_lag_s"] = kafka_lag_s
        route, version = self.choose_model(request)
        model_version = version_label(version)
        prompts = expand(
            request.prompt, request.num_candidates, request.request_id, self.settings.variation_strategy
        )
        seeds = list(candidate_seeds(request.request_id, request.num_candidates, request.seed))
        keys = [video_object_key(request.tenant, str(request.request_id), i) for i in range(len(prompts))]
        uploading = False
        try:
            self.server.activate(version)
            result = generate(
                self.server.pipe,
                prompts,
                seeds,
                num_frames=request.num_frames,
                height=request.height,
                width=request.width,
                num_inference_steps=self.settings.inference_steps,
            )
            timings.update(result.timings)
            tick, uploading = time.perf_counter(), True
            # Encoding is mostly FFmpeg's native work and uploads wait on the network: each
            # candidate is uploaded as soon as it is encoded, side by side with the others.
            futures = [
                self.store_pool.submit(self.store_video, key, video, request.fps)
                for key, video in zip(keys, result.videos, strict=True)
            ]
            wait(futures)  # every upload has ended, done or failed, before the request's fate is settled
            spent = [future.result() for future in futures]
            timings["store_s"] = time.perf_counter() - tick
            timings["encode_s"] = sum(encode for encode, _ in spent)
            timings["upload_s"] = sum(upload for _, upload in spent)
        except SERVICE_ERRORS:
            raise  # not the request's fault: run() reads its message again
        except Exception as exc:  # a failed request is recorded and reported, never retried forever
            log.exception("request %s failed on %s (%s)", request.request_id, model_version, route)
            if uploading:
                self.discard_uploads(keys)
            error = f"{exc.__class__.__name__}: {exc}"
            self.finish(request, route, model_version, timings, status="failed", error=error)
            self.publish(
                GenerationEvent(
                    request_id=request.request_id,
                    tenant=request.tenant,
                    status="failed",
                    model_version=model_version,
                    route=route,
                    error=error[:500],
                )
            )
            return
        timings["total_s"] = (datetime.now(UTC) - received).total_seconds()
        self.finish(
            request,
            route,
            model_version,
            timings,
            status="succeeded",
            candidates=list(zip(prompts, seeds, keys, strict=True)),
        )
        self.publish(
            GenerationEvent(
                request_id=request.request_id,
                tenant=request.tenant,
                status="succeeded",
                model_version=model_version,
                route=route,
                candidates=keys,
            )
        )
        log.info(
            "request %s: %d candidates by %s (%s) in %.2fs",
            request.request_id,
            len(keys),
            model_version,
            route,
            timings["total_s"],
        )

    def store_video(self, key: str, frames: Any, fps: int) -> tuple[float, float]:
        """Encode one candidate and upload it; returns (encode, upload) seconds."""
        from inference.video import encode_mp4

        start = time.perf_counter()
        data = encode_mp4(frames, fps)
        encoded = time.perf_counter()
        self.store.put_bytes(VIDEOS_BUCKET, key, data, content_type="video/mp4")
        return encoded - start, time.perf_counter() - encoded

    def discard_uploads(self, keys: list[str]) -> None:
        """A failed request keeps no videos: remove what its candidates uploaded (best effort)."""
        for key in keys:
            try:
                self.store.remove(VIDEOS_BUCKET, key)
            except ObjectStoreError as exc:
                log.warning("could not remove %s of a failed request: %s", key, exc)

    def finish(
        self,
        request: PromptRequest,
        route: str,
        model_version: str,
        timings: dict[str, float],
        *,
        status: str,
        candidates: list[tuple[str, int, str]] | None = None,
        error: str | None = None,
    ) -> None:
        """Candidates and the request's final state in one transaction: both or neither are visible."""
        import json

        prompts, seeds, keys = zip(*candidates, strict=True) if candidates else ((), (), ())
        with self.engine.begin() as conn:
            if candidates:  # all rows in one statement: one round trip, however many candidates
                conn.execute(
                    text("""
                    insert into candidates (request_id, candidate_index, variation_prompt, seed, object_key)
                    select :id, ordinality - 1, prompt, seed, key
                    from unnest(cast(:prompts as text[]), cast(:seeds as bigint[]), cast(:keys as text[]))
                        with ordinality as c (prompt, seed, key, ordinality)
                    on conflict (request_id, candidate_index) do update
                    set variation_prompt = excluded.variation_prompt, seed = excluded.seed,
                        object_key = excluded.object_key
                    """),
                    {
                        "id": str(request.request_id),
                        "prompts": list(prompts),
                        "seeds": list(seeds),
                        "keys": list(keys),
                    },
                )
            conn.execute(
                text("""
                update generation_requests set status = :status, finished_at = now(), route = :route,
                    model_version = :version, timings = cast(:timings as jsonb), error = :error
                where request_id = :id
                """),
                {
                    "status": status,
                    "route": route,
                    "version": model_version,
                    "timings": json.dumps({k: round(v, 4) for k, v in timings.items()}),
                    "error": error,
                    "id": str(request.request_id),
                },
            )

    def completed_event(self, request: PromptRequest) -> GenerationEvent:
        with self.engine.connect() as conn:
            row = conn.execute(
                text("select model_version, route from generation_requests where request_id = :id"),
                {"id": str(request.request_id)},
            ).one()
            keys = (
                conn.execute(
                    text("select object_key from candidates where request_id = :id order by candidate_index"),
                    {"id": str(request.request_id)},
                )
                .scalars()
                .all()
            )
        return GenerationEvent(
            request_id=request.request_id,
            tenant=request.tenant,
            status="succeeded",
            model_version=row.model_version,
            route=row.route or "base",
            candidates=list(keys),
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

    # ---- routing ------------------------------------------------------------------------------
    def challenger_weight(self) -> int:
        with self.engine.connect() as conn:
            weight = conn.execute(
                text("""
                select traffic_weight from deployments
                where alias = :alias and state = 'canary' and model_name = :model
                order by updated_at desc limit 1"""),
                {"alias": CHALLENGER_ALIAS, "model": self.settings.registered_model},
            ).scalar()
        return int(weight or 0)

    def aliases(self) -> dict[str, Any]:
        """The registry's champion and challenger versions, refreshed every ALIAS_REFRESH_S seconds.

        While the registry cannot be reached, the versions it named last keep serving.
        """
        from mlflow.exceptions import MlflowException

        from inference.model import resolve_alias

        if self.registry is None:
            return {}
        if self._aliases is None or time.monotonic() - self._aliases_at > ALIAS_REFRESH_S:
            try:
                self._aliases = {
                    alias: resolve_alias(self.registry, alias, self.settings.registered_model)
                    for alias in (CHAMPION_ALIAS, CHALLENGER_ALIAS)
                }
            except (MlflowException, OSError) as exc:  # OSError: the HTTP client's connection errors
                if self._aliases is None:
                    raise RegistryUnavailable(f"model registry unreachable: {exc}") from exc
                log.warning("model registry unreachable (%s): serving the versions it named last", exc)
            self._aliases_at = time.monotonic()
        return self._aliases

    def choose_model(self, request: PromptRequest) -> tuple[str, Any]:
        """The request's route and the version serving it: ``base`` and None when no version has the alias."""
        versions = self.aliases()
        route = CHAMPION_ALIAS
        if versions.get(CHALLENGER_ALIAS) is not None:  # only a canary has a weight to ask PostgreSQL for
            route = route_for(request.request_id, self.challenger_weight())
        version = versions.get(route)
        return (route if version is not None else BASE_ROUTE), version


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
        enable_cache(server.pipe, settings.inference_cache, settings.inference_cache_threshold)
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
    worker.install_signal_handlers()
    return worker.run(max_messages)
