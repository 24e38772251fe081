"""A warm server switches registry versions by hot-swapping LoRA weights, never reloading the base."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lora_fixtures import train_lora

from inference.model import ModelServer, ModelVersionRef, generate, resolve_alias
from inference.tiny_wan import build_tiny_wan

PROMPTS = ["a woman running in sneakers on a beach", "a sneaker rotates on a pedestal"]
SEEDS = [7, 8]
SMALL = {"num_frames": 5, "height": 32, "width": 32}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_wan(tmp_path_factory.mktemp("tiny-wan"), seed=0)


@pytest.fixture(scope="module")
def loras(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two versions pulling opposite ways, with different ranks (hotswap pads to the server's max rank)."""
    root = tmp_path_factory.mktemp("loras")
    return {
        "1": train_lora(model_dir, root / "v1", target=1.0, rank=4, seed=1),
        "2": train_lora(model_dir, root / "v2", target=-1.0, rank=8, seed=2),
    }


@pytest.fixture(scope="module")
def server(model_dir: Path) -> ModelServer:
    return ModelServer(str(model_dir), max_lora_rank=8)


def _version(loras: dict[str, Path], number: str) -> ModelVersionRef:
    return ModelVersionRef("adfame-wan-lora", number, str(loras[number]))


def _videos(server: ModelServer) -> list[np.ndarray]:
    """What the server's pipeline makes now, whichever version is active."""
    return generate(server.pipe, PROMPTS, SEEDS, **SMALL).videos


def _assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    """The same videos, frame for frame."""
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def _diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(x.astype(np.int16) - y).mean() for x, y in zip(a, b, strict=True)]))


def test_lora_file_is_in_the_diffusers_format(loras: dict[str, Path]) -> None:
    from safetensors import safe_open

    with safe_open(loras["1"] / "pytorch_lora_weights.safetensors", "pt") as handle:
        keys = list(handle.keys())
    assert keys and all(k.startswith("transformer.blocks.") for k in keys)
    assert any(k.endswith("attn1.to_q.lora_A.weight") for k in keys)


def test_versions_swap_in_place_and_base_comes_back(server: ModelServer, loras: dict[str, Path]) -> None:
    transformer = server.pipe.transformer
    server.activate(None)
    assert server.active_version == "base"
    base = _videos(server)

    server.activate(_version(loras, "1"))
    assert server.active_version == "adfame-wan-lora/1"
    v1 = _videos(server)
    assert _diff(base, v1) > 1.0

    server.activate(_version(loras, "2"))
    assert server.active_version == "adfame-wan-lora/2"
    v2 = _videos(server)
    assert _diff(v1, v2) > 1.0 and _diff(base, v2) > 1.0
    assert server.pipe.transformer is transformer, "the base model was not reloaded"

    server.activate(None)
    assert server.active_version == "base"
    _assert_same(base, _videos(server))

    # Back to version 1 after a swap: its weights, hence its videos, exactly.
    server.activate(_version(loras, "1"))
    _assert_same(v1, _videos(server))
    assert server.pipe.transformer is transformer


def test_generate_activates_the_version_it_is_given(server: ModelServer, loras: dict[str, Path]) -> None:
    server.activate(_version(loras, "2"))
    from_base = server.generate(None, PROMPTS, SEEDS, **SMALL)
    assert server.active_version == "base"
    assert "activate_s" in from_base.timings
    with_v2 = server.generate(_version(loras, "2"), PROMPTS, SEEDS, **SMALL)
    assert _diff(from_base.videos, with_v2.videos) > 1.0


# peft notes that the emptied adapter config of the replaced LoRA is still there; that is expected.
@pytest.mark.filterwarnings("ignore:Already found a `peft_config` attribute")
def test_lora_on_other_modules_replaces_the_adapter(
    server: ModelServer, loras: dict[str, Path], model_dir: Path, tmp_path: Path
) -> None:
    """Hot-swapping cannot add modules; such a version is loaded afresh, still on the same base."""
    ffn = train_lora(model_dir, tmp_path / "ffn", target=1.0, target_modules=("ffn.net.0.proj",), seed=3)
    transformer = server.pipe.transformer
    server.activate(_version(loras, "1"))
    v1 = _videos(server)
    server.activate(ModelVersionRef("adfame-wan-lora", "3", str(ffn)))
    assert server.active_version == "adfame-wan-lora/3"
    swapped = _videos(server)

    fresh = ModelServer(str(model_dir), max_lora_rank=8)
    fresh.activate(ModelVersionRef("adfame-wan-lora", "3", str(ffn)))
    _assert_same(swapped, _videos(fresh))

    server.activate(_version(loras, "1"))
    _assert_same(v1, _videos(server))
    assert server.pipe.transformer is transformer


def test_unreadable_lora_keeps_the_current_version_serving(
    server: ModelServer, loras: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pytorch_lora_weights.safetensors").write_bytes(b"not a safetensors file")
    for current in (None, _version(loras, "2")):
        server.activate(current)
        before = _videos(server)
        with pytest.raises(OSError, match="broken"):
            server.activate(ModelVersionRef("adfame-wan-lora", "4", str(broken)))
        assert server.active_version == (current.label if current else "base")
        _assert_same(before, _videos(server))


def test_missing_lora_is_named(server: ModelServer, tmp_path: Path) -> None:
    missing = ModelVersionRef("adfame-wan-lora", "9", f"file://{tmp_path}/nowhere")
    with pytest.raises(OSError, match=r"could not download the LoRA at file://.*nowhere"):
        server.activate(missing)


def test_resolve_alias_and_serve_an_mlflow_artifact(
    server: ModelServer, loras: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real MLflow registry (SQLite file, local artifact store): alias -> version -> its LoRA artifact."""
    import mlflow

    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri)
    assert resolve_alias(client, "challenger", name="unregistered") is None
    client.create_registered_model("tiny-lora")
    assert resolve_alias(client, "challenger", name="tiny-lora") is None

    experiment = client.create_experiment("loras", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(loras["2"]), artifact_path="lora")
    client.set_terminated(run.info.run_id)
    version = client.create_model_version(
        "tiny-lora", source=f"runs:/{run.info.run_id}/lora", run_id=run.info.run_id
    )
    client.set_registered_model_alias("tiny-lora", "challenger", version.version)

    ref = resolve_alias(client, "challenger", name="tiny-lora")
    assert ref == ModelVersionRef("tiny-lora", "1", f"runs:/{run.info.run_id}/lora")

    monkeypatch.setattr(server, "tracking_uri", tracking_uri)
    from_registry = server.generate(ref, PROMPTS, SEEDS, **SMALL).videos
    from_folder = server.generate(_version(loras, "2"), PROMPTS, SEEDS, **SMALL).videos
    _assert_same(from_registry, from_folder)
    assert server.active_version == "adfame-wan-lora/2"
