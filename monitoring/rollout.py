"""The canary's operator actions: start, set the weight, promote, roll back, and its status.

One implementation for ``adfame canary ...``, the ``canary_rollout`` DAG and the automatic rollback, so
a person and the DAG cannot disagree about what an action means (docs/canary.md#the-actions).

Two stores hold a rollout: the MLflow registry's aliases (``champion``, ``challenger``: which versions
workers load) and the ``deployments`` table (the canary's traffic weight and every row's state, with its
history in ``deployment_events``). Each action runs in one PostgreSQL transaction that first takes the
model's rollout lock (one action per model at a time: the DAG, a webhook and a person may act at once),
writes its rows, and calls MLflow last, while the transaction is still open: when MLflow fails, the
transaction rolls back and neither store changed. Promotion makes two registry calls (set ``champion``,
remove ``challenger``); when the second fails, the first is undone before the rows roll back, and a
promotion that stopped between the registry and the commit is finished by running it again. A rollback
is the exception: it commits its rows first, because they alone stop the canary's traffic, and a
registry outage must not keep a breaching version serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException
from sqlalchemy import Connection, Engine

from adfame.contracts import CHALLENGER_ALIAS, CHAMPION_ALIAS, served_version_label
from adfame.repositories.deployments import (
    Deployment,
    DeploymentEvent,
    insert_deployment,
    latest_deployment,
    live_deployment,
    lock_rollout,
    update_deployment,
)
from adfame.settings import Settings
from monitoring.alerts import record_alert

log = logging.getLogger(__name__)
T = TypeVar("T")
UNNAMED_ACTOR = "unnamed"  # recorded when a caller does not say who it is (the CLI says "cli", the DAG "dag")


class RolloutError(RuntimeError):
    """A rollout action that cannot be done as asked; the message says why and what to do instead."""


class NoChallenger(RolloutError):
    """No version carries alias ``challenger`` and none was named."""


class UnknownVersion(RolloutError):
    """The registered model or the named version does not exist in the registry."""


class WeightOutOfRange(RolloutError):
    """A traffic weight outside 0..100."""


class NoLiveCanary(RolloutError):
    """The action needs a live canary and there is none."""


class CanaryInProgress(RolloutError):
    """Another version's canary is live; it must be promoted or rolled back first."""


class AlreadyChampion(RolloutError):
    """The version asked for is the champion already."""


class AliasMismatch(RolloutError):
    """The registry's ``challenger`` alias names another version than the live canary."""


class MissingReason(RolloutError):
    """A rollback names no reason."""


class RegistryFailed(RolloutError):
    """MLflow failed during an action; the message says what state the registry and the rows are in."""


@dataclass(frozen=True)
class CanaryState:
    """A model's rollout as operators see it.

    ``champion`` and ``challenger``: the versions behind the aliases (from the registry in ``canary_status``
    and after the actions that take a client; from the deployments rows after ``set_weight``). ``weight``:
    the live canary's share of traffic (0 without one). ``state``, ``reason``, ``updated_at`` and
    ``version``: the most recently changed deployment (``none`` when the model never had one).
    """

    model_name: str
    champion: str | None
    challenger: str | None
    weight: int
    state: str
    reason: str | None
    updated_at: datetime | None
    version: str | None = None


def check_weight(weight: int) -> int:
    """The weight, when it is a whole percentage."""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise WeightOutOfRange(f"a traffic weight is a whole percentage within 0..100, got {weight!r}")
    return weight


def _registry(what: str, call: Callable[[], T]) -> T:
    """Run a registry call; its failure becomes a RegistryFailed naming ``what`` was being done."""
    try:
        return call()
    except (MlflowException, OSError) as exc:  # OSError: the HTTP client's connection errors
        raise RegistryFailed(f"MLflow could not {what}: {exc}") from exc


def registry_aliases(client: Any, model_name: str) -> dict[str, str]:
    """Alias -> version of the registered model, in one call; UnknownVersion when it is not registered."""
    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise UnknownVersion(f"no registered model {model_name!r} in MLflow") from exc
        raise RegistryFailed(f"MLflow could not read the aliases of {model_name}: {exc}") from exc
    except OSError as exc:
        raise RegistryFailed(f"MLflow could not read the aliases of {model_name}: {exc}") from exc
    return {alias: str(version) for alias, version in model.aliases.items()}


