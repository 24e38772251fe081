"""The registered model's format: MLflow's ``diffusers`` flavour, with a pyfunc of ours that returns videos.

Why both in one model: ``mlflow.diffusers`` is the standard way to ship a LoRA adapter with a
reference to its base model (``mlflow.diffusers.load_model(uri).load_pipeline()`` gives a plain
diffusers pipeline with the LoRA applied), but its pyfunc calls the pipeline for ``.images``, which a
video pipeline does not return. So the model is saved by the flavour's own ``save_model`` and only
its ``python_function`` entry is pointed at this module: ``mlflow.pyfunc.load_model(uri).predict``
returns mp4 videos, while the ``diffusers`` entry, the adapter folder and the base reference stay
exactly as the flavour writes them. Serving reads the same adapter folder (``inference.model.local_lora``).

Pyfunc signature: input a DataFrame with a ``prompt`` column (str) and an optional ``seed`` column
(int; default ``params["seed"] + row``), or a list of prompts; params ``num_frames``, ``height``,
``width``, ``fps``, ``num_inference_steps``, ``guidance_scale``, ``seed``; output a DataFrame with
``prompt``, ``seed`` and ``video`` (mp4 bytes). ``model_config={"base_model": ...}`` at load time
points the model at another copy of its base (a folder, ``s3://`` or a hub id). Loading the pyfunc
needs this project installed (``training.pyfunc`` is its loader module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.diffusers
import pandas as pd
from mlflow import pyfunc
from mlflow.models import Model, ModelSignature
from mlflow.models.model import MLMODEL_FILE_NAME
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

FLAVOR_NAME = mlflow.diffusers.FLAVOR_NAME
LOADER_MODULE = __name__

# Defaults: what the generation service serves by default (inference/model.py, PromptRequest).
VIDEO_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(DataType.string, "prompt"), ColSpec(DataType.long, "seed", required=False)]),
    outputs=Schema(
        [
            ColSpec(DataType.string, "prompt"),
            ColSpec(DataType.long, "seed"),
            ColSpec(DataType.binary, "video"),
        ]
    ),
    params=ParamSchema(
        [
            ParamSpec("num_frames", DataType.long, 16),
            ParamSpec("height", DataType.long, 64),
            ParamSpec("width", DataType.long, 64),
            ParamSpec("fps", DataType.long, 8),
            ParamSpec("num_inference_steps", DataType.long, 4),
            ParamSpec("guidance_scale", DataType.double, 1.0),
            ParamSpec("seed", DataType.long, 0),
        ]
    ),
)
_DEFAULTS = {spec.name: spec.default for spec in VIDEO_SIGNATURE.params.params}


def save_model(
    path: str,
    *,
    adapter_path: str,
    base_model: str,
    mlflow_model: Model | None = None,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """``mlflow.diffusers.save_model`` with the video signature, then the pyfunc entry pointed here.

    Takes ``Model.log``'s arguments, so ``Model.log(flavor=training.pyfunc, ...)`` logs a model
    (``log_model`` below).
    """
    mlflow_model = mlflow_model or Model()
    mlflow.diffusers.save_model(
        adapter_path,
        path,
        base_model,
        mlflow_model=mlflow_model,
        signature=VIDEO_SIGNATURE,
        metadata=metadata,
        **kwargs,
    )
    python_function = mlflow_model.flavors[pyfunc.FLAVOR_NAME]
    pyfunc.add_to_model(
        mlflow_model,
        loader_module=LOADER_MODULE,
        conda_env=python_function["env"]["conda"],
        python_env=python_function["env"]["virtualenv"],
    )
    mlflow_model.save(str(Path(path) / MLMODEL_FILE_NAME))


def log_model(
    adapter_path: Path,
    base_model: str,
    *,
    name: str,
    registered_model_name: str | None = None,
    tags: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Any:  # -> mlflow.models.model.ModelInfo
    """Log the LoRA in ``adapter_path`` as a model of the active run; with ``registered_model_name``,
    also a version of that registered model carrying ``tags`` from its creation on."""
    import sys

    return Model.log(
        artifact_path=None,
        name=name,
        flavor=sys.modules[__name__],
        flavor_name=FLAVOR_NAME,
        adapter_path=str(adapter_path),
        base_model=base_model,
        registered_model_name=registered_model_name,
        tags=tags,
        metadata=metadata,
    )


def adapter_folder(model_dir: Path) -> Path:
    """The LoRA folder (``pytorch_lora_weights.safetensors``) inside a saved model of this format."""
    flavor = Model.load(str(model_dir / MLMODEL_FILE_NAME)).flavors.get(FLAVOR_NAME)
    if flavor is None:
        raise ValueError(f"{model_dir} holds no {FLAVOR_NAME!r} flavour; was it logged by training.registry?")
    return model_dir / flavor["adapter_weights"]


class VideoModel:
    """The pyfunc: the base Wan pipeline with the version's LoRA, prompts in, mp4 videos out.

    The pipeline is loaded on the first ``predict``, so loading the model only to inspect it is cheap.
    """

    def __init__(self, adapter_dir: Path, base_model: str, device: str | None = None) -> None:
        self.adapter_dir = adapter_dir
        self.base_model = base_model
        self.device = device
        self._pipe: Any = None  # WanPipeline

    def pipeline(self) -> Any:
        """The warm ``WanPipeline`` with the LoRA loaded (loaded once)."""
        if self._pipe is None:
            from inference.model import load_pipeline

            pipe = load_pipeline(self.base_model, self.device)
            pipe.load_lora_weights(str(self.adapter_dir))
            self._pipe = pipe
        return self._pipe

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from inference.model import generate
        from inference.video import encode_mp4

        options = {**_DEFAULTS, **(params or {})}
        requests = _prompts_and_seeds(model_input, int(options["seed"]))
        result = generate(
            self.pipeline(),
            list(requests["prompt"]),
            [int(seed) for seed in requests["seed"]],
            num_frames=int(options["num_frames"]),
            height=int(options["height"]),
            width=int(options["width"]),
            num_inference_steps=int(options["num_inference_steps"]),
            guidance_scale=float(options["guidance_scale"]),
        )
        videos = [encode_mp4(frames, int(options["fps"])) for frames in result.videos]
        return requests.assign(video=videos)


def _prompts_and_seeds(model_input: Any, first_seed: int) -> pd.DataFrame:
    """The rows to generate from a DataFrame with ``prompt`` (and maybe ``seed``) or a dict of lists.

    MLflow's schema enforcement turns ``{"prompt": ["a", "b"]}`` into one row holding lists, so
    list cells are spread into rows (as ``mlflow.diffusers``' own pyfunc does).
    """
    frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
    if "prompt" not in frame.columns:
        raise ValueError(f"the input needs a 'prompt' column; got {list(frame.columns)}")
    columns = [column for column in ("prompt", "seed") if column in frame.columns]
    frame = frame[columns].explode(columns, ignore_index=True)
    if frame.empty:
        raise ValueError("no prompts to generate")
    default = pd.Series(range(first_seed, first_seed + len(frame)), index=frame.index)
    seeds = frame["seed"].fillna(default) if "seed" in frame.columns else default
    return pd.DataFrame({"prompt": frame["prompt"].astype(str), "seed": seeds.astype("int64")})


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> VideoModel:
    """MLflow's pyfunc entry point (``loader_module``): ``path`` is the saved model's folder."""
    model_dir = Path(path)
    config = model_config or {}
    flavor = Model.load(str(model_dir / MLMODEL_FILE_NAME)).flavors[FLAVOR_NAME]
    base_model = config.get("base_model") or flavor["base_model"]
    return VideoModel(adapter_folder(model_dir), base_model, config.get("device"))
