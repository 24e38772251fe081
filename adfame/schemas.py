"""Messages that cross process boundaries (Kafka, REST), versioned and validated in one place.

A worker must reject what it could not honour *before* it starts work, with a reason
a person can act on; the same model validates the REST body and the Kafka payload.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adfame.text import clean_text

SCHEMA_VERSION = 1
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MIN_PROMPT_CHARS = 3
MAX_PROMPT_CHARS = 1000
MAX_EVENT_ERROR_CHARS = 500  # the full error stays in PostgreSQL; an event carries its start
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class PromptRequest(BaseModel):
    """One generation request as it travels on ``adfame.prompts`` (key: the request id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    request_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    tenant: str = Field(pattern=TENANT_PATTERN, description="brand the request belongs to")
    prompt: str = Field(min_length=MIN_PROMPT_CHARS, max_length=MAX_PROMPT_CHARS)
    num_candidates: int = Field(5, ge=1, le=8)
    num_frames: int = Field(16, ge=1, le=129)
    fps: int = Field(8, ge=1, le=60)
    height: int = Field(64, ge=16, le=1280, multiple_of=16)
    width: int = Field(64, ge=16, le=1280, multiple_of=16)
    seed: int | None = Field(None, ge=0, lt=2**63)
    submitted_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("prompt")
    @classmethod
    def _readable_text(cls, value: str) -> str:
        """The prompt as it is stored: cleaned by ``adfame.text.clean_text`` (invisible format characters,
        zero-width and bidi controls removed), so it reads as it shows; refused when little is left."""
        if _CONTROL.search(value):
            raise ValueError("prompt must be plain text (no control characters)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("prompt must be valid Unicode text (no lone surrogates)") from None
        cleaned = clean_text(value) or ""
        if len(cleaned) < MIN_PROMPT_CHARS:
            invisible = sum(unicodedata.category(ch) == "Cf" for ch in value)
            hidden = f"; its {invisible} invisible format characters (zero-width, bidi controls) do not count"
            hidden = hidden if invisible else ""
            raise ValueError(f"prompt must hold at least {MIN_PROMPT_CHARS} visible characters{hidden}")
        return cleaned

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


class GenerationEvent(BaseModel):
    """Published on ``adfame.generations`` once a request's results are durable."""

    schema_version: Literal[1] = SCHEMA_VERSION
    request_id: uuid.UUID
    tenant: str
    status: Literal["succeeded", "failed"]
    model_version: str | None
    route: Literal["champion", "challenger", "base"]
    candidates: list[str] = Field(default_factory=list, description="object keys in adfame-videos")
    error: str | None = None
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def finished(
        cls,
        request_id: uuid.UUID,
        tenant: str,
        *,
        model_version: str | None,
        route: str,
        candidates: list[str] | None = None,
        error: str | None = None,
    ) -> GenerationEvent:
        """The event of a request that ended: failed when it has an ``error``, else succeeded.

        One constructor for every completion (a fresh success, a failure, a redelivery's replay), so
        the status always follows from the error and a long error is cut the same way everywhere.
        """
        return cls(
            request_id=request_id,
            tenant=tenant,
            status="failed" if error is not None else "succeeded",
            model_version=model_version,
            route=route,
            candidates=candidates or [],
            error=error[:MAX_EVENT_ERROR_CHARS] if error is not None else None,
        )


class DeadLetter(BaseModel):
    """What could not be processed, why, and where it came from (``adfame.prompts.dlq``)."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None
    payload: str = Field(description="the original bytes, decoded as UTF-8 with replacement")
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class RetrainConf(BaseModel):
    """The conf of a ``retrain_on_feedback`` run: which milestone to learn from, and optional overrides.

    The milestone trigger (``inference/feedback.py``) sends ``milestone`` and ``selection_count``; a
    person re-running a milestone may add overrides. ``train`` holds fields of
    ``training.config.TrainConfig`` and ``evaluation`` fields of ``training.evaluation.EvalConfig``;
    the first task validates them too, so a bad conf fails before anything is exported.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    milestone: int = Field(ge=1, description="milestone N: the selections numbered 200(N-1)+1 .. 200N")
    selection_count: int | None = Field(None, ge=0, description="selections counted when the milestone fired")
    heldout_share: float = Field(0.2, ge=0.0, lt=1.0, description="selections kept aside for evaluation")
    curated_sample: int = Field(0, ge=0, description="curated train clips of the latest snapshot to add")
    warm_start: bool = Field(True, description="start the LoRA from the champion's instead of a fresh one")
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig overrides")
    evaluation: dict[str, Any] = Field(default_factory=dict, description="EvalConfig overrides")
