"""The REST API and the selection page: prompts in, candidates out, one pick per job.

``create_app()`` builds the FastAPI app; ``serve()`` runs it with uvicorn. A job is queued by
recording its row and producing its ``PromptRequest`` to ``adfame.prompts`` (``inference.jobs``);
the workers do the rest. Every caller is a tenant named by its API key and sees only its own jobs
and videos. A pick is recorded by ``inference.feedback``, whose background trigger starts the
retrain DAG at every milestone. Bad input gets a 4xx whose JSON ``detail`` says what to fix; a
service that is down gets a 503 that names it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy import Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from adfame import __version__, health
from adfame.airflow_client import AirflowClient
from adfame.contracts import RETRAIN_DAG_ID, VIDEOS_BUCKET
from adfame.db import DatabaseUnavailable, create_engine_for
from adfame.messaging import MessagingError, create_producer
from adfame.schemas import PromptRequest
from adfame.settings import Settings, get_settings
from adfame.storage import ObjectStore, ObjectStoreError
from inference.api_metrics import ApiMetrics, MetricsMiddleware
from inference.api_schemas import (
    CandidateView,
    CheckView,
    ConflictView,
    ErrorView,
    GenerateVideoBody,
    HealthView,
    JobAccepted,
    JobView,
    SelectionBody,
    SelectionView,
    ValidationErrorView,
)
from inference.auth import tenant_for_key
from inference.feedback import (
    AlreadySelected,
    JobNotFinished,
    MilestoneTrigger,
    SelectionError,
    record_selection,
    selected_index,
)
from inference.jobs import Job, get_job, submit

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
WAIT_POLL_S = 0.25


@dataclass(frozen=True)
class ApiOptions:
    """How the API runs; ``from_settings`` reads them from the process settings."""

    host: str = "127.0.0.1"
    port: int = 8000
    retrain_dag_id: str = RETRAIN_DAG_ID
    milestone_retry_s: float = 15.0
    presign_ttl_s: int = 3600
    kafka_ack_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiOptions:
        return cls(
            host=settings.host,
            port=settings.api_port,
            retrain_dag_id=settings.retrain_dag_id,
            milestone_retry_s=settings.milestone_retry_s,
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
    """What the endpoints use; one per app, built by ``create_app``."""

    settings: Settings
    options: ApiOptions
    engine: Engine
    store: ObjectStore
    producer: LazyProducer
    trigger: MilestoneTrigger
    metrics: ApiMetrics

    def queue(self, request: PromptRequest) -> None:
        """Record the job and put it on Kafka; a job whose message could not be sent is marked failed."""
        producer = self.producer.get()
        try:
            submit(request, engine=self.engine, producer=producer, timeout_s=self.options.kafka_ack_timeout_s)
        except KafkaError as exc:
            self._mark_not_queued(request.request_id, exc)
            raise MessagingError(f"the job could not be queued on Kafka ({exc.__class__.__name__})") from exc

    def _mark_not_queued(self, request_id: uuid.UUID, error: Exception) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE generation_requests SET status = 'failed', finished_at = now(), error = :error"
                    " WHERE request_id = :id AND status = 'queued'"
                ),
                {"id": request_id, "error": f"not queued: {error.__class__.__name__}: {error}"[:1000]},
            )

    def presign(self, object_key: str) -> str:
        return self.store.presign_get(
            VIDEOS_BUCKET, object_key, timedelta(seconds=self.options.presign_ttl_s)
        )


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
    """The tenant of the caller's API key; 401 with the reason when there is none or it is not valid."""
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise _unauthorized("missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    tenant = tenant_for_key(services.engine, key)
    if tenant is None:
        raise _unauthorized("unknown or revoked API key")
    return tenant


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "Bearer"})


Tenant = Annotated[str, Depends(require_tenant)]


# ---- views ----------------------------------------------------------------------------------------


def _status_url(request: Request, job_id: uuid.UUID) -> str:
    return request.app.url_path_for("get_job", job_id=str(job_id))


def _job_view(request: Request, services: Services, job: Job) -> JobView:
    candidates = [
        CandidateView(
            index=c.index,
            video_url=services.presign(c.object_key),
            variation_prompt=c.variation_prompt,
            seed=c.seed,
        )
        for c in job.candidates
    ]
    return JobView(
        job_id=job.request_id,
        status=job.status,
        status_url=_status_url(request, job.request_id),
        prompt=job.prompt,
        video_url=candidates[0].video_url if candidates else None,
        frames=job.num_frames,
        fps=job.fps,
        duration=job.num_frames / job.fps,
        model_version=job.model_version,
        route=job.route,
        timings=job.timings,
        error=job.error,
        candidates=candidates,
        selected_candidate=selected_index(services.engine, job.request_id),
    )


