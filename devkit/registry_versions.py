"""Registered versions for benchmarks and fault tests: a model of their own whose versions carry a LoRA.

What routing, rollouts and registry outages are measured with needs versions a worker really downloads
and hot-swaps, but not versions that differ in quality, so each version carries the same LoRA as PEFT
initialises it (B = 0: the base model's output). Used by ``bench/canary.py`` and ``devkit/faults``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from adfame.settings import Settings
from inference.model import init_default_model, resolve_source


def identity_lora(model_dir: Path, out_dir: Path) -> Path:
    """A LoRA file in the layout the platform serves, as PEFT initialises it (B = 0: no change yet)."""
    from diffusers import WanPipeline, WanTransformer3DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = WanTransformer3DModel.from_pretrained(model_dir, subfolder="transformer")
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    transformer.add_adapter(config)
    WanPipeline.save_lora_weights(
        out_dir,
        transformer_lora_layers=get_peft_model_state_dict(transformer),
        transformer_lora_adapter_metadata=config.to_dict(),
    )
    return out_dir


def register_identity_versions(
    settings: Settings, client: Any, name: str, *, count: int = 2, experiment: str = "adfame-devkit"
) -> list[str]:
    """Register model ``name`` with ``count`` versions, all the identity LoRA of one MLflow run; returns
    their numbers."""
    import mlflow

    model_dir = resolve_source(init_default_model(settings))
    with tempfile.TemporaryDirectory() as folder:
        lora = identity_lora(model_dir, Path(folder) / "lora")
        mlflow.set_experiment(experiment)
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(lora), artifact_path="lora")
    client.create_registered_model(name)
    source = f"runs:/{run.info.run_id}/lora"
    return [
        str(client.create_model_version(name, source=source, run_id=run.info.run_id).version)
        for _ in range(count)
    ]