def _check_registered(client: Any, model_name: str, version: str) -> None:
    try:
        client.get_model_version(model_name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise UnknownVersion(f"{model_name} has no version {version!r} in MLflow") from exc
        raise RegistryFailed(f"MLflow could not read {model_name} version {version}: {exc}") from exc
    except OSError as exc:
        raise RegistryFailed(f"MLflow could not read {model_name} version {version}: {exc}") from exc


def _state(model_name: str, champion: str | None, challenger: str | None, conn: Connection) -> CanaryState:
    canary = live_deployment(conn, model_name, CHALLENGER_ALIAS)
    latest = canary or latest_deployment(conn, model_name)
    if latest is None:
        return CanaryState(model_name, champion, challenger, 0, "none", None, None)
    return CanaryState(
        model_name,
        champion,
        challenger,
        canary.traffic_weight if canary else 0,
        latest.state,
        latest.reason,
        latest.updated_at,
        latest.model_version,
    )


def canary_status(settings: Settings, engine: Engine, client: Any) -> CanaryState:
    """The registry's champion and challenger, the live canary's weight and the last deployment's state."""
    name = settings.registered_model
    aliases = registry_aliases(client, name)
    with engine.connect() as conn:
        return _state(name, aliases.get(CHAMPION_ALIAS), aliases.get(CHALLENGER_ALIAS), conn)


def _sync_champion_row(conn: Connection, name: str, champion: str | None, weight: int, actor: str) -> None:
    """Make the live ``champion`` row name the registry's champion with ``weight`` % of traffic.

    Its first row is written when a first canary starts; an alias moved by hand outside a rollout
    retires the row that named the old version.
    """
    row = live_deployment(conn, name, CHAMPION_ALIAS)
    if row is not None and row.model_version != champion:
        moved = f"alias champion now names version {champion}" if champion else "alias champion was removed"
        update_deployment(conn, row.id, weight=0, state="retired", reason=moved, actor=actor)
        row = None
    if champion is None:
        return
    if row is None:
        reason = "the champion when a canary started"
        insert_deployment(
            conn, name, champion, CHAMPION_ALIAS, weight=weight, state="promoted", reason=reason, actor=actor
        )
    elif row.traffic_weight != weight:
        update_deployment(conn, row.id, weight=weight, state="promoted", reason=row.reason, actor=actor)


def _challenger_version(client: Any, name: str, version: str | None, aliases: dict[str, str]) -> str:
    """The version a canary starts on: the one named, or the one alias ``challenger`` names."""
    if version is None:
        if CHALLENGER_ALIAS not in aliases:
            raise NoChallenger(
                f"no version of {name} carries alias {CHALLENGER_ALIAS}: set it in MLflow or name a version"
            )
        return aliases[CHALLENGER_ALIAS]
    _check_registered(client, name, version)
    return version


def start_canary(
    settings: Settings,
    engine: Engine,
    client: Any,
    version: str | None = None,
    weight: int | None = None,
    *,
    actor: str = UNNAMED_ACTOR,
) -> CanaryState:
    """Start a canary of ``version`` (default: the one alias ``challenger`` names) at ``weight`` % (default:
    the first of ``canary_steps``); a named version gets the alias.

    Starting the canary that is already live changes nothing (a retried DAG task, a webhook and the asset
    schedule may all start the same one). A live canary of a version that lost the alias to a newer one is
    retired as superseded; one that still holds it must be promoted or rolled back first.
    """
    name = settings.registered_model
    weight = check_weight(settings.canary_steps[0] if weight is None else weight)
    aliases = registry_aliases(client, name)
    version = _challenger_version(client, name, version, aliases)
    if aliases.get(CHAMPION_ALIAS) == version:
        raise AlreadyChampion(f"{name} version {version} is the champion already")
    with engine.begin() as conn:
        lock_rollout(conn, name)
        live = live_deployment(conn, name, CHALLENGER_ALIAS)
        if live is not None and live.model_version == version:
            return _state(name, aliases.get(CHAMPION_ALIAS), version, conn)
        if live is not None:
            _retire_superseded(conn, live, version, aliases, actor)
        _sync_champion_row(conn, name, aliases.get(CHAMPION_ALIAS), 100 - weight, actor)
        reason = f"canary started at {weight} %"
        insert_deployment(
            conn, name, version, CHALLENGER_ALIAS, weight=weight, state="canary", reason=reason, actor=actor
        )
        if aliases.get(CHALLENGER_ALIAS) != version:
            _registry(
                f"set alias {CHALLENGER_ALIAS} on {name} version {version}",
                lambda: client.set_registered_model_alias(name, CHALLENGER_ALIAS, version),
            )
    log.info("%s: canary of version %s started at %d %% (%s)", name, version, weight, actor)
    return canary_status(settings, engine, client)


def _retire_superseded(
    conn: Connection, live: Deployment, version: str, aliases: dict[str, str], actor: str
) -> None:
    """Retire a live canary whose version no longer carries alias challenger; refuse while it does."""
    if aliases.get(CHALLENGER_ALIAS) == live.model_version:
        raise CanaryInProgress(
            f"version {live.model_version}'s canary of {live.model_name} is live at {live.traffic_weight} %:"
            f" promote it or roll it back before starting version {version}"
        )
    reason = f"superseded by version {version}"
    update_deployment(conn, live.id, weight=0, state="retired", reason=reason, actor=actor)


def _live_canary(conn: Connection, name: str) -> Deployment:
    canary = live_deployment(conn, name, CHALLENGER_ALIAS)
    if canary is None:
        latest = latest_deployment(conn, name)
        last = f" (the last deployment, version {latest.model_version}, is {latest.state})" if latest else ""
        raise NoLiveCanary(f"no live canary of {name}{last}")
    return canary


def set_weight(
    settings: Settings, engine: Engine, weight: int, reason: str, *, actor: str = UNNAMED_ACTOR
) -> CanaryState:
    """Give the live canary ``weight`` % of traffic (and the champion the rest); workers follow at their
    next request, since they read the weight per request."""
    name = settings.registered_model
    check_weight(weight)
    with engine.begin() as conn:
        lock_rollout(conn, name)
        canary = _live_canary(conn, name)
        update_deployment(conn, canary.id, weight=weight, state="canary", reason=reason, actor=actor)
        champion = live_deployment(conn, name, CHAMPION_ALIAS)
        if champion is not None:
            _sync_champion_row(conn, name, champion.model_version, 100 - weight, actor)
        state = _state(name, champion.model_version if champion else None, canary.model_version, conn)
    log.info("%s: canary of version %s at %d %% (%s: %s)", name, canary.model_version, weight, actor, reason)
    return state


def _expect_promotable(aliases: dict[str, str], canary: Deployment) -> None:
    """The registry must still name the canary's version challenger, or (a promotion that stopped before
    its commit) already name it champion with no challenger left."""
    challenger, champion = aliases.get(CHALLENGER_ALIAS), aliases.get(CHAMPION_ALIAS)
    half_done = challenger is None and champion == canary.model_version
    if challenger != canary.model_version and not half_done:
        raise AliasMismatch(
            f"alias {CHALLENGER_ALIAS} of {canary.model_name} names version {challenger}, but the live canary"
            f" is version {canary.model_version}: roll the canary back, or start one on version {challenger}"
        )


def _set_alias(client: Any, name: str, alias: str, version: str | None) -> None:
    """Point ``alias`` at ``version``, or remove it for None."""
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, version)


