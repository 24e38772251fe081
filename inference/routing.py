"""Canary routing: which model alias serves a request (docs/architecture.md#canary-routing).

Deterministic per request, so a redelivered request goes to the same model. ``route_for`` is the rule;
``ModelRouter`` applies it to what the registry (which versions carry the aliases) and the
deployments table (the canary's traffic weight) say now.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine

from adfame.contracts import CHALLENGER_ALIAS, CHAMPION_ALIAS
from adfame.repositories.deployments import canary_weight
from adfame.settings import Settings

if TYPE_CHECKING:
    from inference.model import ModelVersionRef

log = logging.getLogger(__name__)
Route = Literal["champion", "challenger"]
ALIAS_REFRESH_S = 30.0
BASE_ROUTE = "base"


class RegistryUnavailable(RuntimeError):
    """The model registry could not be asked which versions carry the aliases."""


def bucket_of(request_id: uuid.UUID | str) -> int:
    """A stable number in [0, 100) for the request."""
    digest = hashlib.sha256(str(request_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def route_for(request_id: uuid.UUID | str, challenger_weight: int) -> Route:
    """``challenger`` for ``challenger_weight`` % of requests, else ``champion``."""
    if not 0 <= challenger_weight <= 100:
        raise ValueError(f"challenger weight must be within 0..100, got {challenger_weight}")
    return "challenger" if bucket_of(request_id) < challenger_weight else "champion"


class ModelRouter:
    """Picks the route and registry version of each request for one worker.

    The registry's answer is cached for ``ALIAS_REFRESH_S`` seconds: asking MLflow per request would
    add a round trip to every generation, and aliases move only on a rollout step.
    """

    def __init__(self, settings: Settings, engine: Engine, registry: Any = None) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry  # an MlflowClient, or None to serve the base model only
        self._aliases: dict[str, ModelVersionRef | None] | None = None  # None until the registry answered
        self._aliases_at = 0.0

    def aliases(self) -> dict[str, ModelVersionRef | None]:
        """The registry's champion and challenger versions, refreshed every ALIAS_REFRESH_S seconds.

        While the registry cannot be reached, the versions it named last keep serving.
        """
        from mlflow.exceptions import MlflowException

        from inference.model import resolve_alias

        if self.registry is None:
            return {}
        if self._aliases is None or time.monotonic() - self._aliases_at > ALIAS_REFRESH_S:
            try:
                self._aliases = {
                    alias: resolve_alias(self.registry, alias, self.settings.registered_model)
                    for alias in (CHAMPION_ALIAS, CHALLENGER_ALIAS)
                }
            except (MlflowException, OSError) as exc:  # OSError: the HTTP client's connection errors
                if self._aliases is None:
                    raise RegistryUnavailable(f"model registry unreachable: {exc}") from exc
                log.warning("model registry unreachable (%s): serving the versions it named last", exc)
            self._aliases_at = time.monotonic()
        return self._aliases

    def choose(self, request_id: uuid.UUID) -> tuple[str, ModelVersionRef | None]:
        """The request's route and the version serving it: ``base`` and None when no version has the alias."""
        versions = self.aliases()
        route: str = CHAMPION_ALIAS
        if versions.get(CHALLENGER_ALIAS) is not None:  # only a canary has a weight to ask PostgreSQL for
            weight = canary_weight(self.engine, self.settings.registered_model, CHALLENGER_ALIAS)
            route = route_for(request_id, weight)
        version = versions.get(route)
        return (route if version is not None else BASE_ROUTE), version
