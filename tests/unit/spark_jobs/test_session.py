"""Where a Spark job runs (the master) and what it ships to a cluster's executors; no JVM needed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from adfame.settings import Settings
from spark_jobs import session
from spark_jobs.code_archive import project_code_archive


@pytest.fixture()
def no_launcher_master(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither SPARK_MASTER nor a spark-submit launch: the setting decides."""
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)


def use_setting(monkeypatch: pytest.MonkeyPatch, spark_master: str) -> None:
    monkeypatch.setattr(session, "get_settings", lambda: Settings(_env_file=None, spark_master=spark_master))


def test_the_setting_points_jobs_at_a_cluster_unless_the_caller_names_a_master(
    monkeypatch, no_launcher_master
) -> None:
    use_setting(monkeypatch, "spark://127.0.0.1:7077")
    assert session.resolve_master() == "spark://127.0.0.1:7077"
    assert session.resolve_master("local[1]") == "local[1]"
    monkeypatch.setenv("SPARK_MASTER", "spark://elsewhere:7077")
    assert session.resolve_master() == "spark://elsewhere:7077"


def test_without_the_setting_jobs_run_locally_on_two_cores(monkeypatch, no_launcher_master) -> None:
    use_setting(monkeypatch, "")
    assert session.resolve_master() == "local[2]"


def test_executors_import_the_shipped_code_before_what_their_host_has_installed(tmp_path: Path) -> None:
    """The archive holds the modules the caption-cleaning UDF needs, and a Python with it where PySpark's
    worker puts shipped files (sys.path[1]) imports them from it, not from the installed project."""
    archive = project_code_archive()
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"adfame/__init__.py", "adfame/text.py", "spark_jobs/__init__.py", "spark_jobs/text.py"} <= names
    code = (
        "import sys; sys.path.insert(1, sys.argv[1]); import adfame.text, spark_jobs.text; "
        "print(adfame.text.__file__); print(spark_jobs.text.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(archive)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert [Path(line).relative_to(archive).as_posix() for line in result.stdout.split()] == [
        "adfame/text.py",
        "spark_jobs/text.py",
    ]