def _move_champion(client: Any, name: str, version: str, aliases: dict[str, str]) -> None:
    """Alias champion to ``version`` and challenger removed; when the removal fails, the champion alias
    is restored, so the registry is left as it was or as it should be."""
    previous = aliases.get(CHAMPION_ALIAS)
    _registry(
        f"set alias {CHAMPION_ALIAS} on {name} version {version}; nothing changed",
        lambda: _set_alias(client, name, CHAMPION_ALIAS, version),
    )
    if aliases.get(CHALLENGER_ALIAS) != version:
        return  # a promotion run again after its registry step: the alias is gone already
    try:
        client.delete_registered_model_alias(name, CHALLENGER_ALIAS)
    except (MlflowException, OSError) as exc:
        _registry(
            f"restore alias {CHAMPION_ALIAS} to version {previous} after failing to remove alias"
            f" {CHALLENGER_ALIAS} ({exc}); alias {CHAMPION_ALIAS} names version {version} while the rows"
            " still record its canary: run the promotion again",
            lambda: _set_alias(client, name, CHAMPION_ALIAS, previous),
        )
        raise RegistryFailed(
            f"MLflow could not remove alias {CHALLENGER_ALIAS} of {name} ({exc}); alias {CHAMPION_ALIAS}"
            f" is back on version {previous}: nothing changed"
        ) from exc


