"""The tasks of ``canary_rollout``: start a challenger's canary, hold each traffic step for a judged
window, wait for a person's approval before 100 % (optional), promote.

Why operators of their own: each task turns the run's params into calls of ``monitoring.rollout`` (the one
implementation of the actions, shared with ``adfame canary``) and ``monitoring.canary_judge``, and the
window is waited for by the triggerer (``DateTimeTrigger``, a deferral), not by a sleeping worker slot. A
breached window rolls the canary back with the judge's reasons at once and fails its task, so the run ends
failed with the reasons in its log; a rejected approval does the same. Every action is recorded with the
actor ``dag:<run id>``, which is also how a retried ``start_canary`` recognises the canary it started
itself, while a version whose canary someone else started (another trigger of the same version: the
asset event and the MLflow webhook both fire for one retrain) is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator, Context, timezone
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from pydantic import BaseModel, Field, ValidationError, field_validator

from adfame.settings import Settings, get_settings
from operators.mlflow_links import MlflowModelVersionLink

if TYPE_CHECKING:
    from sqlalchemy import Engine

START_TASK = "start_canary"
DAG_ACTOR_PREFIX = "dag:"


class CanaryConf(BaseModel):
    """The run's params (DAG params, overridden by a trigger's conf). None: decided when the run starts."""

    model_version: str | None = None
    model_name: str | None = None
    steps: list[int]
    window_s: float = Field(gt=0)
    min_requests: int = Field(ge=1)
    max_windows: int = Field(ge=1)
    max_latency_ratio: float = Field(gt=0)
    source: str | None = None

    @field_validator("steps")
    @classmethod
    def _ascending_to_100(cls, steps: list[int]) -> list[int]:
        if (
            not steps
            or steps[-1] != 100
            or any(not 0 < w <= 100 for w in steps)
            or steps != sorted(set(steps))
        ):
            raise ValueError(f"steps must rise strictly within 1..100 and end at 100, got {steps}")
        return steps


def parse_conf(context: Context) -> CanaryConf:
    """The run's params; a bad value fails the task without retries, naming what was wrong."""
    try:
        return CanaryConf.model_validate(dict(context["params"]))
    except ValidationError as exc:
        raise AirflowFailException(f"canary_rollout: bad params or conf: {exc}") from exc


def run_actor(context: Context) -> str:
    """Who the rollout's history records for this run's actions."""
    return DAG_ACTOR_PREFIX + context["run_id"]


@dataclass(frozen=True)
class Rollout:
    """What the rollout functions take, for the model this run rolls out."""

    settings: Settings
    engine: Engine
    client: Any  # MlflowClient


@contextmanager
def rollout_for(conf: CanaryConf, model_name: str | None = None) -> Iterator[Rollout]:
    """Settings for this run's model and judge, the app database and an MLflow client (imported here:
    DAG files parse without MLflow and SQLAlchemy engines)."""
    from adfame.db import create_engine_for
    from adfame.mlflow_setup import configure_mlflow

    base = get_settings()
    settings = base.model_copy(
        update={
            "registered_model": model_name or conf.model_name or base.registered_model,
            "canary_steps": conf.steps,
            "canary_window_s": conf.window_s,
            "canary_min_requests": conf.min_requests,
            "canary_max_latency_ratio": conf.max_latency_ratio,
        }
    )
    engine = create_engine_for(settings)
    try:
        yield Rollout(settings, engine, configure_mlflow(settings))
    finally:
        engine.dispose()


def started(context: Context) -> dict[str, str]:
    """What ``start_canary`` returned: the model name and version this run rolls out."""
    value = context["ti"].xcom_pull(task_ids=START_TASK)
    if not value:
        raise AirflowFailException(f"{START_TASK} returned no model version")
    return value


def triggering_version(context: Context) -> tuple[str | None, str | None]:
    """(name, version) from the last asset event that started the run (retrain_on_feedback's extra)."""
    accessor = context.get("triggering_asset_events")
    extras = [event.extra or {} for asset in accessor or () for event in accessor[asset]]
    if not extras:
        return None, None
    version = extras[-1].get("version")
    return extras[-1].get("name"), str(version) if version is not None else None


def foreign_canary(rollout: Rollout, version: str, actor: str) -> str | None:
    """Why this run must not roll ``version`` out: its canary ran, or runs, under another actor (None when
    it never had one, or this run started it and its task is being retried)."""
    from adfame.repositories.deployments import deployment_events

    events = [
        e
        for e in deployment_events(rollout.engine, rollout.settings.registered_model)
        if e.model_version == version
    ]
    if not events or any(event.actor == actor for event in events):
        return None
    last = events[-1]
    return (
        f"version {version}'s canary already ran or is live: {last.state} at {last.weight} % by {last.actor}"
        f" at {last.at:%Y-%m-%d %H:%M:%S} ({last.reason})"
    )


