"""Request and response bodies of the REST API (the OpenAPI schema at ``/docs`` is built from them).

The generation fields reuse ``PromptRequest``'s own field definitions, so the documented limits are
the ones a worker enforces; the API still validates every body through ``PromptRequest`` itself.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adfame.schemas import PromptRequest

JobStatus = Literal["queued", "running", "succeeded", "failed"]
MAX_WAIT_S = 300.0
_PROMPT_FIELDS = PromptRequest.model_fields

_EXAMPLE = {
    "prompt": "A sunset over the ocean in the style of a watercolor painting",
    "num_frames": 16,
    "fps": 8,
}


class GenerateVideoBody(BaseModel):
    """The mission's example body; everything but the prompt is optional."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    prompt: str = _PROMPT_FIELDS["prompt"]
    num_frames: int = _PROMPT_FIELDS["num_frames"]
    fps: int = _PROMPT_FIELDS["fps"]
    num_candidates: int = _PROMPT_FIELDS["num_candidates"]
    height: int = _PROMPT_FIELDS["height"]
    width: int = _PROMPT_FIELDS["width"]
    seed: int | None = _PROMPT_FIELDS["seed"]
    wait: bool = Field(False, description="answer only when the job has finished (or wait_timeout_s passed)")
    wait_timeout_s: float = Field(60.0, gt=0, le=MAX_WAIT_S, description="how long `wait` may take")

    @field_validator("prompt")
    @classmethod
    def _encodable(cls, value: str) -> str:
        # JSON may carry lone surrogates (\ud800) that no database or message can store.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("prompt must be valid Unicode text") from None
        return value

    def to_prompt_request(self, tenant: str) -> PromptRequest:
        """The message a worker gets; raises pydantic.ValidationError for what it could not honour."""
        return PromptRequest(tenant=tenant, **self.model_dump(exclude={"wait", "wait_timeout_s"}))


class JobAccepted(BaseModel):
    """A job that is queued or running: poll ``status_url``."""

    job_id: uuid.UUID
    status: JobStatus
    status_url: str


class CandidateView(BaseModel):
    index: int
    video_url: str = Field(description="presigned download URL; expires")
    variation_prompt: str
    seed: int


class JobView(JobAccepted):
    """A job with its candidates; ``video_url`` is the first candidate's, as in the mission's example."""

    prompt: str
    video_url: str | None
    frames: int
    fps: int
    duration: float = Field(description="seconds: frames / fps")
    model_version: str | None
    route: str | None
    timings: dict[str, Any] = Field(
        description="seconds per phase (queue wait, Kafka lag, denoise, decode, encode, upload, ...)"
    )
    error: str | None
    candidates: list[CandidateView]
    selected_candidate: int | None


class SelectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"candidate_index": 0}]})

    # The upper bound only keeps the number inside the database's integer; the job's own
    # candidates decide which indexes exist.
    candidate_index: int = Field(ge=0, lt=2**31)


class SelectionView(BaseModel):
    job_id: uuid.UUID
    candidate_index: int
    selected_at: datetime
    milestone: int | None = Field(None, description="the retrain milestone this selection completed, if any")


class ErrorView(BaseModel):
    detail: str


class ConflictView(ErrorView):
    selected_candidate: int | None = None


class ValidationErrorView(ErrorView):
    errors: list[dict[str, Any]]


class CheckView(BaseModel):
    ok: bool
    detail: str


class HealthView(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, CheckView]
