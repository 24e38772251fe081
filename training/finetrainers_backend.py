"""The ``finetrainers`` engine: selectable in ``TrainConfig.engine``, refused with the reason where it fails.

finetrainers' last release (0.2.0 on PyPI) ships without ``finetrainers.patches.dependencies``,
which its own trainers import, and it needs packages this project does not install (wandb,
decord, torchao, kornia, ...); the fix lives only on its main branch (docs/training.md says what
was and was not verified). Its dataset layout and LoRA file format are the project's interchange
format, and the built-in engine writes the same LoRA file, so nothing downstream depends on
which engine trained a version.
"""

from __future__ import annotations

import importlib

# What the engine needs to import: the package, and the subpackage the 0.2.0 wheel lacks.
REQUIRED_MODULES = ("finetrainers", "finetrainers.patches.dependencies", "finetrainers.trainer")


class EngineUnavailable(RuntimeError):
    """The configured training engine cannot run here; the message names what is missing."""


def require_finetrainers() -> None:
    """Raise ``EngineUnavailable`` naming the first module of finetrainers that does not import.

    Where every module imports, the run is still refused: driving finetrainers' ``SFTTrainer``
    from a ``TrainConfig`` has not been built, because no release that imports was available to
    verify it against.
    """
    for name in REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise EngineUnavailable(
                f"engine 'finetrainers' needs {name}, which does not import ({exc}). finetrainers 0.2.0 "
                "on PyPI lacks finetrainers.patches.dependencies; install it from its main branch, "
                "or use engine 'builtin' (same LoRA format)"
            ) from exc
    raise EngineUnavailable(
        "finetrainers imports, but AdFame does not yet drive it from a TrainConfig; use engine 'builtin' "
        "(it writes the same pytorch_lora_weights.safetensors)"
    )
