"""The closing figure of the demo: a challenger's win rate under a known taste, on real generations.

Why no "the brighter LoRA wins" test: the fixture LoRAs push the transformer's output, not the decoded
luminance, in a known direction; what is fixed is that the judgement is a fair comparison.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from evaluation_fixtures import load_train_lora

from adfame.settings import Settings
from inference.model import ModelVersionRef
from inference.tastes import parse_taste
from training.taste_win_rate import serving_eval_config, taste_win_rate


@pytest.fixture(scope="module")
def loras(tiny_wan: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelVersionRef]:
    """Two different LoRAs of tiny-wan, as registry versions."""
    root = tmp_path_factory.mktemp("loras")
    train_lora = load_train_lora()
    return {
        name: ModelVersionRef(
            "adfame-wan-lora", str(number), str(train_lora(tiny_wan, root / name, target=target))
        )
        for number, (name, target) in enumerate((("brighter", 1.0), ("darker", -1.0)), start=1)
    }


def test_win_rates_of_two_versions_mirror_each_other(
    tiny_export: Path, loras: dict[str, ModelVersionRef], untracked: Settings, tmp_path: Path
) -> None:
    settings = untracked.model_copy(update={"model_cache_dir": tmp_path})
    config = serving_eval_config(settings).model_copy(update={"num_frames": 5, "height": 32, "width": 32})
    bright = parse_taste("bright")
    up, down = loras["brighter"], loras["darker"]
    forward = taste_win_rate(bright, up, down, str(tiny_export), settings, config)
    backward = taste_win_rate(bright, down, up, str(tiny_export), settings, config)
    print(forward, backward)
    assert (forward.challenger, forward.champion, forward.taste) == (
        "adfame-wan-lora/1",
        "adfame-wan-lora/2",
        "bright",
    )
    assert forward.cases == 2  # the export's one held-out request, with each of the two seeds
    assert forward.win_rate != 0.5  # the two LoRAs make videos of different brightness
    assert forward.win_rate + backward.win_rate == pytest.approx(1.0)
