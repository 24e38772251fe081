"""How the API answers what went wrong: a 4xx whose JSON ``detail`` says what to fix, a 503 naming a service.

Why in one place: every endpoint raises the same few error types (invalid input, a selection that
cannot be recorded, a backing service that is down); their mapping to status codes and bodies is
written once here and registered on the app by ``register_error_handlers``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from adfame.db import DatabaseUnavailable
from adfame.messaging import MessagingError
from adfame.storage import ObjectStoreError
from inference.api_limits import RateLimited
from inference.api_schemas import ConflictView, ErrorView, ValidationErrorView
from inference.feedback import AlreadySelected, JobNotFinished, SelectionError

log = logging.getLogger(__name__)

# Connection-level failures only: any other database error is a bug and stays a 500.
_DATABASE_DOWN = (DatabaseUnavailable, OperationalError, InterfaceError)


def json_response(model: Any, status_code: int) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code)


def body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """``PromptRequest``'s errors as if FastAPI had found them in the body."""
    return [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]


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
    return json_response(
        ValidationErrorView(detail=detail, errors=errors), status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def _selection_error(_request: Request, exc: SelectionError) -> JSONResponse:
    if isinstance(exc, AlreadySelected):
        return json_response(ConflictView(detail=str(exc), selected_candidate=exc.existing_index), 409)
    code = status.HTTP_409_CONFLICT if isinstance(exc, JobNotFinished) else status.HTTP_404_NOT_FOUND
    return json_response(ErrorView(detail=str(exc)), code)


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
    return json_response(ErrorView(detail=detail), status.HTTP_503_SERVICE_UNAVAILABLE)


async def _rate_limited(_request: Request, exc: RateLimited) -> JSONResponse:
    response = json_response(ErrorView(detail=str(exc)), status.HTTP_429_TOO_MANY_REQUESTS)
    response.headers["Retry-After"] = exc.retry_after_header
    return response


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(SelectionError, _selection_error)
    for unavailable in (*_DATABASE_DOWN, MessagingError, KafkaError, ObjectStoreError):
        app.add_exception_handler(unavailable, _service_unavailable)
