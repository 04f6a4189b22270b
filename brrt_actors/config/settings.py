"""The settings dataclasses: what `load_settings` returns and what an actor runs with."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from brrt_actors.engine import ENGINES
from brrt_actors.errors import Problem

__all__ = ["HTTP_ENGINES", "POLICIES", "RESPONSE_VALIDATION_MODES", "ActorPlan",
           "ActorSettings", "Settings"]

POLICIES: Final = ("block", "shed")
RESPONSE_VALIDATION_MODES: Final = ("enforce", "log", "off")
#: The HTTP engines `Settings.http_engine` may name; the first is the default.
HTTP_ENGINES: Final = ENGINES


@dataclass(frozen=True, slots=True)
class ActorSettings:
    """How one operation's actor runs (see DESIGN.md, "Actors").

    Attributes:
        workers: worker greenlets running the handler at once.
        mailbox: envelopes waiting for a worker before the actor answers 503.
        policy: ``"block"`` (wait up to `block_timeout_ms` for room) or ``"shed"`` (503 at once).
        block_timeout_ms: how long ``block`` waits for room in the mailbox.
        deadline_ms: reply deadline; past it the caller gets 504 and the handler is
            cancelled. 0 means none.
        retry_after_s: the ``Retry-After`` seconds sent with the actor's 503 answers.
    """

    workers: int = 4
    mailbox: int = 1024
    policy: str = "block"
    block_timeout_ms: int = 50
    deadline_ms: int = 30000
    retry_after_s: int = 1


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the runtime reads from the config file, the environment and the CLI.

    Attributes:
        host, port: the listen address (``port`` 0 picks a free port).
        max_connections: connection greenlets at once.
        keepalive_timeout_s: an idle keep-alive connection is closed after this.
        max_body_bytes: request bodies above this get 413.
        response_validation: ``"enforce"`` (500 on a bad response), ``"log"`` or ``"off"``.
        shutdown_grace_s: how long a stop waits for requests in flight and mailboxes.
        metrics: serve Prometheus metrics at /metrics and count per request (``BRRTR_METRICS``,
            ``server.metrics``; on by default).
        http_engine: the HTTP engine, ``"httptools"`` (default) or ``"pywsgi"``
            (``BRRTR_HTTP_ENGINE``, ``server.http_engine``).
        workers: server processes; above 1, gunicorn's arbiter runs that many
            (``--workers``, ``BRRTR_WORKERS``, ``server.workers``; default 1). Not to be
            confused with an actor's worker greenlets (`ActorSettings.workers`).
        actor_defaults: actor tuning before per-operation overrides (built-in defaults <
            config file ``actors.defaults`` < global env).
        actor_operations: the config file's ``actors.operations``, checked and parsed,
            by operationId (only the keys it gives).
        operation_env: the per-operation environment variables found
            (``BRRTR_HANDLER_WORKERS__get_pet`` ...), name to raw value.
        security: the config file's ``security`` section, as written.
        config_file: the config file read, if any.
        file: the whole config file as read ({} without one).
        notes: settings accepted but without effect here, as (where, message).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    max_connections: int = 10000
    keepalive_timeout_s: float = 5.0
    max_body_bytes: int = 16 * 1024 * 1024
    response_validation: str = "enforce"
    shutdown_grace_s: float = 10.0
    metrics: bool = True
    http_engine: str = HTTP_ENGINES[0]
    workers: int = 1
    actor_defaults: ActorSettings = field(default_factory=ActorSettings)
    actor_operations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    operation_env: Mapping[str, str] = field(default_factory=dict)
    security: Mapping[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    file: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class ActorPlan:
    """Actor tuning for every operation of a spec, and what was accepted without effect."""

    per_operation: Mapping[str, ActorSettings]
    notes: tuple[Problem, ...] = ()
