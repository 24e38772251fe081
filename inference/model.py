"""The Wan text-to-video model as the serving side sees it: load, publish, generate, cache, serve versions.

One base pipeline stays warm in a worker; registry versions differ only by a LoRA, so
switching version swaps adapter weights in place instead of reloading the model
(docs/architecture.md#models-without-downloads). The same code runs tiny-wan and the real Wan 2.1.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from diffusers import WanPipeline
from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig

from adfame.contracts import BASE_MODEL_VERSION, MODELS_BUCKET, REGISTERED_MODEL, served_version_label
from adfame.settings import Settings, get_settings
from adfame.storage import ObjectStore
from inference.routing import RegistryUnavailable

log = logging.getLogger(__name__)

HUB_MODEL_ID = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
DEFAULT_MODEL_PREFIX = "base/tiny-wan"
DEFAULT_MODEL_URI = f"s3://{MODELS_BUCKET}/{DEFAULT_MODEL_PREFIX}"
BASE_VERSION = BASE_MODEL_VERSION

# Written last when publishing and checked first when loading: its presence means the model is complete.
_INDEX_FILE = "model_index.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LORA_ADAPTER = "served"

CacheKind = Literal["first_block", "mag"]


# ---- loading ------------------------------------------------------------------


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str | torch.device) -> torch.dtype:
    """bfloat16 where the accelerator computes it natively, float32 on the CPU."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")``."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    if not uri.startswith("s3://") or not bucket or not prefix:
        raise ValueError(f"expected s3://bucket/prefix, got {uri!r}")
    return bucket, prefix


def download_model(uri: str, store: ObjectStore, cache_root: Path) -> Path:
    """Mirror the model folder at ``uri`` into ``cache_root`` once per content, and return it.

    The cache folder is named by the objects' keys and etags, so a republished model is
    fetched again while an unchanged one is reused. Each download lands in a temporary
    sibling that is renamed into place, so concurrent workers never read half a model.
    """
    bucket, prefix = parse_s3_uri(uri)
    objects = sorted(store.list(bucket, prefix + "/"), key=lambda o: o.key)
    if not any(o.key == f"{prefix}/{_INDEX_FILE}" for o in objects):
        raise FileNotFoundError(
            f"no model at {uri}: s3://{bucket}/{prefix}/{_INDEX_FILE} does not exist "
            "(publish one with `adfame model init`)"
        )
    digest = hashlib.sha256("\n".join(f"{o.key} {o.etag}" for o in objects).encode()).hexdigest()[:16]

    def fetch(folder: Path) -> None:
        for obj in objects:
            local = folder / obj.key[len(prefix) + 1 :]
            local.parent.mkdir(parents=True, exist_ok=True)
            store.get_file(bucket, obj.key, local)

    return filled_once(cache_root / bucket / prefix / digest, fetch)


