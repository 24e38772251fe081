"""Settings: prefix, generated secrets, derived addresses, and .env.example kept in step."""

from __future__ import annotations

import os
import re
import stat

import pytest

from adfame.settings import PROJECT_ROOT, Settings, ensure_secrets


@pytest.fixture(autouse=True)
def _defaults_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the defaults: the suite's stack profile (tests/stack.env) must not show through."""
    for key in [key for key in os.environ if key.startswith("ADFAME_")]:
        monkeypatch.delenv(key)


def test_secrets_are_generated_once_and_private(tmp_path) -> None:
    path = ensure_secrets(tmp_path)
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "ADFAME_POSTGRES_PASSWORD=" in first and "ADFAME_S3_SECRET_KEY=" in first
    assert ensure_secrets(tmp_path).read_text() == first


def test_environment_wins_and_hosts_default_to_host(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ADFAME_POSTGRES_PORT", "6543")
    monkeypatch.setenv("ADFAME_KAFKA_HOST", "kafka")
    settings = Settings(_env_file=None, state_dir=tmp_path, postgres_password="pw")
    assert settings.database_url() == "postgresql+psycopg2://adfame:pw@127.0.0.1:6543/adfame"
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.s3_endpoint == "127.0.0.1:8333"
    assert settings.airflow_url == "http://127.0.0.1:8080"


def test_env_example_documents_every_setting() -> None:
    documented = set(re.findall(r"ADFAME_([A-Z0-9_]+)=", (PROJECT_ROOT / ".env.example").read_text()))
    assert {name.upper() for name in Settings.model_fields} == documented
