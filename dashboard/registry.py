"""What the dashboard reads from the MLflow registry: a model's versions with their aliases and gate, and
the champion-vs-challenger grid an evaluation logged.

Why apart from the pages: these are the dashboard's only calls into MLflow; each takes the client, so
``dashboard.sources.from_registry`` can turn a registry that does not answer into a sentence.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

# training/evaluation.py (``log_evaluation``) logs the grids under this folder of the training run:
# the champion on the left, the challenger on the right, a row per held-out case (or per fairness variant).
GRIDS = {
    "held-out cases": "evaluation/side_by_side.mp4",
    "fairness variants": "evaluation/fairness.mp4",
}
# Lineage tags of a version (training/registry.py, ``LineageTag``) shown beside it.
TAGS_SHOWN = ("milestone", "gate", "gate_failed", "objective", "training_run", "dataset_snapshot")
VERSION_COLUMNS = ["version", "aliases", "created", "status", "run_id", *TAGS_SHOWN]


def model_versions(client: Any, model_name: str) -> pd.DataFrame:
    """The registered model's versions, newest first, with their aliases and lineage tags; empty when the
    model is not registered yet."""
    versions = client.search_model_versions(f"name = '{model_name}'")
    # search_model_versions leaves each version's aliases empty; the registered model holds them.
    aliases: dict[str, list[str]] = {}
    if versions:
        for alias, version in client.get_registered_model(model_name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
    rows = [
        {
            "version": str(v.version),
            "aliases": ", ".join(sorted(aliases.get(str(v.version), []))),
            "created": pd.to_datetime(v.creation_timestamp, unit="ms", utc=True),
            "status": v.status,
            "run_id": v.run_id,
            **{tag: (v.tags or {}).get(tag) for tag in TAGS_SHOWN},
        }
        for v in versions
    ]
    frame = pd.DataFrame(rows, columns=VERSION_COLUMNS)
    return frame.sort_values("version", key=lambda s: s.astype(int), ascending=False).reset_index(drop=True)


def grid_video(client: Any, run_id: str, artifact_path: str) -> bytes | None:
    """The mp4 of a grid the run logged, or None when the run has no such artifact (a run whose evaluation
    failed, or one made before grids were logged)."""
    folder, _, name = artifact_path.rpartition("/")
    if name not in {Path(a.path).name for a in client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory(prefix="adfame-dashboard-") as tmp:
        return Path(client.download_artifacts(run_id, artifact_path, tmp)).read_bytes()