def filled_once(target: Path, fill: Callable[[Path], None]) -> Path:
    """``target``, filled by ``fill`` unless it exists: in a temporary sibling renamed into place,
    so a concurrent reader never sees half a folder and a failed fill leaves nothing behind."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        fill(partial)
        try:
            os.rename(partial, target)
        except OSError:
            if not target.is_dir():  # not a concurrent fill that won the race
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def resolve_source(
    source: str, *, store: ObjectStore | None = None, settings: Settings | None = None
) -> str | Path:
    """A local model folder for ``source`` (an s3:// model is downloaded first), or a hub id as is."""
    if source.startswith("s3://"):
        settings = settings or get_settings()
        return download_model(source, store or ObjectStore(settings), settings.models_cache / "models")
    path = Path(source).expanduser()
    if path.exists():
        if not (path / _INDEX_FILE).is_file():
            raise FileNotFoundError(
                f"model folder {source} has no {_INDEX_FILE}; is it a diffusers pipeline?"
            )
        return path
    if _HUB_ID.match(source):
        return source
    raise FileNotFoundError(
        f"model source {source!r} is neither an existing folder, an s3:// URI nor a hub id"
    )


def load_pipeline(
    source: str,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    *,
    store: ObjectStore | None = None,
    settings: Settings | None = None,
) -> WanPipeline:
    """Load a ``WanPipeline`` from a local folder, an ``s3://bucket/prefix`` or a Hugging Face hub id.

    The VAE stays in float32 whatever ``dtype`` says: Wan's VAE decodes visibly worse in
    half precision, and it is a small share of the compute.
    """
    device = device or default_device()
    dtype = dtype or default_dtype(device)
    location = resolve_source(source, store=store, settings=settings)
    try:
        pipe = WanPipeline.from_pretrained(location, dtype={"default": dtype, "vae": torch.float32})
    except OSError as exc:
        if isinstance(location, Path):
            raise OSError(f"could not load the Wan pipeline in {location} (from {source!r}): {exc}") from exc
        raise OSError(
            f"model source {source!r} is not a local folder, and loading it as a Hugging Face hub id "
            f"failed: {exc}"
        ) from exc
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---- publishing -----------------------------------------------------------------


def publish_model(
    local_dir: Path, store: ObjectStore, bucket: str = MODELS_BUCKET, prefix: str = DEFAULT_MODEL_PREFIX
) -> str:
    """Upload a saved pipeline folder to ``s3://bucket/prefix``; returns that URI.

    ``model_index.json`` goes last (and an earlier one is removed first), so a reader never
    finds an index whose weights are still uploading; objects left from an earlier publish
    under the prefix are removed.
    """
    local_dir = Path(local_dir)
    prefix = prefix.strip("/")
    if not (local_dir / _INDEX_FILE).is_file():
        raise FileNotFoundError(f"{local_dir} is not a saved diffusers pipeline (no {_INDEX_FILE})")
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == _INDEX_FILE and p.parent == local_dir)
    store.ensure_bucket(bucket)
    if store.exists(bucket, f"{prefix}/{_INDEX_FILE}"):
        store.remove(bucket, f"{prefix}/{_INDEX_FILE}")
    keys = set()
    for path in files:
        key = f"{prefix}/{path.relative_to(local_dir).as_posix()}"
        content_type = "application/json" if path.suffix == ".json" else "application/octet-stream"
        store.put_file(bucket, key, path, content_type=content_type)
        keys.add(key)
    for stale in store.list(bucket, prefix + "/"):
        if stale.key not in keys:
            store.remove(bucket, stale.key)
    return f"s3://{bucket}/{prefix}"


def init_default_model(settings: Settings | None = None, store: ObjectStore | None = None) -> str:
    """Publish tiny-wan (seed 0, pretrained) to DEFAULT_MODEL_URI unless that very build is there.

    The build comes from the settings' ``cache_dir`` (built and pretrained there the first time);
    a published model of another build (an older recipe, or one from before the pretraining) is
    replaced, so every stack serves the model the code describes.
    """
    from inference.tiny_wan import BUILD_FILE, build_key, cached_tiny_wan  # only needed here

    settings = settings or get_settings()
    store = store or ObjectStore(settings)
    store.ensure_bucket(MODELS_BUCKET)
    if _published_build_key(store, BUILD_FILE) == build_key(seed=0):
        return DEFAULT_MODEL_URI
    local = cached_tiny_wan(seed=0, cache_root=settings.cache_dir)
    return publish_model(local, store, MODELS_BUCKET, DEFAULT_MODEL_PREFIX)


def _published_build_key(store: ObjectStore, build_file: str) -> str | None:
    """The build key of the complete tiny-wan at DEFAULT_MODEL_URI, or None when there is none."""
    if not store.exists(MODELS_BUCKET, f"{DEFAULT_MODEL_PREFIX}/{_INDEX_FILE}"):
        return None
    key = f"{DEFAULT_MODEL_PREFIX}/{build_file}"
    if not store.exists(MODELS_BUCKET, key):
        return None
    return json.loads(store.get_bytes(MODELS_BUCKET, key)).get("key")


# ---- generation -----------------------------------------------------------------


@dataclass
class Generation:
    """Candidate videos (F x H x W x 3 uint8 each) and where the time went, in seconds."""

    videos: list[np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)


