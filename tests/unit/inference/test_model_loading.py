"""tiny-wan is built and published once per build, and loads from a folder, an s3:// URI or a hub id."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import WanPipeline

from adfame.settings import Settings
from adfame.storage import ObjectInfo
from devkit.hub_server import serve_mirror
from inference import tiny_wan
from inference.model import (
    DEFAULT_MODEL_URI,
    download_model,
    generate,
    init_default_model,
    load_pipeline,
    parse_s3_uri,
    publish_model,
)

# Run in a fresh interpreter: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when imported,
# exactly as a worker started with them in its environment does.
_LOAD_FROM_HUB = """
import sys
import numpy as np
from inference.model import generate, load_pipeline
pipe = load_pipeline(sys.argv[1], device="cpu")
video = generate(pipe, ["a sneaker on a beach"], [7], num_frames=5, height=32, width=32).videos[0]
np.save(sys.argv[2], video)
"""


class FolderStore:
    """The part of ``ObjectStore`` that publishing and loading use, kept in a local folder.

    The real store is exercised by tests/integration/test_model_registry.py; this one lets
    the caching and ordering logic run without services.
    """

    def __init__(self, root: Path):
        self.root = root
        self.downloads = 0

    def _path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    def ensure_bucket(self, bucket: str) -> bool:
        created = not (self.root / bucket).exists()
        (self.root / bucket).mkdir(parents=True, exist_ok=True)
        return created

    def put_file(self, bucket: str, key: str, path: Path, content_type: str = "") -> str:
        target = self._path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        return self._etag(target)

    def get_file(self, bucket: str, key: str, path: Path) -> Path:
        self.downloads += 1
        shutil.copyfile(self._path(bucket, key), path)
        return path

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return self._path(bucket, key).read_bytes()

    def exists(self, bucket: str, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def list(self, bucket: str, prefix: str = "", recursive: bool = True) -> list[ObjectInfo]:
        base = self.root / bucket
        files = (p for p in base.rglob("*") if p.is_file()) if base.exists() else ()
        infos = [ObjectInfo(p.relative_to(base).as_posix(), p.stat().st_size, self._etag(p)) for p in files]
        return [info for info in infos if info.key.startswith(prefix)]

    def remove(self, bucket: str, key: str) -> None:
        self._path(bucket, key).unlink()

    @staticmethod
    def _etag(path: Path) -> str:
        import hashlib

        return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_wan.build_tiny_wan(tmp_path_factory.mktemp("tiny-wan"), seed=0)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_build_is_small_and_says_what_it_is(model_dir: Path) -> None:
    files = _files(model_dir)
    assert {"transformer/diffusion_pytorch_model.safetensors", "tokenizer/tokenizer.json"} <= set(files)
    assert sum(len(data) for data in files.values()) < 1_000_000
    build = json.loads(files[tiny_wan.BUILD_FILE])
    assert build["key"] == tiny_wan.build_key(seed=0) and build["seed"] == 0
    assert build["recipe"] == asdict(tiny_wan.PRETRAINING)


def test_other_seed_gives_other_weights(tmp_path: Path) -> None:
    # Untrained builds: the seed decides the initial weights either way, and they take a second.
    first = tiny_wan.build_tiny_wan(tmp_path / "seed0", seed=0, recipe=None)
    other = tiny_wan.build_tiny_wan(tmp_path / "seed1", seed=1, recipe=None)
    weights = "transformer/diffusion_pytorch_model.safetensors"
    assert (other / weights).read_bytes() != (first / weights).read_bytes()
    # The tokenizer is trained, not seeded: the same for every seed.
    tokenizer = "tokenizer/tokenizer.json"
    assert (other / tokenizer).read_bytes() == (first / tokenizer).read_bytes()


def test_cli_writes_a_loadable_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_wan.main(["--out", str(tmp_path / "cli"), "--seed", "3", "--untrained"])
    assert "tiny-wan (seed 3, untrained, build " in capsys.readouterr().out
    assert (tmp_path / "cli" / "model_index.json").is_file()


def test_trained_tokenizer_covers_ad_prompts(model_dir: Path) -> None:
    pipe = load_pipeline(str(model_dir))
    tokens = pipe.tokenizer("A woman running in NIKE sneakers on a beach, 50% off!").input_ids
    assert pipe.tokenizer.unk_token_id not in tokens
    assert tokens[-1] == pipe.tokenizer.eos_token_id
    assert len(pipe.tokenizer.tokenize("sneakers")) <= 2  # learned ad vocabulary, not single letters


def test_load_from_folder_on_cpu_in_float32(model_dir: Path) -> None:
    pipe = load_pipeline(str(model_dir))
    assert isinstance(pipe, WanPipeline)
    assert pipe.transformer.device.type == "cpu"
    assert pipe.transformer.dtype == torch.float32
    assert pipe.text_encoder.dtype == torch.float32
    assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"


def test_vae_stays_float32_when_the_rest_is_bfloat16(model_dir: Path) -> None:
    pipe = load_pipeline(str(model_dir), device="cpu", dtype=torch.bfloat16)
    assert pipe.transformer.dtype == torch.bfloat16
    assert pipe.vae.dtype == torch.float32


def test_missing_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        load_pipeline(str(tmp_path / "nothing-here"))
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(FileNotFoundError, match=r"not-a-model has no model_index\.json"):
        load_pipeline(str(tmp_path / "not-a-model"))


def test_hub_id_uses_from_pretrained_and_names_the_id_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match="no-such-org/no-such-model"):
        load_pipeline("no-such-org/no-such-model")


def test_hub_id_loads_through_the_hub_client_and_then_offline(model_dir: Path, tmp_path: Path) -> None:
    """A hub id goes through the real huggingface_hub client (here against a local mirror of the Hub),
    lands in the hub cache, and loads again from that cache with the network gone."""
    mirror = tmp_path / "mirror"
    shutil.copytree(model_dir, mirror / "adfame" / "tiny-wan")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HOME"] = str(tmp_path / "hf-home")
    local = load_pipeline(str(model_dir), device="cpu")
    expected = generate(local, ["a sneaker on a beach"], [7], num_frames=5, height=32, width=32).videos[0]

    def load(extra_env: dict[str, str], out: Path) -> np.ndarray:
        done = subprocess.run(
            [sys.executable, "-c", _LOAD_FROM_HUB, "adfame/tiny-wan", str(out)],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return np.load(out)

    with serve_mirror(mirror) as endpoint:
        assert np.array_equal(load({"HF_ENDPOINT": endpoint}, tmp_path / "online.npy"), expected)
    snapshots = list((tmp_path / "hf-home" / "hub" / "models--adfame--tiny-wan" / "snapshots").iterdir())
    assert len(snapshots) == 1 and (snapshots[0] / "model_index.json").is_file()
    # The mirror is gone: a worker restarting offline still finds the model in its cache.
    assert np.array_equal(load({"HF_HUB_OFFLINE": "1"}, tmp_path / "offline.npy"), expected)


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://adfame-models/base/tiny-wan/") == ("adfame-models", "base/tiny-wan")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        parse_s3_uri("s3://only-bucket")


def _own_cache(folder: Path) -> Settings:
    """Settings whose model cache is the test's own: the suite's profile names a shared one."""
    return Settings(cache_dir=folder, model_cache_dir=folder)


def test_publish_then_load_from_s3_uri_uses_the_cache(model_dir: Path, tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    uri = publish_model(model_dir, store, "adfame-models", "base/demo")
    assert uri == "s3://adfame-models/base/demo"
    settings = _own_cache(tmp_path / "cache")

    pipe = load_pipeline(uri, store=store, settings=settings)
    assert isinstance(pipe, WanPipeline)
    downloads = store.downloads
    assert downloads == len(_files(model_dir))
    load_pipeline(uri, store=store, settings=settings)
    assert store.downloads == downloads, "an unchanged model is loaded from the local cache"

    # Republishing other weights under the same prefix changes the etags, hence the cache folder.
    other = tiny_wan.build_tiny_wan(tmp_path / "seed1", seed=1, recipe=None)
    publish_model(other, store, "adfame-models", "base/demo")
    path = download_model(uri, store, settings.models_cache / "models")
    assert _files(path) == _files(other)
    assert store.downloads > downloads


def test_missing_s3_model_is_named(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    store.ensure_bucket("adfame-models")
    with pytest.raises(FileNotFoundError, match="s3://adfame-models/base/absent"):
        load_pipeline("s3://adfame-models/base/absent", store=store, settings=_own_cache(tmp_path))


def test_init_default_model_is_idempotent_and_replaces_another_build(model_dir: Path, tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    # The pretrained build comes from the shared build cache (filled by the model_dir fixture).
    settings = Settings(model_cache_dir=tmp_path / "cache")
    published = store.root / "adfame-models" / "base/tiny-wan"
    # A model published before the pretraining (or by an older recipe) is replaced by the current build.
    publish_model(
        tiny_wan.build_tiny_wan(tmp_path / "old", seed=0, recipe=None),
        store,
        "adfame-models",
        "base/tiny-wan",
    )
    assert init_default_model(settings, store) == DEFAULT_MODEL_URI
    assert _files(published) == _files(model_dir)
    first_mtime = (published / "model_index.json").stat().st_mtime_ns
    assert init_default_model(settings, store) == DEFAULT_MODEL_URI
    assert (published / "model_index.json").stat().st_mtime_ns == first_mtime, (
        "the same build is not re-uploaded"
    )
