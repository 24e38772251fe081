"""
### monitor

An Airflow DAG that watches what production serves, every `ADFAME_MONITOR_INTERVAL_MINUTES` minutes
(5 by default):

1. **sample_quality**: per model version, the newest succeeded requests not sampled yet: their mp4s
   decoded and scored like evaluation scores (temporal consistency, flicker, motion;
   `training.metrics`), one row per request and metric in `monitoring_metrics` (`quality.*`).
2. **check_prompt_drift**: the last window's prompts against the latest snapshot's train captions on
   MiniLM embeddings: MMD with an RBF kernel and a permutation p-value; a `drift_reports` row with the
   prompt clusters, their shares as `prompt_cluster.share` metrics.
3. **evaluate_alerts**: p95 latency, error rate, quality drop against the champion's trailing mean, and
   drift: each recorded once per breach window in `alerts` and logged; with `ADFAME_RETRAIN_ON_ALERT`,
   a drift or quality alert starts `retrain_on_feedback`.

A run's conf may override the monitoring settings (`quality_*`, `drift_*`, `alert_*`,
`retrain_on_alert`). Paused at creation, like `nightly_etl`: unpause it where it should watch
(`make demo` does). See docs/monitoring.md.
"""

from __future__ import annotations

from datetime import timedelta

from adfame.contracts import MONITOR_DAG_ID
from adfame.settings import get_settings
from monitoring.alerts import evaluate_alerts
from monitoring.drift import check_prompt_drift
from monitoring.quality import sample_quality
from operators.dag_defaults import adfame_dag
from operators.monitor_step import MonitorStepOperator

SETTINGS = get_settings()

with adfame_dag(
    MONITOR_DAG_ID,
    timedelta(minutes=SETTINGS.monitor_interval_minutes),
    owner="ml",
    tags=["monitoring"],
    retry_delay=timedelta(seconds=30),
    doc_md=__doc__,
):
    quality = MonitorStepOperator(step=sample_quality, execution_timeout=timedelta(minutes=10))
    drift = MonitorStepOperator(step=check_prompt_drift, execution_timeout=timedelta(minutes=10))
    alerts = MonitorStepOperator(step=evaluate_alerts, execution_timeout=timedelta(minutes=5))

    [quality, drift] >> alerts
