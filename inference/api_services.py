"""What the API's endpoints share: how it runs, the services behind it, and the caller's tenant.

Why a module of its own: the routes (``inference.api_routes``) and the app factory (``inference.api``)
both need these, and the routes must not import the factory that includes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from adfame.airflow_client import AirflowClient
from adfame.contracts import RETRAIN_DAG_ID, VIDEOS_BUCKET
from adfame.messaging import MessagingError, create_producer
from adfame.repositories.requests import fail_unqueued
from adfame.schemas import PromptRequest
from adfame.settings import Settings
from adfame.storage import ObjectStore
from inference.api_limits import TenantRateLimiter
from inference.api_metrics import ApiMetrics
from inference.auth import tenant_for_key
from inference.feedback import MilestoneTrigger
from inference.jobs import submit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiOptions:
    """How the API runs; ``from_settings`` reads them from the process settings."""

    host: str = "127.0.0.1"
    port: int = 8000
    retrain_dag_id: str = RETRAIN_DAG_ID
    milestone_retry_s: float = 15.0
    presign_ttl_s: int = 3600
    kafka_ack_timeout_s: float = 10.0
    rate_limit_per_minute: int = 1200
    rate_limit_burst: int = 200
    max_body_bytes: int = 65536

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiOptions:
        return cls(
            host=settings.host,
            port=settings.api_port,
            retrain_dag_id=settings.retrain_dag_id,
            milestone_retry_s=settings.milestone_retry_s,
            presign_ttl_s=settings.api_presign_ttl_s,
            rate_limit_per_minute=settings.api_rate_limit_per_minute,
            rate_limit_burst=settings.api_rate_limit_burst,
            max_body_bytes=settings.api_max_body_bytes,
        )


class LazyProducer:
    """The Kafka producer, created on first use and again after a failed attempt.

    So the API starts, and answers 503 with the reason, while Kafka is down, and recovers by itself.
    After a failure, callers get the same error at once for ``retry_after_s`` instead of each
    waiting for the broker again.
    """

    def __init__(self, settings: Settings, retry_after_s: float = 5.0):
        self.settings = settings
        self.retry_after_s = retry_after_s
        self._producer: KafkaProducer | None = None
        self._failure: tuple[float, MessagingError] | None = None
        self._lock = threading.Lock()

    def get(self) -> KafkaProducer:
        with self._lock:
            if self._producer is not None:
                return self._producer
            if self._failure is not None and time.monotonic() - self._failure[0] < self.retry_after_s:
                raise self._failure[1]
            try:
                # Short timeouts: an API call must not hang on a missing broker.
                self._producer = create_producer(
                    self.settings, client_id="adfame-api", bootstrap_timeout_ms=3000, max_block_ms=5000
                )
            except MessagingError as exc:
                self._failure = (time.monotonic(), exc)
                raise
            self._failure = None
            return self._producer

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


@dataclass
class Services:
    """What the endpoints use; one per app, built by ``build_services``."""

    settings: Settings
    options: ApiOptions
    engine: Engine
    store: ObjectStore
    producer: LazyProducer
    trigger: MilestoneTrigger
    metrics: ApiMetrics
    limiter: TenantRateLimiter

    def queue(self, request: PromptRequest) -> None:
        """Record the job and put it on Kafka; a job whose message Kafka did not acknowledge is refused
        (marked failed, so a late delivery is not served), unless a worker has claimed it meanwhile: then
        the message arrived after all and the job is accepted like any other."""
        producer = self.producer.get()
        try:
            submit(request, engine=self.engine, producer=producer, timeout_s=self.options.kafka_ack_timeout_s)
        except KafkaError as exc:
            reason = f"not queued: {exc.__class__.__name__}: {exc}"[:1000]
            if fail_unqueued(self.engine, request.request_id, reason):
                raise MessagingError(
                    f"the job could not be queued on Kafka ({exc.__class__.__name__})"
                ) from exc
            log.warning(
                "job %s: Kafka's ack was late (%s), but a worker has it: accepted", request.request_id, exc
            )

    def presign(self, object_key: str) -> str:
        return self.store.presign_get(
            VIDEOS_BUCKET, object_key, timedelta(seconds=self.options.presign_ttl_s)
        )


def build_services(
    settings: Settings,
    options: ApiOptions,
    engine: Engine,
    airflow_client_factory: Callable[[], AirflowClient] | None = None,
) -> Services:
    """The app's services; the milestone trigger counts what it triggered in the app's metrics."""
    metrics = ApiMetrics()
    trigger = MilestoneTrigger(
        engine,
        airflow_client_factory or (lambda: AirflowClient(settings, timeout_s=10)),
        dag_id=options.retrain_dag_id,
        interval_s=options.milestone_retry_s,
        on_triggered=lambda milestones: metrics.milestones_triggered.inc(len(milestones)),
    )
    store, producer = ObjectStore(settings), LazyProducer(settings)
    limiter = TenantRateLimiter(options.rate_limit_per_minute, options.rate_limit_burst)
    return Services(settings, options, engine, store, producer, trigger, metrics, limiter)


# ---- dependencies ---------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <api key>`")


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def require_tenant(
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> str:
    """The tenant of the caller's API key; 401 with the reason when there is none or it is not valid,
    RateLimited (429) when the tenant has used up its requests for now."""
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise _unauthorized("missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    tenant = tenant_for_key(services.engine, key)
    if tenant is None:
        raise _unauthorized("unknown or revoked API key")
    services.limiter.check(tenant)
    return tenant


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "Bearer"})


Tenant = Annotated[str, Depends(require_tenant)]