class StartCanaryOperator(BaseOperator):
    """Choose the version (conf, else the asset event, else alias challenger) and start its canary."""

    ui_color = "#d9ead3"
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(task_id=START_TASK, **kwargs)

    def execute(self, context: Context) -> dict[str, str]:
        from adfame.contracts import CHALLENGER_ALIAS
        from monitoring import rollout

        conf = parse_conf(context)
        event_name, event_version = triggering_version(context)
        source = conf.source or ("asset" if event_version else "manual")
        with rollout_for(conf, conf.model_name or event_name) as r:
            name = r.settings.registered_model
            version = conf.model_version or event_version
            version = version or rollout.registry_aliases(r.client, name).get(CHALLENGER_ALIAS)
            if version is None:
                raise AirflowFailException(
                    f"no version to roll out: conf names no model_version, no asset event named one, and no"
                    f" version of {name} carries alias {CHALLENGER_ALIAS}"
                )
            self.model_version_ref = (name, version)
            if (reason := foreign_canary(r, version, run_actor(context))) is not None:
                raise AirflowSkipException(reason)
            try:
                rollout.start_canary(
                    r.settings, r.engine, r.client, version, weight=conf.steps[0], actor=run_actor(context)
                )
            except rollout.AlreadyChampion as exc:
                raise AirflowSkipException(str(exc)) from exc
            except (rollout.NoChallenger, rollout.UnknownVersion, rollout.CanaryInProgress) as exc:
                raise AirflowFailException(str(exc)) from exc
        self.log.info("canary of %s version %s started at %d %% (%s)", name, version, conf.steps[0], source)
        return {"name": name, "version": version, "source": source}


def expect_live(rollout: Rollout, version: str) -> None:
    """Fail the task when this run's version is no longer the live canary (a person promoted or rolled it
    back meanwhile, or started another): the run has nothing left to do, and must not touch the other."""
    from adfame.contracts import CHALLENGER_ALIAS
    from adfame.repositories.deployments import routing_state

    live = routing_state(rollout.engine, rollout.settings.registered_model, CHALLENGER_ALIAS).canary_version
    if live != version:
        now = f"version {live} is" if live else "no version is"
        raise AirflowFailException(
            f"the canary of version {version} is no longer live ({now} the live canary):"
            " see `adfame canary status`"
        )


def _route_summary(window: Any) -> dict[str, Any]:
    """A route's window for the XCom: its figures and each quality metric's mean and sample count."""
    from dataclasses import asdict

    figures = {k: v for k, v in asdict(window).items() if k != "quality_values"}
    samples = {name: len(values) for name, values in window.quality_values.items()}
    return figures | {"quality": window.quality, "quality_samples": samples}


def window_summary(
    engine: Engine, verdict: Any, weight: int, start: datetime, end: datetime
) -> dict[str, Any]:
    """A judged window as the task's XCom: the judge's figures, and the requests each version served in
    this very window with the challenger's share of them (counted here: at 100 % the judge takes the
    champion's figures from the window before, which are no share of this one)."""
    from adfame.repositories.monitoring import route_outcomes

    served: dict[str, int] = {}
    for outcome in route_outcomes(engine, start, end):
        served[outcome.model_version] = served.get(outcome.model_version, 0) + outcome.requests
    challenger = served.get(verdict.challenger.model_version, 0)
    champion = served.get(verdict.champion.model_version, 0)
    return {
        "weight": weight,
        "challenger_requests": challenger,
        "champion_requests": champion,
        "challenger_share": 100.0 * challenger / (challenger + champion) if challenger + champion else None,
        "challenger": _route_summary(verdict.challenger),
        "champion": _route_summary(verdict.champion),
        "notes": list(verdict.notes),
    }


