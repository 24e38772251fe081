"""Every DAG imports cleanly and quickly, and carries the metadata operators rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from adfame.settings import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
MAX_IMPORT_S = 2.0


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_every_dag_file_defines_a_dag(dagbag) -> None:
    files = {p.name for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_")}
    loaded = {Path(stat.file).name for stat in dagbag.dagbag_stats if stat.dag_num > 0}
    assert files and files == loaded


def test_each_file_imports_fast(dagbag) -> None:
    slow = {
        stat.file: stat.duration.total_seconds()
        for stat in dagbag.dagbag_stats
        if stat.duration.total_seconds() >= MAX_IMPORT_S
    }
    assert slow == {}


def test_dags_have_tags_docs_and_retries(dagbag) -> None:
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and dag.doc_md.strip(), f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
