"""The trainer without services: config files, reproducible runs of both objectives, refused set-ups.

MLflow is pointed at a closed port, so these runs are untracked; tests/integration/test_training.py
covers tracking and checkpoints on the suite's stack.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import WanPipeline
from safetensors.torch import load_file

from adfame.settings import Settings
from training.config import TrainConfig
from training.finetrainers_backend import EngineUnavailable
from training.trainer import ParallelMismatch, WarmStart, item_indices, make_accelerator, start_session, train
from training.wan_spec import LORA_FILE, LoraShapeMismatch

TINY = {"steps": 3, "batch_size": 2, "rank": 4, "alpha": 4.0, "log_every": 1}


def test_config_round_trips_and_resolves_the_precision(tmp_path: Path) -> None:
    config = TrainConfig(objective="sft", steps=7, target_modules=("to_q", "to_v"))
    assert TrainConfig.from_file(config.to_file(tmp_path / "c.json")) == config
    expected = "bf16" if torch.cuda.is_available() else "no"
    assert config.resolved().mixed_precision == expected
    with pytest.raises(ValueError, match="extra"):
        TrainConfig.model_validate({"objective": "dpo", "stepz": 3})


def test_items_are_seeded_permutations_epoch_after_epoch() -> None:
    first_epoch, second_epoch = item_indices(5, 0, 0, 5), item_indices(5, 0, 5, 5)
    assert sorted(first_epoch.tolist()) == sorted(second_epoch.tolist()) == [0, 1, 2, 3, 4]
    assert torch.equal(item_indices(5, 0, 3, 4), torch.cat([first_epoch[3:], second_epoch[:2]]))
    assert not torch.equal(item_indices(50, 0, 0, 50), item_indices(50, 1, 0, 50))


def test_same_config_and_export_give_the_same_losses_and_a_servable_lora(
    tiny_wan: Path, tiny_export: Path, tmp_path: Path, untracked: Settings
) -> None:
    config = TrainConfig(objective="sft", **TINY)
    runs = [
        train(config, tiny_export, base_model=str(tiny_wan), output_dir=tmp_path / name, settings=untracked)
        for name in ("a", "b")
    ]
    assert runs[0].losses == runs[1].losses and len(runs[0].losses) == 3
    assert runs[0].steps == 3 and runs[0].run_id is None and runs[0].resumed_from is None
    assert runs[0].seconds_per_step > 0
    assert TrainConfig.from_file(tmp_path / "a" / "train_config.json") == config.resolved()
    pipe = WanPipeline.from_pretrained(tiny_wan)
    pipe.load_lora_weights(runs[0].lora_dir)
    assert pipe.get_list_adapters()["transformer"]


def test_dpo_with_gradient_accumulation_reports_pair_metrics(
    tiny_wan: Path, tiny_export: Path, tmp_path: Path, untracked: Settings
) -> None:
    config = TrainConfig(objective="dpo", gradient_accumulation=2, learning_rate=1e-2, **TINY)
    result = train(config, tiny_export, base_model=str(tiny_wan), output_dir=tmp_path, settings=untracked)
    assert result.steps == 3 and len(result.losses) == 3
    assert result.losses[0] == pytest.approx(0.6931, abs=1e-3)  # log 2: the fresh adapter is the reference
    assert result.losses[-1] != result.losses[0]  # the adapter moved
    assert len(list((tmp_path / "cache").glob("dpo-*.pt"))) == 1  # latents and embeddings, encoded once


def test_a_warm_start_continues_from_a_saved_lora_of_the_same_shape(
    tiny_wan: Path, tiny_export: Path, tmp_path: Path, untracked: Settings
) -> None:
    config = TrainConfig(objective="dpo", learning_rate=1e-2, **TINY)
    first = train(
        config, tiny_export, base_model=str(tiny_wan), output_dir=tmp_path / "a", settings=untracked
    )
    parent = WarmStart("adfame-wan-lora/1", first.lora_dir)

    session = start_session(
        config.resolved(), tiny_export, str(tiny_wan), tmp_path / "cache", untracked, parent
    )
    saved = {
        key.removeprefix("transformer."): value
        for key, value in load_file(first.lora_dir / LORA_FILE).items()
    }
    started = session.spec.lora_state_dict()
    assert started.keys() == saved.keys() and all(torch.equal(started[k], saved[k]) for k in saved)

    second = train(
        config,
        tiny_export,
        base_model=str(tiny_wan),
        output_dir=tmp_path / "b",
        settings=untracked,
        warm_start=parent,
    )
    assert (first.parent, second.parent) == (None, "adfame-wan-lora/1")
    # A fresh adapter is the reference (loss log 2); the warm one starts where the first run ended.
    assert first.losses[0] == pytest.approx(0.6931, abs=1e-3)
    assert second.losses[0] != pytest.approx(0.6931, abs=1e-3)

    wider = TrainConfig(objective="dpo", **{**TINY, "rank": 8})
    with pytest.raises(LoraShapeMismatch, match="rank=4"):
        train(
            wider,
            tiny_export,
            base_model=str(tiny_wan),
            output_dir=tmp_path / "c",
            settings=untracked,
            warm_start=parent,
        )


def test_a_parallel_setting_the_launch_does_not_match_is_refused() -> None:
    with pytest.raises(ParallelMismatch, match="accelerate launch"):
        make_accelerator(TrainConfig(parallel="fsdp", mixed_precision="no"))


def test_finetrainers_engine_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"finetrainers.*does not import"):
        train(TrainConfig(engine="finetrainers"), tmp_path, base_model="unused", output_dir=tmp_path)
