"""The steps of ``nightly_etl``, one function each, handing files on through a per-snapshot work folder.

Each step reads what the previous ones wrote (``etl.work_folder`` names every file once) and returns a
small JSON summary (the task's XCom). Steps are re-runnable: a retry or a re-run of the same night
overwrites its own outputs, and the load step publishes a snapshot only once. Errors the run's input
causes are ``etl.errors.EtlInputError`` (not retried). The run's ``etl_runs`` row says ``running``
from the first step on, ``succeeded`` once the load publishes (or finds the snapshot published), and
``failed`` with the failing task and its error when a task fails for good (``record_failure``, which
the operator calls).

The DAG file imports this module to name its steps, so it stays light: pandas, Spark, PyAV and the
clients load inside the steps, when a task runs.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adfame.settings import get_settings
from etl.config import EtlConfig
from etl.errors import BadRunConf, GateFailed
from etl.sources import DatasetSource, open_source
from etl.work_folder import WorkFolder

log = logging.getLogger(__name__)
CONF_SECTIONS = ("sources", "filters", "media", "split", "gate")
CONFLICTS_LOGGED = 20  # conflicting mappings named one by one in the log (all are in the report)


def deployment_config_path() -> Path:
    """This deployment's defaults for every run (JSON with EtlConfig sections), e.g. its mirror's URIs."""
    return get_settings().state_dir / "etl" / "config.json"


@dataclass(frozen=True)
class RunContext:
    snapshot_id: str
    files: WorkFolder
    config: EtlConfig
    dag_run_id: str | None = None

    @classmethod
    def from_dag_run(cls, conf: dict[str, Any], run_id: str | None, run_after: datetime | None) -> RunContext:
        """Snapshot id from the conf or the run's date; config: defaults < deployment file < run conf.
        A conf that is not valid raises ``BadRunConf`` naming what is wrong."""
        snapshot_id = snapshot_id_of(conf, run_after)
        if not snapshot_id.replace("-", "").replace("_", "").isalnum():
            raise BadRunConf(f"snapshot_id {snapshot_id!r} may hold only letters, digits, '-' and '_'")
        base = deployment_config_path()
        deployed = json.loads(base.read_text()) if base.exists() else {}
        merged = {k: {**deployed.get(k, {}), **conf.get(k, {})} for k in CONF_SECTIONS}
        try:
            config = EtlConfig.model_validate(merged)
        except ValidationError as error:
            raise BadRunConf(f"the run's configuration is not valid: {error}") from error
        files = WorkFolder(get_settings().state_dir / "etl" / snapshot_id)
        files.root.mkdir(parents=True, exist_ok=True)
        return cls(snapshot_id, files, config, run_id)

    def source(self, name: str) -> DatasetSource:
        return open_source(getattr(self.config.sources, name), hub_endpoint=self.config.sources.hub_endpoint)


# What a DAG task runs: a step of this module, given the run, returning its summary.
EtlStep = Callable[[RunContext], dict[str, Any]]


def snapshot_id_of(conf: dict[str, Any], run_after: datetime | None) -> str:
    """The snapshot a run makes: ``snapshot_id`` in its conf, else the date it runs for."""
    return str(conf.get("snapshot_id") or (run_after or datetime.now()).strftime("%Y-%m-%d"))


# ---- the run's etl_runs row ---------------------------------------------------------------------
def record_start(run: RunContext) -> None:
    """The run's row, ``running`` (a run without a DAG run id, a step called by hand, has none yet)."""
    from adfame.db import engine
    from adfame.repositories import datasets

    if run.dag_run_id is not None:
        datasets.start_run(engine(), run.dag_run_id, {"snapshot_id": run.snapshot_id})


def record_failure(
    dag_run_id: str | None, snapshot_id: str, task_id: str, error: BaseException | str
) -> None:
    """Mark the run failed, with the task that failed and its error's first line as the reason."""
    from adfame.db import engine
    from adfame.repositories import datasets

    first_line = (str(error).strip().splitlines() or [""])[0]
    kind = f"{type(error).__name__}: " if isinstance(error, BaseException) else ""
    reason = f"{task_id}: {kind}{first_line}"
    stats = {"snapshot_id": snapshot_id, "failed_task": task_id, "reason": reason}
    datasets.finish_run(engine(), dag_run_id, "failed", stats)


