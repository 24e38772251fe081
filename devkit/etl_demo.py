"""`adfame etl demo`: a generated mirror as this deployment's sources, then one `nightly_etl` run.

Nothing can be downloaded on an offline machine, so the demo writes a mirror of the
public data sets (``devkit.mirror``) into the state folder and points the deployment's
ETL config at it; the nightly schedule then curates that mirror too.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from adfame.airflow_client import AirflowClient
from adfame.settings import get_settings
from devkit.mirror import generate_mirror
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
    """Point the sources at the mirror, then run ``nightly_etl`` once and wait, as a user would see it."""
    configure_mirror(rows, clips, parts)
    with AirflowClient() as client:

        def announce(run_id: str) -> None:
            log.info(
                "triggered %s run %s; follow it at %s/dags/%s",
                DAG_ID,
                run_id,
                client.settings.airflow_url,
                DAG_ID,
            )

        result = client.run_dag(DAG_ID, {"snapshot_id": snapshot_id}, timeout_s=1800, on_start=announce)
    load = next((t for t in result.task_instances if t["task_id"] == "load.load_snapshot"), None)
    return {"state": result.state, "run_id": result.run_id, "load_task": load and load["state"]}
