"""``TrainConfig``: everything that decides a training run, saved with every run so it can be repeated.

A run is reproducible from its config file, the export it read and the base model: seeds fix
the LoRA's initial weights, the order of the batches and every noise draw (the same config
and export give the same losses on the same device). The file is JSON, what
``to_file``/``from_file`` write and read, and MLflow keeps a copy as ``train_config.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from training.wan_spec import ATTENTION_PROJECTIONS

CONFIG_FILE = "train_config.json"


class TrainConfig(BaseModel):
    """How to fine-tune a LoRA on an export: objective, optimisation, LoRA shape, engine, parallelism.

    ``mixed_precision`` "auto" means bf16 on a GPU and none on the CPU (where bf16 is slow);
    ``resolved()`` turns it into what actually ran, and that is what a run saves.
    ``parallel`` names how the run is launched (``accelerate launch`` with a DDP or FSDP config);
    the trainer checks the launch agrees with it.
    """

    model_config = ConfigDict(extra="forbid")

    objective: Literal["sft", "dpo"] = "dpo"
    steps: int = Field(300, ge=1)
    learning_rate: float = Field(1e-4, gt=0, description="measured: docs/training.md#measured")
    warmup_steps: int = Field(0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    rank: int = Field(16, ge=1)
    alpha: float = Field(16.0, gt=0)
    target_modules: tuple[str, ...] = ATTENTION_PROJECTIONS
    beta: float = Field(500.0, gt=0, description="Diffusion-DPO's constant beta (dpo only)")
    seed: int = 0
    batch_size: int = Field(4, ge=1, description="samples (sft) or pairs (dpo) per micro-batch")
    gradient_accumulation: int = Field(1, ge=1)
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"
    gradient_checkpointing: bool = False
    checkpoint_every: int = Field(50, ge=1, description="steps between checkpoints (with a checkpoint_uri)")
    log_every: int = Field(10, ge=1, description="steps between log lines and MLflow flushes")
    parallel: Literal["none", "ddp", "fsdp"] = "none"
    engine: Literal["builtin", "finetrainers"] = "builtin"

    def resolved(self) -> TrainConfig:
        """This config with "auto" replaced by the precision this machine will run."""
        if self.mixed_precision != "auto":
            return self
        precision = "bf16" if torch.cuda.is_available() else "no"
        return self.model_copy(update={"mixed_precision": precision})

    def to_file(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
