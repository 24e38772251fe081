"""
### canary_rollout

Walks a challenger model version through growing shares of live traffic and makes it the champion,
or rolls it back the moment a window breaches. See docs/canary.md.

Started by the asset `challenger_model` (a retrain registered a version that passed its gate), by MLflow's
registry webhook when a reviewer sets alias `challenger` by hand (conf `source: mlflow-webhook`), or by
hand with conf. One run at a time; a version whose canary already ran, or is live under another run, is
skipped by the first task, so the asset event and the webhook of one retrain start one canary.

1. **start_canary**: the version (conf `model_version`, else the asset event's, else the one alias
   `challenger` names) gets its canary at the first step's weight (`monitoring.rollout.start_canary`).
2. **step_1 .. step_N** (setting `canary_steps`, 5 -> 25 -> 50 -> 100 %): set the weight, wait out the
   window (`canary_window_s`) in the triggerer (a deferral: no worker slot sleeps), then judge it against
   the champion over the same window (`monitoring.canary_judge.judge_window`: p95 latency ratio, error
   rate, sampled quality). A breach rolls the canary back with the judge's reasons and fails the run.
3. **approve_full_traffic** (only with setting `canary_require_approval`): before the step to 100 %, a
   person answers in the Airflow UI (Browse -> Required Actions, or the task's Required Action tab) or
   over REST; Reject, or no answer within a day, rolls back.
4. **promote**: alias `champion` and the `deployments` rows move to the version in one step.

A task after `start_canary` that fails for another reason than a verdict (a crash, a bug, a service down
for all its retries) rolls the canary back from its failure callback: no version keeps unjudged traffic.

Params (a trigger's conf overrides them): `model_version`, `model_name` (default: the served registered
model), `steps` (one weight per step task, rising, ending at 100), `window_s`, `min_requests` (the judge's
minimum of challenger requests per window), `max_latency_ratio` (its p95 latency limit against the
champion's), `max_windows` (a step short of requests waits up to this many
windows, judging them together, then rolls back as inconclusive), `source`.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from airflow.sdk import Param

from adfame.contracts import CANARY_DAG_ID
from adfame.settings import get_settings
from operators.assets import CHALLENGER_MODEL
from operators.canary_step import (
    START_TASK,
    CanaryApprovalOperator,
    CanaryWindowOperator,
    PromoteCanaryOperator,
    StartCanaryOperator,
    roll_back_unjudged,
)
from operators.dag_defaults import adfame_dag

SETTINGS = get_settings()
STEPS = SETTINGS.canary_steps
# A step without enough challenger requests to judge waits up to this many windows, then rolls back.
MAX_WINDOWS = 3
APPROVAL_TIMEOUT = timedelta(days=1)  # a canary does not hold its last-but-one step for ever
_STARTED = f"ti.xcom_pull(task_ids='{START_TASK}')"
VERSION_OF_RUN = f"{{{{ {_STARTED}['name'] }}}} version {{{{ {_STARTED}['version'] }}}}"
LAST_BUT_ONE = STEPS[-2] if len(STEPS) > 1 else 0

with adfame_dag(
    CANARY_DAG_ID,
    CHALLENGER_MODEL,
    owner="ml",
    tags=["serving", "canary"],
    retry_delay=timedelta(seconds=30),
    doc_md=__doc__,
    paused_at_creation=not SETTINGS.canary_autostart,
    params={
        "model_version": Param(None, type=["null", "string"], description="default: the asset event's"),
        "model_name": Param(None, type=["null", "string"], description="default: the served model"),
        "steps": Param(STEPS, type="array", items={"type": "integer"}, description="traffic % per step"),
        "window_s": Param(SETTINGS.canary_window_s, type="number", exclusiveMinimum=0),
        "min_requests": Param(SETTINGS.canary_min_requests, type="integer", minimum=1),
        "max_latency_ratio": Param(SETTINGS.canary_max_latency_ratio, type="number", exclusiveMinimum=0),
        "max_windows": Param(
            MAX_WINDOWS, type="integer", minimum=1, description="windows to reach min_requests"
        ),
        "source": Param(None, type=["null", "string"], description="who started it (asset, mlflow-webhook)"),
    },
):
    # Every task after the start: a failed run must not leave its canary serving traffic unjudged.
    after_start = {"on_failure_callback": roll_back_unjudged}
    chain = [StartCanaryOperator()]
    for position in range(1, len(STEPS) + 1):
        if position == len(STEPS) and SETTINGS.canary_require_approval:
            chain.append(
                CanaryApprovalOperator(
                    task_id="approve_full_traffic",
                    subject=f"Give the challenger all traffic? {VERSION_OF_RUN}",
                    body=(
                        f"Every window up to {LAST_BUT_ONE} % passed for {VERSION_OF_RUN}."
                        " **Approve**: one more window at 100 %, then promotion to champion."
                        " **Reject**: roll the canary back now (champion untouched)."
                    ),
                    defaults=CanaryApprovalOperator.REJECT,
                    response_timeout=APPROVAL_TIMEOUT,
                    **after_start,
                )
            )
        chain.append(CanaryWindowOperator(position=position, of=len(STEPS), **after_start))
    chain.append(PromoteCanaryOperator(task_id="promote", **after_start))
    for upstream, downstream in itertools.pairwise(chain):
        upstream >> downstream
