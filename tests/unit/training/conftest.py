"""What the training tests share: one tiny-wan folder, one tiny export, and untracked settings.

Why session-wide: copying tiny-wan and generating an export's candidates on it are the slow part of
these modules' set-up, and every test only reads them (trainer outputs, caches and LoRAs go to each
test's own folder).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from export_fixtures import write_tiny_export

from adfame.settings import Settings, get_settings
from inference.tiny_wan import build_tiny_wan


@pytest.fixture(scope="session")
def tiny_wan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-wan (seed 0, pretrained), the base model of every training test; read only."""
    return build_tiny_wan(tmp_path_factory.mktemp("tiny-wan"), seed=0)


@pytest.fixture(scope="session")
def tiny_export(tiny_wan: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real export of 3 requests x 3 candidates picked by ``bright`` (the last request held out)."""
    return write_tiny_export(tiny_wan, tmp_path_factory.mktemp("export"), requests=3, candidates=3)


@pytest.fixture()
def untracked(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose MLflow port nothing listens on, and no tracking URI in the environment."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    return get_settings().model_copy(update={"mlflow_port": closed_port})