# ---- ingest -------------------------------------------------------------------------------------
def fetch_metadata(run: RunContext) -> dict[str, Any]:
    """Download the metadata files (never the video parts) of each source into ``raw/``; the run's
    ``etl_runs`` row starts here."""
    record_start(run)
    cfg = run.config.sources
    wanted = {
        "openvid": [cfg.openvid_csv, *_under(run.source("openvid"), cfg.openvid_mapping_dir, "*.csv")],
        "vidprom": [cfg.vidprom_csv],
        "adimagenet": _glob(run.source("adimagenet"), cfg.adimagenet_glob),
    }
    summary: dict[str, Any] = {}
    for name, paths in wanted.items():
        source = run.source(name)
        sizes = 0
        for path in paths:
            local = source.download(path, run.files.raw(name))
            sizes += local.stat().st_size
        log.info("%s: %d files, %.1f MB from %s", name, len(paths), sizes / 1e6, source.uri)
        summary[name] = {"files": len(paths), "bytes": sizes, "uri": source.uri}
    if not wanted["adimagenet"]:
        raise FileNotFoundError(f"no AdImageNet files match {cfg.adimagenet_glob!r} in {cfg.adimagenet}")
    return run.files.metadata.write_report(summary)


def _glob(source: DatasetSource, pattern: str) -> list[str]:
    prefix = pattern.split("*", 1)[0].rsplit("/", 1)[0]
    return [p for p in source.list_files(prefix) if fnmatch.fnmatch(p, pattern)]


def _under(source: DatasetSource, folder: str, pattern: str) -> list[str]:
    return _glob(source, f"{folder.rstrip('/')}/{pattern}")


# ---- curate (Spark) -----------------------------------------------------------------------------
def spark_app_name(job: str, snapshot_id: str) -> str:
    """The Spark application's name: on a cluster's master UI it says which job of which night it is."""
    return f"adfame-nightly-etl-{job}-{snapshot_id}"


def curate_clips(run: RunContext) -> dict[str, Any]:
    from spark_jobs.curate_clips import curate
    from spark_jobs.session import get_spark

    cfg = run.config
    raw = run.files.raw("openvid")
    spark = get_spark(spark_app_name("curate", run.snapshot_id))
    curated, report = curate(
        spark,
        str(raw / cfg.sources.openvid_csv),
        [str(raw / cfg.sources.openvid_mapping_dir / "*.csv")],
        cfg.filters,
    )
    if cfg.filters.max_clips:
        curated = curated.limit(cfg.filters.max_clips)
    frame = curated.toPandas()
    frame.to_parquet(run.files.curated.data, index=False)
    conflicts = _mapped_to_several_parts(frame)
    for video, parts in list(conflicts.items())[:CONFLICTS_LOGGED]:
        log.warning(
            "%s is listed in the mappings of %s; extraction takes it from the one holding it", video, parts
        )
    summary = {**report.to_dict(), "to_extract": len(frame), "conflicting_mapping_parts": conflicts}
    log.info("curation: %s; %d to extract", report.outcome(), len(frame))
    return run.files.curated.write_report(summary)


def _mapped_to_several_parts(frame: Any) -> dict[str, list[str]]:
    """Each selected clip whose mappings name more than one part, with those parts in order."""
    parts = {
        row.video: sorted({loc["part"] for loc in row.locations}) for row in frame.itertuples(index=False)
    }
    return {video: names for video, names in parts.items() if len(names) > 1}


def filter_prompts(run: RunContext) -> dict[str, Any]:
    from spark_jobs.filter_prompts import filter_prompts as select_prompts
    from spark_jobs.session import get_spark

    spark = get_spark(spark_app_name("prompts", run.snapshot_id))
    raw = run.files.raw("vidprom") / run.config.sources.vidprom_csv
    prompts, report = select_prompts(spark, str(raw), run.config.filters.max_prompt_toxicity)
    prompts.toPandas().to_parquet(run.files.prompts.data, index=False)
    summary = run.files.prompts.write_report(report.to_dict())
    log.info("prompt pool: %s", summary)
    return summary


# ---- extract ------------------------------------------------------------------------------------
def extract_clips(run: RunContext) -> dict[str, Any]:
    import pandas as pd

    from etl.extract import extract_clips as extract

    curated = pd.read_parquet(run.files.curated.data)
    result = extract(curated.to_dict("records"), run.source("openvid"), run.files.media, run.config.media)
    result.to_frame().to_parquet(run.files.extracted.data, index=False)
    stats = run.files.extracted.write_report(result.stats.as_dict())
    log.info(
        "extraction: %d ok (%d found in another mapped part), %d corrupt (quarantined), %d missing; "
        "fetched %.2fx the selected bytes",
        stats["clips_ok"],
        stats["clips_found_elsewhere"],
        stats["clips_corrupt"],
        stats["clips_missing"],
        stats["fetched_over_selected"],
    )
    for part, problem in stats["part_problems"].items():
        log.warning("zip part %s gave no clips (%d selected): %s", part, problem["clips"], problem["reason"])
    return stats


