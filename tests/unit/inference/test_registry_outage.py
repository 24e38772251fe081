"""A LoRA download that meets an unreachable registry is the registry's outage, not the version's fault.

The worker reads a request again after a service error (RegistryUnavailable) but fails it for a version
whose files are gone (OSError); the difference is in the exception's chain, as MLflow raises it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from mlflow.exceptions import MlflowException

from inference.model import ModelVersionRef, local_lora, registry_unreachable
from inference.routing import RegistryUnavailable

VERSION = ModelVersionRef("adfame-wan-lora", "3", "runs:/abc/lora")


def _mlflow_error(cause: Exception | None) -> MlflowException:
    """An MlflowException raised while handling ``cause``, the way mlflow's rest_utils raises it."""
    try:
        try:
            if cause is not None:
                raise cause
            raise MlflowException("RESOURCE_DOES_NOT_EXIST: no such artifact")
        except Exception as inner:
            if cause is None:
                raise
            raise MlflowException(f"API request failed with exception {inner}") from None
    except MlflowException as exc:
        exc.__context__ = cause
        return exc


def _download_raising(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    import mlflow.artifacts

    def download(**_kwargs: object) -> str:
        raise error

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", download)


def test_a_refused_connection_is_the_registry_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _download_raising(monkeypatch, _mlflow_error(requests.ConnectionError("Connection refused")))
    with pytest.raises(RegistryUnavailable, match="could not reach the registry"):
        local_lora(VERSION, tmp_path)
    assert not list(tmp_path.iterdir()), "a failed download leaves nothing behind"


def test_missing_files_are_the_versions_fault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _download_raising(monkeypatch, _mlflow_error(None))
    with pytest.raises(OSError, match="could not download the LoRA"):
        local_lora(VERSION, tmp_path)


def test_unreachable_is_read_from_the_chain() -> None:
    assert registry_unreachable(_mlflow_error(requests.Timeout("read timed out")))
    assert registry_unreachable(ConnectionRefusedError())
    assert not registry_unreachable(_mlflow_error(None))
    assert not registry_unreachable(ValueError("bad adapter"))
