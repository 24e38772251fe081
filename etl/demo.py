"""`adfame etl demo`: a generated mirror as this deployment's sources, then one `nightly_etl` run.

Nothing can be downloaded on an offline machine, so the demo writes a mirror of the
public data sets (``etl.mirror``) into the state folder and points the deployment's
ETL config at it; the nightly schedule then curates that mirror too.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from adfame.airflow_client import AirflowClient
from adfame.settings import get_settings
from etl.mirror import generate_mirror
from etl.pipeline import deployment_config_path

log = logging.getLogger(__name__)
DAG_ID = "nightly_etl"


def configure_mirror(rows: int, clips: int, parts: int) -> dict[str, Any]:
    """Generate the mirror once and make it the deployment's default sources."""
    root = get_settings().state_dir / "mirror"
    if not (root / "nkp37").exists():
        log.info("generating a mirror of %d metadata rows and %d clips in %s", rows, clips, root)
        generate_mirror(root, rows=rows, clips=clips, parts=parts)
    sources = {
        "openvid": f"file://{root}/nkp37/OpenVid-1M",
        "vidprom": f"file://{root}/WenhaoWang/VidProM",
        "adimagenet": f"file://{root}/PeterBrendan/AdImageNet",
    }
    path = deployment_config_path()
    config = json.loads(path.read_text()) if path.exists() else {}
    config["sources"] = {**config.get("sources", {}), **sources}
    config.setdefault("media", {"video_height": 240})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    log.info("ETL sources now read %s (config %s)", root, path)
    return config


def run_demo(rows: int = 3000, clips: int = 48, parts: int = 3, snapshot_id: str = "demo") -> dict[str, Any]:
    configure_mirror(rows, clips, parts)
    with AirflowClient() as client:
        client.wait_for_dag(DAG_ID)
        client.set_paused(DAG_ID, False)
        run = client.trigger_dag(DAG_ID, conf={"snapshot_id": snapshot_id})
        log.info(
            "triggered %s run %s; follow it at %s/dags/%s",
            DAG_ID,
            run["dag_run_id"],
            client.settings.airflow_url,
            DAG_ID,
        )
        final = client.wait_for_dag_run(DAG_ID, run["dag_run_id"], timeout_s=1800)
        load = next(
            (
                t
                for t in client.task_instances(DAG_ID, run["dag_run_id"])
                if t["task_id"] == "load.load_snapshot"
            ),
            None,
        )
    return {"state": final["state"], "run_id": run["dag_run_id"], "load_task": load and load["state"]}
