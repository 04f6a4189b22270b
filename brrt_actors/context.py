"""What the stage builders of one app share: the app's own compiled state, nothing global.

A `BuildContext` is made for each app being built and handed to every stage builder
(`brrt_actors.stages`). It holds that app's validators, security providers, metrics,
settings, handlers and actors; once the app is built the context is dropped, and what the
stages kept of it belongs to the app alone. Two apps in one process, or the old and the new
version during a reload, share nothing compiled.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from brrt_actors.actor_system import ActorSystem
from brrt_actors.spec.effective import RUNTIME_STATUSES
from brrt_actors.validation import ValidatorCache

if TYPE_CHECKING:
    from brrt_actors.actors import Handler
    from brrt_actors.config import ActorSettings, Settings
    from brrt_actors.metrics.figures import Metrics
    from brrt_actors.security import SecurityProvider
    from brrt_actors.stages.cors import AppCors

__all__ = ["BuildContext"]

T = TypeVar("T")


@dataclass(eq=False)
class BuildContext:
    """The state one app's stage builders read and fill.

    Attributes:
        settings: the app's settings.
        handlers: the handler of each operation, by operationId.
        actor_settings: each operation's actor settings, by operationId.
        providers: the security provider of each scheme the operations use.
        metrics: the app's figures, or None when metrics are off.
        validators: the app's compiled validators (one per distinct schema).
        actors: the app's actors; the actor stage builder adds one per operation.
        runtime_statuses: the statuses the runtime answers by itself (never a spec breach).
        cors: the app's compiled CORS (None when off); each operation's CORS builder records
            its policy there, for the preflights the app answers.
        on_stop: what the app releases when it stops, in order (a stage builder adds what it
            made for the whole app: the rate limit counters, the span exporter).
    """

    settings: Settings
    handlers: Mapping[str, Handler]
    actor_settings: Mapping[str, ActorSettings]
    providers: Mapping[str, SecurityProvider] = field(default_factory=dict)
    metrics: Metrics | None = None
    validators: ValidatorCache = field(default_factory=ValidatorCache)
    actors: ActorSystem = field(default_factory=ActorSystem)
    runtime_statuses: frozenset[int] = RUNTIME_STATUSES
    cors: AppCors | None = None
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    _memo: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    def memo(self, key: Hashable, make: Callable[[], T]) -> T:
        """Return what `make` built for `key` in this app, building it on first use."""
        try:
            found: T = self._memo[key]
        except KeyError:
            found = self._memo[key] = make()
        return found
