"""Settings: defaults < config file < environment < command line, and per-operation actor tuning.

`load_settings` reads the YAML config file and the environment once, at start, and checks
every value; all problems found are raised together in one `ConfigError` that names each
variable (or config file key, or command-line flag) and the values it allows.

Actor tuning is resolved per operation, most specific first: the spec's `x-brrt-actor`, then
the per-operation env vars, the config file's `actors.operations`, the global env vars, the
config file's `actors.defaults`, the built-in defaults (see `operations`).

The modules, one concept each: `settings` (the dataclasses), `knobs` (each setting's
variable and value parser), `file` (the YAML config file), `load` (`load_settings`),
`operations` (per-operation actor tuning), `compression` (the ``compression:`` section).
"""
from __future__ import annotations

from brrt_actors.config.load import load_settings
from brrt_actors.config.operations import (
    actor_settings_for,
    check_operation_env,
    env_suffix,
    resolve_actor_settings,
)
from brrt_actors.config.settings import (
    HTTP_ENGINES,
    POLICIES,
    RESPONSE_VALIDATION_MODES,
    ActorPlan,
    ActorSettings,
    Settings,
)

__all__ = [
    "HTTP_ENGINES",
    "POLICIES",
    "RESPONSE_VALIDATION_MODES",
    "ActorPlan",
    "ActorSettings",
    "Settings",
    "actor_settings_for",
    "check_operation_env",
    "env_suffix",
    "load_settings",
    "resolve_actor_settings",
]