def promote(
    settings: Settings, engine: Engine, client: Any, reason: str, *, actor: str = UNNAMED_ACTOR
) -> CanaryState:
    """Make the live canary's version the champion: in one step, alias ``champion`` moves to it, alias
    ``challenger`` is removed, its row becomes the live ``promoted`` champion row with all traffic, and
    the old champion's row is ``retired`` (its version stays registered)."""
    name = settings.registered_model
    with engine.begin() as conn:
        lock_rollout(conn, name)
        canary = _live_canary(conn, name)
        aliases = registry_aliases(client, name)
        _expect_promotable(aliases, canary)
        old = live_deployment(conn, name, CHAMPION_ALIAS)
        if old is not None:
            replaced = f"replaced by version {canary.model_version}: {reason}"
            update_deployment(conn, old.id, weight=0, state="retired", reason=replaced, actor=actor)
        update_deployment(
            conn, canary.id, weight=100, state="promoted", reason=reason, actor=actor, alias=CHAMPION_ALIAS
        )
        _move_champion(client, name, canary.model_version, aliases)
    log.info("%s: version %s promoted to champion (%s: %s)", name, canary.model_version, actor, reason)
    return canary_status(settings, engine, client)


def rollback(
    settings: Settings, engine: Engine, client: Any, reason: str, *, actor: str = UNNAMED_ACTOR
) -> CanaryState:
    """End the live canary: weight 0, state ``rolled_back`` with ``reason``, ``champion`` untouched and back
    to all traffic, a ``canary_rollback`` alert raised, and alias ``challenger`` removed when it still names
    the canary's version.

    Unlike a promotion, the rows commit before MLflow is asked: workers route by the rows, so the canary
    stops getting traffic even while the registry is down; a registry that then fails to drop the alias
    is reported (RegistryFailed) with the canary already rolled back.
    """
    if not reason or not reason.strip():
        raise MissingReason("a rollback needs a reason (what breached, or why a person stopped it)")
    name = settings.registered_model
    with engine.begin() as conn:
        lock_rollout(conn, name)
        canary = _live_canary(conn, name)
        update_deployment(conn, canary.id, weight=0, state="rolled_back", reason=reason, actor=actor)
        champion = live_deployment(conn, name, CHAMPION_ALIAS)
        if champion is not None:
            _sync_champion_row(conn, name, champion.model_version, 100, actor)
    version = canary.model_version
    log.warning("%s: canary of version %s rolled back (%s: %s)", name, version, actor, reason)
    record_alert(
        engine,
        "canary_rollback",
        served_version_label(name, version),
        f"canary of {name} version {version} rolled back at {canary.traffic_weight} %: {reason}",
        {"model": name, "version": version, "weight": canary.traffic_weight, "actor": actor},
        window_s=max(1, round(settings.canary_window_s)),
    )
    if registry_aliases(client, name).get(CHALLENGER_ALIAS) == version:
        _registry(
            f"remove alias {CHALLENGER_ALIAS} of {name} (the canary of version {version} is rolled back and"
            " gets no traffic; remove the alias in MLflow by hand)",
            lambda: client.delete_registered_model_alias(name, CHALLENGER_ALIAS),
        )
    return canary_status(settings, engine, client)


def format_state(state: CanaryState, events: Sequence[DeploymentEvent] = ()) -> str:
    """The state as a small table for a terminal, then the latest ``events``, oldest first."""
    updated = state.updated_at.strftime("%Y-%m-%d %H:%M:%S %Z") if state.updated_at else "-"
    rows = [
        ("model", state.model_name),
        (CHAMPION_ALIAS, state.champion or "- (the base model serves)"),
        (CHALLENGER_ALIAS, state.challenger or "-"),
        ("canary weight", f"{state.weight} %"),
        ("last deployment", f"version {state.version}: {state.state}" if state.version else state.state),
        ("reason", state.reason or "-"),
        ("updated", updated),
    ]
    lines = [f"{key:<16} {value}" for key, value in rows]
    if events:
        lines += [
            "",
            f"{'at':<20} {'version':<8} {'alias':<11} {'weight':>6}  {'state':<12} {'actor':<8} reason",
        ]
        lines += [
            f"{e.at:%Y-%m-%d %H:%M:%S} {e.model_version:<8} {e.alias:<11} {e.weight:>5} %  {e.state:<12}"
            f" {e.actor:<8} {e.reason or ''}"
            for e in events
        ]
    return "\n".join(lines)
