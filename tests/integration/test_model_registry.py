"""tiny-wan from the object store, a LoRA version from the MLflow registry, served by its alias."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adfame.contracts import CHALLENGER_ALIAS, CHAMPION_ALIAS, MODELS_BUCKET
from adfame.settings import Settings
from adfame.storage import ObjectStore
from inference.model import (
    DEFAULT_MODEL_PREFIX,
    DEFAULT_MODEL_URI,
    ModelServer,
    init_default_model,
    resolve_alias,
)

pytestmark = pytest.mark.integration

PROMPTS = ["a woman running in sneakers on a beach", "a sneaker rotates on a pedestal"]
SEEDS = [3, 4]
SMALL = {"num_frames": 5, "height": 32, "width": 32}


def test_serve_the_challenger_lora_on_tiny_wan_from_the_object_store(
    settings: Settings, tmp_path: Path, registry_lora
) -> None:
    store = ObjectStore(settings)
    # A model cache of the test's own, so the offline server below can only use what this test downloaded.
    cache = tmp_path / "cache"
    local = settings.model_copy(update={"cache_dir": cache, "model_cache_dir": cache})

    assert init_default_model(settings, store) == DEFAULT_MODEL_URI
    index = store.stat(MODELS_BUCKET, f"{DEFAULT_MODEL_PREFIX}/model_index.json")
    assert index is not None
    assert init_default_model(settings, store) == DEFAULT_MODEL_URI  # already there: nothing re-uploaded
    assert store.stat(MODELS_BUCKET, f"{DEFAULT_MODEL_PREFIX}/model_index.json") == index

    server = ModelServer(DEFAULT_MODEL_URI, store=store, settings=local)
    client, name = registry_lora.client, registry_lora.name
    assert resolve_alias(client, CHALLENGER_ALIAS, name=name) is None
    version = registry_lora.add_version()
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, version)

    ref = resolve_alias(client, CHALLENGER_ALIAS, name=name)
    assert ref is not None and ref.version == version
    assert resolve_alias(client, CHAMPION_ALIAS, name=name) is None

    base = server.generate(None, PROMPTS, SEEDS, **SMALL)
    transformer = server.pipe.transformer
    challenger = server.generate(ref, PROMPTS, SEEDS, **SMALL)
    assert server.active_version == f"{name}/{version}"
    assert server.pipe.transformer is transformer
    difference = np.mean(
        [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(base.videos, challenger.videos, strict=True)]
    )
    assert difference > 1.0

    # A registry version is downloaded once: a worker without MLflow serves it from the cache.
    offline = ModelServer(DEFAULT_MODEL_URI, store=store, settings=local, tracking_uri="http://127.0.0.1:9")
    again = offline.generate(ref, PROMPTS, SEEDS, **SMALL)
    assert offline.active_version == f"{name}/{version}"
    assert all(np.array_equal(a, b) for a, b in zip(challenger.videos, again.videos, strict=True))