def valid_num_frames(num_frames: int, temporal_factor: int = 4) -> int:
    """The smallest frame count Wan can produce (``factor * k + 1``) that is at least ``num_frames``."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    return -(-(num_frames - 1) // temporal_factor) * temporal_factor + 1


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timing covers the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def decode_latents(pipe: WanPipeline, latents: torch.Tensor) -> np.ndarray:
    """Latents -> B x F x H x W x 3 uint8 frames, as ``WanPipeline.__call__`` decodes them."""
    vae = pipe.vae
    latents = latents.to(vae.device, vae.dtype)
    mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
    std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
    video = vae.decode(latents * std + mean, return_dict=False)[0]
    video = pipe.video_processor.postprocess_video(video, output_type="pt")  # B, F, C, H, W in [0, 1]
    frames = (video * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2)
    return frames.cpu().numpy()


def generate(
    pipe: WanPipeline,
    prompts: list[str],
    seeds: list[int],
    *,
    num_frames: int,
    height: int,
    width: int,
    num_inference_steps: int = 4,
    guidance_scale: float = 1.0,
) -> Generation:
    """One video per (prompt, seed), all in one batched pipeline call.

    Each candidate draws its noise from its own seeded generator, so a candidate is the
    same whether it is generated alone or in a batch, and a retried request reproduces
    its videos. ``denoise_s`` covers prompt encoding and denoising, ``decode_s`` the VAE.
    """
    if not prompts or len(prompts) != len(seeds):
        raise ValueError(f"need one seed per prompt, got {len(prompts)} prompts and {len(seeds)} seeds")
    multiple = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]
    if height % multiple or width % multiple or height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive multiples of {multiple}, got {height}x{width}")
    frames_to_make = valid_num_frames(num_frames, pipe.vae_scale_factor_temporal)
    device = pipe.transformer.device  # not pipe._execution_device: it walks every module, 1.6 ms a call
    # CPU generators: the same seed gives the same noise on every device.
    generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]

    _synchronize(device)
    start = time.perf_counter()
    latents = pipe(
        prompt=list(prompts),
        num_frames=frames_to_make,
        height=height,
        width=width,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        generator=generators,
        output_type="latent",
    ).frames
    _synchronize(device)
    denoised = time.perf_counter()
    frames = decode_latents(pipe, latents)
    decoded = time.perf_counter()
    return Generation(
        videos=[video[:num_frames] for video in frames],
        timings={"denoise_s": denoised - start, "decode_s": decoded - denoised},
    )


# ---- cache acceleration ---------------------------------------------------------


@torch.no_grad()
def calibrate_mag_ratios(
    pipe: WanPipeline,
    num_inference_steps: int,
    *,
    prompt: str = "a runner on a beach at sunrise, cinematic",
    num_frames: int = 17,
    height: int = 64,
    width: int = 64,
    seed: int = 0,
) -> list[float]:
    """MagCache's per-step magnitude ratios for this model and step count, from one generation.

    The ratio of step t is mean(|r_t| / |r_{t-1}|) over tokens, with r the residual the
    transformer blocks add (what diffusers' calibration mode computes and only prints).
    """
    blocks = pipe.transformer.blocks
    residuals: list[torch.Tensor] = []
    block_input: list[torch.Tensor] = []

    def keep_input(_module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        block_input[:] = [args[0] if args else kwargs["hidden_states"]]

    def keep_residual(_module: torch.nn.Module, _args: Any, _kwargs: Any, output: torch.Tensor) -> None:
        residuals.append((output - block_input[0]).float())

    handles = [
        blocks[0].register_forward_pre_hook(keep_input, with_kwargs=True),
        blocks[-1].register_forward_hook(keep_residual, with_kwargs=True),
    ]
    try:
        # Without guidance the transformer runs once per step, so residuals[i] is step i.
        generate(
            pipe,
            [prompt],
            [seed],
            num_frames=num_frames,
            height=height,
            width=width,
            num_inference_steps=num_inference_steps,
        )
    finally:
        for handle in handles:
            handle.remove()
    ratios = [1.0]
    for previous, current in itertools.pairwise(residuals):
        ratio = torch.linalg.norm(current, dim=-1) / (torch.linalg.norm(previous, dim=-1) + 1e-8)
        ratios.append(ratio.mean().item())
    return ratios


def enable_cache(
    pipe: WanPipeline,
    kind: CacheKind | None,
    threshold: float = 0.05,
    *,
    num_inference_steps: int = 4,
    mag_ratios: Sequence[float] | None = None,
) -> None:
    """Skip transformer blocks whose output barely changes between steps, or (``None``) never skip.

    ``first_block`` is FirstBlockCache; ``mag`` is MagCache, which needs the step count the
    pipeline will run with and magnitude ratios for the model (calibrated here when not
    given). Both are measured to work on Wan (docs/architecture.md#models-without-downloads);
    FasterCache is not offered because it crashes with WanPipeline.
    """
    transformer = pipe.transformer
    if transformer.is_cache_enabled:
        transformer.disable_cache()
    if kind is None:
        return
    if kind == "first_block":
        transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    elif kind == "mag":
        ratios = (
            list(mag_ratios) if mag_ratios is not None else calibrate_mag_ratios(pipe, num_inference_steps)
        )
        transformer.enable_cache(
            MagCacheConfig(threshold=threshold, num_inference_steps=num_inference_steps, mag_ratios=ratios)
        )
    else:
        raise ValueError(f"unknown cache kind {kind!r}; expected 'first_block', 'mag' or None")


# ---- serving registry versions ------------------------------------------------


@dataclass(frozen=True)
class ModelVersionRef:
    """A registry version: its LoRA lives at ``lora_uri`` (MLflow artifact URI or local folder)."""

    name: str
    version: str
    lora_uri: str

    @property
    def label(self) -> str:
        return served_version_label(self.name, self.version)


def version_label(version: ModelVersionRef | None) -> str:
    """``name/version`` of a registry version, or ``base`` for the base model."""
    return version.label if version is not None else BASE_VERSION


def resolve_alias(client: Any, alias: str, name: str = REGISTERED_MODEL) -> ModelVersionRef | None:
    """The version of ``name`` that carries ``alias``; None when none does or the model is not registered."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # The model missing is RESOURCE_DOES_NOT_EXIST; an alias no version carries, a "not found" parameter.
        missing_alias = exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or missing_alias:
            return None
        raise
    return ModelVersionRef(name=version.name, version=str(version.version), lora_uri=version.source)


def version_ref(client: Any, name: str, version: str) -> ModelVersionRef:
    """A registered version by its number (MlflowException when the registry has no such version)."""
    found = client.get_model_version(name, version)
    return ModelVersionRef(name=found.name, version=str(found.version), lora_uri=found.source)


def local_lora(version: ModelVersionRef, cache_root: Path, tracking_uri: str | None = None) -> Path:
    """A local folder with ``version``'s LoRA, downloaded from MLflow once per registry version.

    A registered version's files never change, so switching back and forth between the champion
    and the challenger (a canary) reads them from disk instead of the artifact store each time.
    """
    local = Path(version.lora_uri).expanduser()
    if "://" not in version.lora_uri and local.exists():
        return _lora_in(local)
    import mlflow

    def download(folder: Path) -> None:
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=version.lora_uri, dst_path=str(folder), tracking_uri=tracking_uri
            )
        except Exception as exc:  # MLflow raises its own, boto3's and OS errors alike
            if registry_unreachable(exc):  # not the version's fault: the worker serves it once MLflow is back
                raise RegistryUnavailable(
                    f"could not reach the registry for {version.lora_uri}: {exc}"
                ) from exc
            raise OSError(f"could not download the LoRA at {version.lora_uri}: {exc}") from exc

    key = hashlib.sha256(f"{version.label}\n{version.lora_uri}".encode()).hexdigest()[:16]
    folder = filled_once(cache_root / key, download)
    # download_artifacts puts a run's folder artifact under its own name, a file as itself, and a
    # logged model's files (``models:/...``, the source of a version logged with a flavour) flat.
    entries = list(folder.iterdir())
    return _lora_in(entries[0] if len(entries) == 1 else folder)


def registry_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a registry that did not answer (refused, reset, timed out), by the
    exception types in its chain: MLflow wraps the HTTP client's errors in an MlflowException whose
    context holds them, and a missing file is a different error that no retry mends."""
    import requests

    seen: BaseException | None = exc
    for _ in range(10):  # a chain is short; the bound guards against a cycle
        if seen is None:
            return False
        if isinstance(seen, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _lora_in(content: Path) -> Path:
    """The LoRA in a version's files: an MLflow model of the ``diffusers`` flavour (what
    ``retrain_on_feedback`` registers) keeps it in its adapter folder; anything else is the LoRA itself."""
    mlmodel = content / "MLmodel"
    if not mlmodel.is_file():
        return content
    import yaml

    flavor = yaml.safe_load(mlmodel.read_text()).get("flavors", {}).get("diffusers")
    if flavor is None:
        raise OSError(f"the MLflow model in {content} has no diffusers flavour, so no LoRA to serve")
    return content / flavor["adapter_weights"]


class ModelServer:
    """One warm base pipeline that serves the base model or any registry version's LoRA.

    The first LoRA is loaded after ``enable_lora_hotswap``; every later version replaces
    its weights in place (``hotswap=True``), so switching takes milliseconds and never
    reloads the base. A LoRA that adapts modules the first one did not cannot be swapped
    in; it replaces the adapter instead (still without reloading the base).
    ``max_lora_rank`` should be at least the rank of every LoRA served (a torch.compile'd
    transformer would otherwise recompile).
    MLflow URIs resolve against ``tracking_uri``, by default this process's MLflow set-up;
    each version's files are downloaded once, into the settings' cache folder.
    """

    def __init__(
        self,
        base_source: str,
        device: str | None = None,
        *,
        dtype: torch.dtype | None = None,
        max_lora_rank: int = 64,
        tracking_uri: str | None = None,
        store: ObjectStore | None = None,
        settings: Settings | None = None,
    ):
        pipe = load_pipeline(base_source, device, dtype, store=store, settings=settings)
        self._serve(pipe, base_source, max_lora_rank, tracking_uri, settings)

    @classmethod
    def from_pipeline(
        cls,
        pipe: WanPipeline,
        base_source: str,
        *,
        max_lora_rank: int = 64,
        tracking_uri: str | None = None,
        settings: Settings | None = None,
    ) -> ModelServer:
        """A server around a pipeline already in memory, named ``base_source``.

        For a model that is never saved: bench/gpu.py serves a random Wan of the real sizes (tens of
        GB) through the real worker without writing it to disk and loading it back.
        """
        server = cls.__new__(cls)
        server._serve(pipe, base_source, max_lora_rank, tracking_uri, settings)
        return server

    def _serve(
        self,
        pipe: WanPipeline,
        base_source: str,
        max_lora_rank: int,
        tracking_uri: str | None,
        settings: Settings | None,
    ) -> None:
        self.base_source = base_source
        self.max_lora_rank = max_lora_rank
        self.tracking_uri = tracking_uri
        self.lora_cache = (settings or get_settings()).models_cache / "loras"
        self.pipe = pipe
        self._loaded: ModelVersionRef | None = None  # the version whose weights sit in the adapter
        self._active: ModelVersionRef | None = None
        self._lock = threading.RLock()

    @property
    def active_version(self) -> str:
        """``name/version`` of the version being served, or ``base``."""
        return version_label(self._active)

    def activate(self, version: ModelVersionRef | None) -> None:
        """Serve ``version``'s LoRA from now on, or the base model when ``version`` is None.

        When the LoRA cannot be loaded this raises, and ``active_version`` says what is served
        then: the previous version if the file could not even be read, else the base.
        """
        with self._lock:
            if version is None:
                if self._loaded is not None:
                    self.pipe.disable_lora()
                self._active = None
                return
            if version != self._loaded:
                self._load(version)
            self.pipe.enable_lora()
            self._active = version
            log.info("serving %s", self.active_version)

    def _load(self, version: ModelVersionRef) -> None:
        path = local_lora(version, self.lora_cache, self.tracking_uri)
        if self._loaded is not None:
            try:
                self.pipe.load_lora_weights(path, adapter_name=_LORA_ADAPTER, hotswap=True)
                self._loaded = version
                return
            except (RuntimeError, ValueError) as exc:
                # Hot-swapping needs the new LoRA to adapt no module the first one left alone.
                log.warning("hot-swapping in %s failed (%s); loading it afresh", version.label, exc)
                self._discard_adapter()
        try:
            self.pipe.enable_lora_hotswap(target_rank=self.max_lora_rank)
            self.pipe.load_lora_weights(path, adapter_name=_LORA_ADAPTER)
        except Exception:
            self._discard_adapter()
            raise
        self._loaded = version

    def _discard_adapter(self) -> None:
        """A load that failed midway leaves the adapter half-written: drop it and serve the base."""
        if _LORA_ADAPTER in self.pipe.get_list_adapters().get("transformer", []):
            self.pipe.delete_adapters(_LORA_ADAPTER)
        self._loaded = None
        self._active = None

    def generate(
        self, version: ModelVersionRef | None, prompts: list[str], seeds: list[int], **kwargs: Any
    ) -> Generation:
        """Activate ``version`` and generate with it, with no other switch in between."""
        with self._lock:
            start = time.perf_counter()
            self.activate(version)
            activated = time.perf_counter() - start
            result = generate(self.pipe, prompts, seeds, **kwargs)
            result.timings["activate_s"] = activated
            return result