class CanaryWindowOperator(BaseOperator):
    """One traffic step: set the weight, let the triggerer wait out the window, judge it."""

    ui_color = "#fff2cc"
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(self, *, position: int, of: int, **kwargs: Any) -> None:
        super().__init__(task_id=f"step_{position}", **kwargs)
        self.position, self.of = position, of

    def _weight(self, conf: CanaryConf) -> int:
        if len(conf.steps) != self.of:
            raise AirflowFailException(
                f"steps {conf.steps} has {len(conf.steps)} weights; this DAG has {self.of} steps"
                " (setting canary_steps)"
            )
        return conf.steps[self.position - 1]

    def execute(self, context: Context) -> None:
        from monitoring import rollout

        conf, ref = parse_conf(context), started(context)
        weight, self.model_version_ref = self._weight(conf), (ref["name"], ref["version"])
        reason = f"step {self.position}/{self.of}: {weight} % for a {conf.window_s:g}s window"
        with rollout_for(conf, ref["name"]) as r:
            expect_live(r, ref["version"])
            rollout.set_weight(r.settings, r.engine, weight, reason, actor=run_actor(context))
        start = timezone.utcnow()
        self.log.info("%s", reason)
        self._wait(start, start + timedelta(seconds=conf.window_s), windows=1)

    def _wait(self, start: datetime, end: datetime, windows: int) -> None:
        """Hand the wait to the triggerer; ``judge`` runs when ``end`` has come."""
        self.log.info(
            "judging %s .. %s (window %d) when it ends", start.isoformat(), end.isoformat(), windows
        )
        self.defer(
            trigger=DateTimeTrigger(moment=end),
            method_name="judge",
            kwargs={"start": start.isoformat(), "end": end.isoformat(), "windows": windows},
        )

    def judge(
        self, context: Context, event: Any = None, start: str = "", end: str = "", windows: int = 1
    ) -> dict[str, Any]:
        """Pass: the window's figures. Too few challenger requests: wait one more window, judging the
        whole stretch, up to ``max_windows``. Breach (or still too few): roll back and fail the run."""
        from monitoring import canary_judge, quality, rollout

        conf, ref = parse_conf(context), started(context)
        weight, self.model_version_ref = self._weight(conf), (ref["name"], ref["version"])
        began, ended = datetime.fromisoformat(start), datetime.fromisoformat(end)
        with rollout_for(conf, ref["name"]) as r:
            expect_live(r, ref["version"])
            # Score the newest requests of both versions now (as many as the judge needs), so it has
            # the window's quality even when the monitor DAG's last sampling is older than the window.
            per_version = max(r.settings.quality_sample_per_version, r.settings.canary_min_quality_samples)
            sampling = r.settings.model_copy(update={"quality_sample_per_version": per_version})
            quality.sample_quality(sampling, r.engine, now=ended)
            verdict = canary_judge.judge_window(r.settings, r.engine, began, ended)
            summary = window_summary(r.engine, verdict, weight, began, ended)
            summary |= {"windows": windows, "outcome": verdict.outcome}
            self.log.info("window %s .. %s at %d %%: %s", start, end, weight, summary)
            if verdict.passed:
                return summary
            if verdict.inconclusive and windows < conf.max_windows:
                self._wait(began, ended + timedelta(seconds=conf.window_s), windows + 1)
            reason = f"step {self.position}/{self.of} at {weight} %: " + "; ".join(verdict.reasons)
            reason += f" (after {windows} windows)" if verdict.inconclusive else ""
            rollout.rollback(r.settings, r.engine, r.client, reason, actor=run_actor(context))
        raise AirflowFailException(f"canary of {ref['name']} version {ref['version']} rolled back: {reason}")


def roll_back_unjudged(context: Context) -> None:
    """``on_failure_callback`` of the tasks after ``start_canary``: a run that ends failed for any reason
    but a verdict (a bug, a crash, a service gone for all its retries) rolls its canary back, so the version
    does not keep a share of live traffic that nobody judges any more. A canary that is not this run's
    live one now (a verdict rolled it back, a person promoted or replaced it) is left alone."""
    from adfame.contracts import CHALLENGER_ALIAS
    from adfame.repositories.deployments import routing_state
    from monitoring import rollout

    ti = context["ti"]
    ref = ti.xcom_pull(task_ids=START_TASK)
    if not ref:
        return
    failure = context.get("exception")
    reason = f"canary_rollout run {context['run_id']}: {ti.task_id} failed before a verdict ({failure!r})"
    with rollout_for(parse_conf(context), ref["name"]) as r:
        live = routing_state(r.engine, r.settings.registered_model, CHALLENGER_ALIAS).canary_version
        if live == ref["version"]:
            rollout.rollback(r.settings, r.engine, r.client, reason, actor=run_actor(context))


class CanaryApprovalOperator(ApprovalOperator):
    """Airflow's ``ApprovalOperator`` before the step to 100 %: Approve goes on; Reject (or no answer
    within ``response_timeout``) rolls the canary back and fails the run."""

    ui_color = "#f4cccc"
    operator_extra_links = (MlflowModelVersionLink(),)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from monitoring import rollout

        result = super().execute_complete(context=context, event=event)
        ref = started(context)
        self.model_version_ref = (ref["name"], ref["version"])
        if result["chosen_options"] != [self.REJECT]:
            return result
        conf = parse_conf(context)
        user = result.get("responded_by_user")
        who = f"by {user['name']}" if user else "by default: nobody answered in time"
        reason = f"full traffic rejected in the Airflow UI ({who})"
        with rollout_for(conf, ref["name"]) as r:
            expect_live(r, ref["version"])
            rollout.rollback(r.settings, r.engine, r.client, reason, actor=run_actor(context))
        raise AirflowFailException(f"canary of {ref['name']} version {ref['version']} rolled back: {reason}")


class PromoteCanaryOperator(BaseOperator):
    """Every window passed: the version becomes the champion (alias and deployments in one step)."""

    ui_color = "#b6d7a8"
    operator_extra_links = (MlflowModelVersionLink(),)

    def execute(self, context: Context) -> dict[str, Any]:
        from monitoring import rollout

        conf, ref = parse_conf(context), started(context)
        self.model_version_ref = (ref["name"], ref["version"])
        reason = f"passed {len(conf.steps)} windows of {conf.window_s:g}s at {conf.steps} %"
        with rollout_for(conf, ref["name"]) as r:
            expect_live(r, ref["version"])
            state = rollout.promote(r.settings, r.engine, r.client, reason, actor=run_actor(context))
        self.log.info("%s version %s is the champion: %s", ref["name"], ref["version"], reason)
        return {"name": ref["name"], "version": ref["version"], "champion": state.champion, "reason": reason}
