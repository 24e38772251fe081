"""Training checkpoints in the object store, so a run killed mid-way resumes where it left off.

A checkpoint holds what the next step depends on: the LoRA weights, the optimizer's and the LR
scheduler's state, the torch RNG states, the step reached, the losses so far, the MLflow run to
continue and the config it was trained with. Each is one object
``<prefix>/step-<NNNNNNNN>.pt``; ``<prefix>/latest.json`` is written after it and names it, so a
kill during an upload leaves the previous checkpoint in force. Older checkpoints beyond ``keep``
are removed. Only the LoRA is saved, not the frozen base: a checkpoint of Wan 2.1 1.3B at rank 16
is megabytes, not gigabytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import torch

from adfame.contracts import MODELS_BUCKET
from adfame.storage import ObjectStore
from inference.model import parse_s3_uri

log = logging.getLogger(__name__)

LATEST = "latest.json"


def checkpoint_uri_for(export_name: str, config_json: str, base_model: str) -> str:
    """A checkpoint location of its own for one (export, config, base model): a command run again
    with the same three resumes (or, finished, returns at once); any change starts afresh."""
    digest = hashlib.sha256(f"{config_json}\n{base_model}".encode()).hexdigest()[:12]
    return f"s3://{MODELS_BUCKET}/checkpoints/{export_name}-{digest}"


class CheckpointMismatch(ValueError):
    """The checkpoint at a URI was written by a run with another config; resuming it would mix runs."""


@dataclass
class TrainingState:
    """Everything a resumed run needs to go on as if it had never stopped."""

    step: int  # optimizer steps completed
    lora: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    losses: list[float]
    run_id: str | None
    config_json: str

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(self.__dict__, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainingState:
        # weights_only: a checkpoint is data (tensors, numbers, strings), never code to run.
        return cls(**torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))


def rng_states() -> dict[str, Any]:
    """The global torch RNG states (CPU and every GPU): what dropout or any unseeded draw would use."""
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class CheckpointStore:
    """The checkpoints of one run under ``s3://bucket/prefix``."""

    def __init__(self, uri: str, store: ObjectStore, keep: int = 2) -> None:
        self.uri = uri
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.store = store
        self.keep = keep

    def _key(self, step: int) -> str:
        return f"{self.prefix}/step-{step:08d}.pt"

    def save(self, state: TrainingState) -> str:
        """Upload ``state``, then point ``latest.json`` at it; returns its key."""
        self.store.ensure_bucket(self.bucket)
        key = self._key(state.step)
        self.store.put_bytes(self.bucket, key, state.to_bytes())
        pointer = json.dumps({"step": state.step, "key": key}).encode()
        self.store.put_bytes(self.bucket, f"{self.prefix}/{LATEST}", pointer, content_type="application/json")
        self._prune(keep_key=key)
        log.info("checkpoint at step %d: s3://%s/%s", state.step, self.bucket, key)
        return key

    def latest_step(self) -> int | None:
        """The step of the last complete checkpoint (from ``latest.json`` alone), or None before the first."""
        if not self.store.exists(self.bucket, f"{self.prefix}/{LATEST}"):
            return None
        return int(json.loads(self.store.get_bytes(self.bucket, f"{self.prefix}/{LATEST}"))["step"])

    def latest(self, config_json: str) -> TrainingState | None:
        """The last complete checkpoint, or None when the run never wrote one.

        Raises ``CheckpointMismatch`` when it was written with a config other than ``config_json``.
        """
        if not self.store.exists(self.bucket, f"{self.prefix}/{LATEST}"):
            return None
        pointer = json.loads(self.store.get_bytes(self.bucket, f"{self.prefix}/{LATEST}"))
        state = TrainingState.from_bytes(self.store.get_bytes(self.bucket, pointer["key"]))
        if json.loads(state.config_json) != json.loads(config_json):
            raise CheckpointMismatch(
                f"the checkpoint at {self.uri} (step {state.step}) was written with another config; "
                "use another checkpoint URI for a new run"
            )
        return state

    def _prune(self, keep_key: str) -> None:
        steps = sorted(o.key for o in self.store.list(self.bucket, f"{self.prefix}/step-"))
        for key in steps[: -self.keep]:
            if key != keep_key:
                self.store.remove(self.bucket, key)
