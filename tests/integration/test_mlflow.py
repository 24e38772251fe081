"""A run, its artifact in the object store, a model version and an alias on the real MLflow server."""

from __future__ import annotations

import uuid

import mlflow
import pytest

from adfame.contracts import CHAMPION_ALIAS, MLFLOW_BUCKET
from adfame.mlflow_setup import configure_mlflow
from adfame.storage import ObjectStore

pytestmark = pytest.mark.integration


def test_log_run_register_version_and_resolve_alias(settings, tmp_path) -> None:
    client = configure_mlflow(settings)
    mlflow.set_experiment(f"adfame-test-{uuid.uuid4().hex[:8]}")
    lora = tmp_path / "adapter_config.json"
    lora.write_text('{"r": 16}')
    with mlflow.start_run() as run:
        mlflow.log_param("rank", 16)
        mlflow.log_metric("clip_score", 0.31)
        mlflow.log_artifact(str(lora), artifact_path="lora")

    # The artifact went through the tracking server into our bucket.
    keys = [o.key for o in ObjectStore(settings).list(MLFLOW_BUCKET)]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/lora/adapter_config.json") for k in keys)

    name = f"adfame-test-model-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"runs:/{run.info.run_id}/lora", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)

    resolved = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    assert resolved.version == version.version
    assert resolved.run_id == run.info.run_id
    assert client.get_run(run.info.run_id).data.metrics["clip_score"] == pytest.approx(0.31)
    client.delete_registered_model(name)
