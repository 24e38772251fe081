"""The REST API and the selection page: prompts in, candidates out, one pick per job.

``create_app()`` builds the FastAPI app; ``serve()`` runs it with uvicorn. A job is queued by
recording its row and producing its ``PromptRequest`` to ``adfame.prompts`` (``inference.jobs``);
the workers do the rest. Every caller is a tenant named by its API key and sees only its own jobs
and videos. A pick is recorded by ``inference.feedback``, whose background trigger starts the
retrain DAG at every milestone. The endpoints are ``inference.api_routes``, the answers to errors
``inference.api_errors``, and what they share ``inference.api_services``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from adfame import __version__
from adfame.airflow_client import AirflowClient
from adfame.db import create_engine_for
from adfame.settings import Settings, get_settings
from inference.api_errors import register_error_handlers
from inference.api_limits import BodySizeLimit
from inference.api_metrics import MetricsMiddleware
from inference.api_routes import ROUTERS, STATIC_DIR
from inference.api_services import ApiOptions, Services, build_services

log = logging.getLogger(__name__)

_DESCRIPTION = (
    "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`. "
    "`POST /generate-video` queues a job; `GET /jobs/{job_id}` shows its candidates; "
    "`POST /jobs/{job_id}/selection` records the pick. The selection page is at `/`."
)


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
    services = build_services(settings, options, engine, airflow_client_factory)
    # /docs and /redoc serve Swagger UI and ReDoc from the package, not a CDN: they work offline.
    app = FastAPIOffline(
        title="AdFame API",
        version=__version__,
        summary="Prompt in, candidate videos out; the marketer's pick trains the next model.",
        description=_DESCRIPTION,
        lifespan=_lifespan(services, owns_engine=owns_engine),
    )
    app.state.services = services
    # Added first, so the metrics (outside it) count its 413 answers too.
    app.add_middleware(BodySizeLimit, max_bytes=options.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    register_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _lifespan(
    services: Services, *, owns_engine: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The milestone trigger runs while the app serves; what the app opened is closed after."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        services.trigger.start()
        try:
            yield
        finally:
            services.trigger.stop()
            services.producer.close()
            if owns_engine:
                services.engine.dispose()

    return lifespan


def serve(settings: Settings | None = None, options: ApiOptions | None = None) -> None:
    """Run the API with uvicorn until interrupted (``adfame api``)."""
    import uvicorn

    settings = settings or get_settings()
    options = options or ApiOptions.from_settings(settings)
    log.info("AdFame API on http://%s:%d (docs at /docs)", options.host, options.port)
    uvicorn.run(create_app(settings, options=options), host=options.host, port=options.port, log_level="info")
