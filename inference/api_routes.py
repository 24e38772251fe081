"""The API's endpoints: jobs (prompt in, candidates out), feedback (the pick), operations, the page.

Each router is one part of the surface a reader looks for; ``inference.api.create_app`` includes
them all. Handlers stay thin: queueing and reading jobs is ``inference.jobs`` and the requests
repository, recording a pick is ``inference.feedback``.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import Engine, text
from starlette.exceptions import HTTPException

from adfame import health
from adfame.airflow_client import AirflowError
from adfame.messaging import MessagingError
from adfame.mlflow_webhook_setup import WEBHOOK_PATH
from adfame.repositories.requests import Job, get_job
from adfame.waiting import WaitTimeout, wait_for_async
from inference.api_errors import body_errors, json_response
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
from inference.api_services import Services, ServicesDep, Tenant
from inference.feedback import record_selection, selected_index
from inference.mlflow_webhook import InvalidSignature, MalformedEvent, WebhookAnswer
from inference.mlflow_webhook import receive as receive_webhook

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
WAIT_POLL_S = 0.25

# The answers every authenticated endpoint can give besides its own.
_COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorView, "description": "no valid API key"},
    413: {"model": ErrorView, "description": "request body above ADFAME_API_MAX_BODY_BYTES"},
    422: {"model": ValidationErrorView, "description": "invalid input"},
    429: {"model": ErrorView, "description": "the tenant's request rate limit; see Retry-After"},
    503: {"model": ErrorView, "description": "a service is down"},
}


def _documented(own: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """An endpoint's own responses plus the common errors, for the OpenAPI spec."""
    return {**own, **_COMMON_ERRORS}


# ---- jobs -----------------------------------------------------------------------------------------

jobs = APIRouter(tags=["jobs"])


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

    async def current() -> Job:
        job = await run_in_threadpool(get_job, services.engine, job_id, tenant)
        if job is None:  # only if it was deleted meanwhile
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found")
        return job

    try:
        return await wait_for_async(
            current,
            what=f"job {job_id} finished",
            timeout_s=timeout_s,
            interval_s=WAIT_POLL_S,
            done=lambda job: job.done,
        )
    except WaitTimeout as exc:
        return exc.last


_QUEUED_OR_DONE = _documented(
    {
        202: {"model": JobAccepted, "description": "queued (or still running when `wait` timed out)"},
        200: {"model": JobView, "description": "with `wait`: the finished job"},
    }
)


@jobs.post(
    "/generate-video", status_code=status.HTTP_202_ACCEPTED, response_model=None, responses=_QUEUED_OR_DONE
)
async def generate_video(
    body: GenerateVideoBody, tenant: Tenant, services: ServicesDep, request: Request
) -> JSONResponse:
    """Queue a job for the prompt; with `wait`, answer when its candidates are ready."""
    try:
        prompt_request = body.to_prompt_request(tenant)
    except ValidationError as exc:
        raise RequestValidationError(body_errors(exc)) from None
    await run_in_threadpool(services.queue, prompt_request)
    services.metrics.jobs_submitted.labels(tenant).inc()
    job_id = prompt_request.request_id
    accepted = JobAccepted(job_id=job_id, status="queued", status_url=_status_url(request, job_id))
    if not body.wait:
        return json_response(accepted, status.HTTP_202_ACCEPTED)
    job = await _wait_until_done(services, job_id, tenant, body.wait_timeout_s)
    if not job.done:
        return json_response(accepted.model_copy(update={"status": job.status}), status.HTTP_202_ACCEPTED)
    view = await run_in_threadpool(_job_view, request, services, job)
    return json_response(view, status.HTTP_200_OK)


@jobs.get(
    "/jobs/{job_id}",
    name="get_job",  # status URLs are built from this name
    response_model=JobView,
    responses=_documented({404: {"model": ErrorView}}),
)
def get_job_view(job_id: uuid.UUID, tenant: Tenant, services: ServicesDep, request: Request) -> JobView:
    """The job's status, model version, timings and candidates with download URLs."""
    job = get_job(services.engine, job_id, tenant)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found")
    return _job_view(request, services, job)


# ---- feedback -------------------------------------------------------------------------------------

feedback = APIRouter(tags=["feedback"])


_SELECTION_REFUSED = _documented(
    {
        404: {"model": ErrorView, "description": "no such job, or no such candidate"},
        409: {"model": ConflictView, "description": "already selected, or the job has not succeeded"},
    }
)


@feedback.post(
    "/jobs/{job_id}/selection",
    status_code=status.HTTP_201_CREATED,
    response_model=SelectionView,
    responses=_SELECTION_REFUSED,
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
        job_id=job_id,
        candidate_index=result.candidate_index,
        selected_at=result.selected_at,
        milestone=result.milestone,
    )


# ---- operations -----------------------------------------------------------------------------------

operations = APIRouter(tags=["operations"])


@operations.get(
    "/healthz",
    response_model=HealthView,
    responses={503: {"model": HealthView, "description": "a dependency is down"}},
)
def healthz(services: ServicesDep) -> JSONResponse:
    """Whether the database and Kafka answer; 503 names what does not."""
    checks = {"database": _check_database(services.engine), "kafka": _check_kafka(services)}
    healthy = all(c.ok for c in checks.values())
    view = HealthView(status="ok" if healthy else "unavailable", checks=checks)
    return json_response(view, status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)


@operations.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def prometheus_metrics(services: ServicesDep) -> Response:
    """Request counts and latencies by route, jobs submitted, selections and retrain milestones."""
    return Response(services.metrics.render(), media_type=services.metrics.content_type)


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


# ---- webhooks -------------------------------------------------------------------------------------

webhooks = APIRouter(tags=["webhooks"])


@webhooks.post(
    WEBHOOK_PATH,
    response_model=WebhookAnswer,
    responses={
        202: {"model": WebhookAnswer, "description": "a canary_rollout run was started"},
        200: {"model": WebhookAnswer, "description": "acknowledged: another alias or model, or a redelivery"},
        400: {"model": ErrorView, "description": "signed, but not an MLflow webhook event"},
        401: {"model": ErrorView, "description": "not signed with the webhook secret, or too old"},
        503: {"model": ErrorView, "description": "Airflow did not take the run; MLflow delivers again"},
    },
)
async def mlflow_registry_webhook(request: Request, services: ServicesDep) -> JSONResponse:
    """MLflow's signed `model_version_alias.created` event: alias challenger set -> canary_rollout."""
    body = await request.body()

    def handle() -> WebhookAnswer:
        with services.trigger.client_factory() as client:
            return receive_webhook(services.settings, client, request.headers, body)

    try:
        answer = await run_in_threadpool(handle)
    except InvalidSignature as exc:
        return json_response(ErrorView(detail=str(exc)), status.HTTP_401_UNAUTHORIZED)
    except MalformedEvent as exc:
        return json_response(ErrorView(detail=str(exc)), status.HTTP_400_BAD_REQUEST)
    except AirflowError as exc:
        log.warning("MLflow webhook: Airflow did not take the canary run: %s", exc)
        return json_response(ErrorView(detail=f"Airflow: {exc}"), status.HTTP_503_SERVICE_UNAVAILABLE)
    log.info("MLflow webhook: %s (%s)", answer.status, answer.detail)
    triggered = answer.status == "triggered"
    return json_response(answer, status.HTTP_202_ACCEPTED if triggered else status.HTTP_200_OK)


# ---- the selection page ---------------------------------------------------------------------------

page = APIRouter(include_in_schema=False)


@page.get("/")
def selection_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


ROUTERS = (jobs, feedback, operations, webhooks, page)
