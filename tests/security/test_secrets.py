"""Secrets come only from the environment or the state folder: a scan of the repository finds none.

detect-secrets (pinned in requirements.lock) scans every file git tracks; each finding must be one of
the audited false positives in ``.secrets.baseline`` (``is_secret: false``; why each is harmless is in
docs/security.md). A new finding fails with its file, line and kind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from adfame.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / ".secrets.baseline"
DETECT_SECRETS = str(Path(sys.executable).parent / "detect-secrets")

Finding = tuple[str, str, str]  # file, kind, hashed secret


def _findings(results: dict[str, list[dict]]) -> dict[Finding, int]:
    return {
        (item["filename"], item["type"], item["hashed_secret"]): item["line_number"]
        for items in results.values()
        for item in items
    }


def test_the_repository_holds_no_secret_but_the_audited_false_positives() -> None:
    baseline = json.loads(BASELINE.read_text())
    unaudited = [f for f, _ in _findings(baseline["results"]).items() if not _is_false_positive(baseline, f)]
    assert not unaudited, f"baseline entries not audited as false positives: {unaudited}"
    scan = subprocess.run(
        [DETECT_SECRETS, "scan", "--exclude-files", r"^\.secrets\.baseline$"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stderr
    found = _findings(json.loads(scan.stdout)["results"])
    new = {f"{file}:{line}: {kind}" for (file, kind, digest), line in found.items()
           if (file, kind, digest) not in _findings(baseline["results"])}  # fmt: skip
    assert not new, f"possible secrets in the repository (move them to the environment or .state): {new}"


def _is_false_positive(baseline: dict, finding: Finding) -> bool:
    file, kind, digest = finding
    return any(
        item["type"] == kind and item["hashed_secret"] == digest and item.get("is_secret") is False
        for item in baseline["results"].get(file, [])
    )


@pytest.mark.parametrize("name", [n for n, f in Settings.model_fields.items() if f.annotation is SecretStr])
def test_no_secret_setting_has_a_default_in_the_code(name: str) -> None:
    """Every credential is empty until the environment, .env or the state folder's secrets.env sets it."""
    default = Settings.model_fields[name].default
    assert isinstance(default, SecretStr) and default.get_secret_value() == "", name