async def _wait_until_done(services: Services, job_id: uuid.UUID, tenant: str, timeout_s: float) -> Job:
    """Poll the job without holding a worker thread; returns it finished, or as it is at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = await run_in_threadpool(get_job, services.engine, job_id, tenant)
        if job is None:  # only if it was deleted meanwhile
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found")
        if job.done or time.monotonic() >= deadline:
            return job
        await asyncio.sleep(WAIT_POLL_S)


def _json(model: Any, status_code: int) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code)


# ---- error handlers -------------------------------------------------------------------------------


def _describe(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        return f"malformed JSON body: {error.get('ctx', {}).get('error', error.get('msg'))}"
    where = ".".join(loc[1:] if len(loc) > 1 and loc[0] == "body" else loc) or "request"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}"


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    detail = "; ".join(_describe(e) for e in exc.errors()) or "invalid request"
    return _json(ValidationErrorView(detail=detail, errors=errors), status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _selection_error(_request: Request, exc: SelectionError) -> JSONResponse:
    if isinstance(exc, AlreadySelected):
        return _json(ConflictView(detail=str(exc), selected_candidate=exc.existing_index), 409)
    code = status.HTTP_409_CONFLICT if isinstance(exc, JobNotFinished) else status.HTTP_404_NOT_FOUND
    return _json(ErrorView(detail=str(exc)), code)


# Connection-level failures only: any other database error is a bug and stays a 500.
_DATABASE_DOWN = (DatabaseUnavailable, OperationalError, InterfaceError)


def _unavailable_service(exc: Exception) -> str:
    """Which backing service failed, in words for the caller (the details stay in the log)."""
    if isinstance(exc, _DATABASE_DOWN):
        return "the database"
    if isinstance(exc, (MessagingError, KafkaError)):
        return "the job queue (Kafka)"
    return "the video store"


async def _service_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("503: %s: %s", exc.__class__.__name__, exc)
    detail = f"{_unavailable_service(exc)} is not available right now; try again shortly"
    return _json(ErrorView(detail=detail), status.HTTP_503_SERVICE_UNAVAILABLE)


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """``PromptRequest``'s errors as if FastAPI had found them in the body."""
    return [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]


# ---- the app --------------------------------------------------------------------------------------

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorView, "description": "no valid API key"}}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrorView, "description": "invalid input"}
}
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorView, "description": "a service is down"}
}