def resize_images(run: RunContext) -> dict[str, Any]:
    """AdImageNet ads, short side resized and centre-cropped square; undecodable ones counted."""
    import pandas as pd

    from etl.media import CorruptMediaError, resize_image

    out = run.files.images.data
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    ok = corrupt = 0
    for parquet in sorted(run.files.raw("adimagenet").rglob("*.parquet")):
        for i, row in enumerate(pd.read_parquet(parquet, columns=["image"]).itertuples(index=False)):
            try:
                data = resize_image(row.image["bytes"], run.config.media.image_size)
            except CorruptMediaError as exc:
                corrupt += 1
                log.warning("image %d of %s is corrupt: %s", i, parquet.name, exc)
                continue
            (out / f"{parquet.stem}-{i:06d}.png").write_bytes(data)
            ok += 1
    summary = {"images_ok": ok, "images_corrupt": corrupt, "size": run.config.media.image_size}
    log.info("images: %s", summary)
    return run.files.images.write_report(summary)


# ---- split --------------------------------------------------------------------------------------
def assign_splits(run: RunContext) -> dict[str, Any]:
    import pandas as pd

    from etl.split import assign_splits as split
    from etl.split import split_shares

    curated = pd.read_parquet(run.files.curated.data)
    extracted = pd.read_parquet(run.files.extracted.data)
    ok = extracted[extracted["status"] == "ok"]
    # The resized file's own numbers replace the metadata's (they describe what we ship), and the part
    # that held the clip replaces the first one its mappings named.
    shipped = ["part", "video_path", "local_path", "sha256", "bytes", "frames", "fps", "width", "height"]
    probe = ok[["video", *shipped, "seconds"]].astype(
        {"bytes": "int64", "frames": "int64", "width": "int64", "height": "int64"}
    )
    dataset = curated.drop(columns=["frames", "fps", "seconds", "part", "video_path"]).merge(
        probe, on="video", how="inner"
    )
    dataset = split(dataset, run.config.split)
    dataset.to_parquet(run.files.dataset, index=False)
    shares = split_shares(dataset) if len(dataset) else {}
    log.info("split %d clips: %s", len(dataset), shares)
    return {"clips": len(dataset), "shares": shares}


# ---- gate ---------------------------------------------------------------------------------------
def validate(run: RunContext) -> dict[str, Any]:
    """Run the quality gate and keep its report; raise ``GateFailed`` (nothing loads) when it fails."""
    import pandas as pd

    from etl.quality_gate import failure_summary, validate_curated, write_report

    dataset = pd.read_parquet(run.files.dataset)
    extraction = run.files.extracted.read_report()
    stats = {
        "corrupt": extraction["clips_corrupt"],
        "attempted": extraction["clips_ok"] + extraction["clips_corrupt"],
        "missing": extraction["clips_missing"],
        "part_problems": extraction["part_problems"],
        "missing_columns": run.files.curated.read_report().get("missing_columns", []),
    }
    result = validate_curated(dataset, stats, run.config.gate, run.config.split)
    report = write_report(result, run.files.validation)
    log.info("validation report: %s", report)
    if not result.success:
        raise GateFailed(f"{failure_summary(result.failures)} (report: {report}); nothing was loaded")
    return {"success": True, "report": str(report), "rows": len(dataset)}


# ---- load ---------------------------------------------------------------------------------------
def load_snapshot(run: RunContext) -> dict[str, Any]:
    """Publish the gated dataset, its images, reports and prompt pool; refuse without a passing gate.
    The run's ``etl_runs`` row becomes ``succeeded`` with the publication, or here when the snapshot
    was published before."""
    import pandas as pd

    from adfame.db import engine
    from adfame.repositories import datasets
    from adfame.storage import ObjectStore
    from etl.load import load_snapshot as load
    from etl.stats import snapshot_stats

    files = run.files
    if not files.gate_passed():
        raise GateFailed(f"snapshot {run.snapshot_id} has no passing validation report; refusing to load")
    dataset = pd.read_parquet(files.dataset)
    stats = snapshot_stats(dataset, files.extracted.read_report(), files.curated.read_report())
    stats["images"] = files.images.read_report()
    stats["prompts"] = files.prompts.read_report()
    published = (files.validation, files.prompts.data, files.curated.report, files.extracted.report)
    result = load(
        snapshot_id=run.snapshot_id,
        dataset=dataset,
        images=sorted(files.images.data.glob("*.png")),
        extra_files={path.name: path for path in published},
        stats=stats,
        config=run.config.model_dump(mode="json"),
        store=ObjectStore(),
        engine=engine(),
        dag_run_id=run.dag_run_id,
    )
    if result.already_loaded and run.dag_run_id is not None:
        stats = {"snapshot_id": run.snapshot_id, "already_loaded": True}
        datasets.finish_run(engine(), run.dag_run_id, "succeeded", stats)
    return asdict(result)
