"""
### retrain_on_feedback

Learns from the marketers' picks: every 200th selection (milestone N) triggers one Airflow run, with conf
`{"milestone": N, "selection_count": ...}` (`adfame.schemas.RetrainConf`; a bad conf fails the first
task without retries).

1. **export_step**: milestone N's selections (winners, losers, prompts, seeds), a held-out share kept
   aside, to `s3://adfame-datasets/exports/milestone-NNNNN/` with a manifest. Idempotent.
2. **train_step** (pool `gpu`, queue `gpu`, executor `EdgeExecutor`: an edge worker, on a GPU host where
   there is one): a LoRA on the export (`dpo` by default), logged to MLflow
   with its loss curve; checkpoints to `s3://adfame-models/checkpoints/milestone-NNNNN`, so a retry
   resumes.
3. **evaluate_step**: the new LoRA against the champion (or the base model) on the held-out pairs with
   identical seeds; metrics, grids and a table to the training run.
4. **register_step**: a version of `adfame-wan-lora` with its lineage tags; the gate (settings
   `ADFAME_GATE_*`) gives it alias `challenger` or tags it `gate_failed` with the reasons. A re-run of a
   milestone registers nothing twice.
5. **announce_step**: updates the asset `challenger_model` (extra: name, version) when there is a new
   challenger; skipped when the gate failed.

Optional conf: `heldout_share`, `curated_sample`, `train` (fields of `training.config.TrainConfig`),
`evaluation` (fields of `training.evaluation.EvalConfig`). See docs/training.md.
"""

from __future__ import annotations

from datetime import timedelta

from adfame.contracts import RETRAIN_DAG_ID
from adfame.settings import get_settings
from operators.assets import CHALLENGER_MODEL
from operators.dag_defaults import adfame_dag
from operators.retrain_step import RetrainStepOperator
from training import retrain

SETTINGS = get_settings()

# Live from creation: milestones trigger it, and a paused DAG would leave their runs queued.
with adfame_dag(
    RETRAIN_DAG_ID,
    None,
    owner="ml",
    tags=["training"],
    retry_delay=timedelta(seconds=SETTINGS.retrain_retry_delay_s),
    doc_md=__doc__,
    paused_at_creation=False,
):
    export = RetrainStepOperator(step=retrain.export_step)
    train = RetrainStepOperator(
        step=retrain.train_step,
        pool=SETTINGS.gpu_pool,
        queue=SETTINGS.gpu_queue,
        executor=SETTINGS.gpu_executor or None,
        execution_timeout=timedelta(hours=12),
    )
    evaluate = RetrainStepOperator(step=retrain.evaluate_step, execution_timeout=timedelta(hours=2))
    register = RetrainStepOperator(step=retrain.register_step)
    announce = RetrainStepOperator(step=retrain.announce_step, outlets=[CHALLENGER_MODEL])

    export >> train >> evaluate >> register >> announce