def create_app(
    settings: Settings | None = None,
    *,
    options: ApiOptions | None = None,
    engine: Engine | None = None,
    airflow_client_factory: Callable[[], AirflowClient] | None = None,
) -> FastAPI:
    """Build the API. ``engine`` and ``airflow_client_factory`` default to the ones ``settings`` names."""
    settings = settings or get_settings()
    options = options or ApiOptions.from_settings(settings)
    owns_engine = engine is None
    engine = engine or create_engine_for(settings)
    metrics = ApiMetrics()
    trigger = MilestoneTrigger(
        engine,
        airflow_client_factory or (lambda: AirflowClient(settings, timeout_s=10)),
        dag_id=options.retrain_dag_id,
        interval_s=options.milestone_retry_s,
        on_triggered=lambda milestones: metrics.milestones_triggered.inc(len(milestones)),
    )
    services = Services(
        settings, options, engine, ObjectStore(settings), LazyProducer(settings), trigger, metrics
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        trigger.start()
        try:
            yield
        finally:
            trigger.stop()
            services.producer.close()
            if owns_engine:
                engine.dispose()

    # /docs and /redoc serve Swagger UI and ReDoc from the package, not a CDN: they work offline.
    app = FastAPIOffline(
        title="AdFame API",
        version=__version__,
        summary="Prompt in, candidate videos out; the marketer's pick trains the next model.",
        description=(
            "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`. "
            "`POST /generate-video` queues a job; `GET /jobs/{job_id}` shows its candidates; "
            "`POST /jobs/{job_id}/selection` records the pick. The selection page is at `/`."
        ),
        lifespan=lifespan,
    )
    app.state.services = services
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SelectionError, _selection_error)
    for unavailable in (*_DATABASE_DOWN, MessagingError, KafkaError, ObjectStoreError):
        app.add_exception_handler(unavailable, _service_unavailable)

    @app.post(
        "/generate-video",
        tags=["jobs"],
        status_code=status.HTTP_202_ACCEPTED,
        response_model=None,
        responses={
            202: {"model": JobAccepted, "description": "queued (or still running when `wait` timed out)"},
            200: {"model": JobView, "description": "with `wait`: the finished job"},
            **_AUTH_ERRORS,
            **_INVALID,
            **_UNAVAILABLE,
        },
    )
    async def generate_video(
        body: GenerateVideoBody, tenant: Tenant, services: ServicesDep, request: Request
    ) -> JSONResponse:
        """Queue a job for the prompt; with `wait`, answer when its candidates are ready."""
        try:
            prompt_request = body.to_prompt_request(tenant)
        except ValidationError as exc:
            raise RequestValidationError(_body_errors(exc)) from None
        await run_in_threadpool(services.queue, prompt_request)
        services.metrics.jobs_submitted.labels(tenant).inc()
        job_id = prompt_request.request_id
        accepted = JobAccepted(job_id=job_id, status="queued", status_url=_status_url(request, job_id))
        if not body.wait:
            return _json(accepted, status.HTTP_202_ACCEPTED)
        job = await _wait_until_done(services, job_id, tenant, body.wait_timeout_s)
        if not job.done:
            return _json(accepted.model_copy(update={"status": job.status}), status.HTTP_202_ACCEPTED)
        view = await run_in_threadpool(_job_view, request, services, job)
        return _json(view, status.HTTP_200_OK)

    @app.get(
        "/jobs/{job_id}",
        name="get_job",  # status URLs are built from this name
        tags=["jobs"],
        response_model=JobView,
        responses={404: {"model": ErrorView}, **_AUTH_ERRORS, **_INVALID, **_UNAVAILABLE},
    )
    def get_job_view(job_id: uuid.UUID, tenant: Tenant, services: ServicesDep, request: Request) -> JobView:
        """The job's status, model version, timings and candidates with download URLs."""
        job = get_job(services.engine, job_id, tenant)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found")
        return _job_view(request, services, job)

    @app.post(
        "/jobs/{job_id}/selection",
        tags=["feedback"],
        status_code=status.HTTP_201_CREATED,
        response_model=SelectionView,
        responses={
            404: {"model": ErrorView, "description": "no such job, or no such candidate"},
            409: {"model": ConflictView, "description": "already selected, or the job has not succeeded"},
            **_AUTH_ERRORS,
            **_INVALID,
            **_UNAVAILABLE,
        },
    )
    def select_candidate(
        job_id: uuid.UUID, body: SelectionBody, tenant: Tenant, services: ServicesDep
    ) -> SelectionView:
        """Record the marketer's pick: one per job, final."""
        result = record_selection(services.engine, job_id, body.candidate_index, tenant)
        services.metrics.selections.inc()
        if result.milestone is not None:
            services.metrics.milestones_created.inc()
            services.trigger.notify()
        return SelectionView(
            job_id=job_id, candidate_index=result.candidate_index, selected_at=result.selected_at
        )

    @app.get(
        "/healthz",
        tags=["operations"],
        response_model=HealthView,
        responses={503: {"model": HealthView, "description": "a dependency is down"}},
    )
    def healthz(services: ServicesDep) -> JSONResponse:
        """Whether the database and Kafka answer; 503 names what does not."""
        checks = {"database": _check_database(services.engine), "kafka": _check_kafka(services)}
        healthy = all(c.ok for c in checks.values())
        view = HealthView(status="ok" if healthy else "unavailable", checks=checks)
        return _json(view, status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    def prometheus_metrics(services: ServicesDep) -> Response:
        """Request counts and latencies by route, jobs submitted, selections and retrain milestones."""
        return Response(services.metrics.render(), media_type=services.metrics.content_type)

    @app.get("/", include_in_schema=False)
    def selection_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _check_database(engine: Engine) -> CheckView:
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
    except Exception as exc:  # any failure is the answer to "is it healthy?"
        return CheckView(ok=False, detail=f"{exc.__class__.__name__}: {exc}".splitlines()[0])
    return CheckView(ok=True, detail=f"PostgreSQL {version}")


def _check_kafka(services: Services) -> CheckView:
    """The API's producer exists and the broker answers a metadata request now."""
    try:
        services.producer.get()
    except MessagingError as exc:
        return CheckView(ok=False, detail=str(exc))
    probe = health.kafka(services.settings)
    return CheckView(ok=probe.ok, detail=f"producer ready; broker: {probe.detail}")


def serve(settings: Settings | None = None, options: ApiOptions | None = None) -> None:
    """Run the API with uvicorn until interrupted (``adfame api``)."""
    import uvicorn

    settings = settings or get_settings()
    options = options or ApiOptions.from_settings(settings)
    log.info("AdFame API on http://%s:%d (docs at /docs)", options.host, options.port)
    uvicorn.run(create_app(settings, options=options), host=options.host, port=options.port, log_level="info")
