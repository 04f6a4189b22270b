"""`load_settings`: defaults < config file < environment < command line, checked at start."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brrt_actors.config.file import read_config_file
from brrt_actors.config.knobs import (
    ACTOR_KNOBS,
    NO_STACK,
    PER_OPERATION_PREFIXES,
    RESPONSES_KNOB,
    SERVER_KNOB_BY_NAME,
    SERVER_KNOBS,
    STACK_SIZE_ENV,
    env_value,
    parse_knob,
    per_operation_knob,
)
from brrt_actors.config.settings import ActorSettings, Settings
from brrt_actors.errors import ConfigError, Problem

__all__ = ["load_settings"]


def load_settings(environ: Mapping[str, str], config_file: str | None = None, *,
                  host: str | None = None, port: int | None = None,
                  workers: int | None = None) -> Settings:
    """Read the config file and the environment into checked `Settings`.

    Environment variables override the config file; `host`, `port` and `workers` (the
    command line's ``--host``, ``--port`` and ``--workers``) override both.

    Raises:
        ConfigError: every malformed or out-of-range value, unknown config file key,
            unreadable config file, listed together.
    """
    problems: list[Problem] = []
    notes: list[Problem] = []
    file = read_config_file(config_file, problems)

    # Server settings: file (BRRTRouter's http section below server), then env, then CLI.
    values: dict[str, Any] = file.server_values(problems, notes)
    for knob in (*SERVER_KNOBS, RESPONSES_KNOB):
        raw = env_value(environ, knob.env)
        if raw is not None:
            parsed = parse_knob(knob, raw, knob.env, problems)
            if parsed is not None:
                values[knob.name] = parsed
    for name, given in (("host", host), ("port", port), ("workers", workers)):
        if given is not None:
            parsed = parse_knob(SERVER_KNOB_BY_NAME[name], given, f"--{name}", problems)
            if parsed is not None:
                values[name] = parsed

    # Actor defaults: built-in < actors.defaults < global env.
    defaults = file.actor_defaults(problems)
    for knob in ACTOR_KNOBS:
        raw = env_value(environ, knob.env)
        if raw is not None:
            parsed = parse_knob(knob, raw, knob.env, problems)
            if parsed is not None:
                defaults[knob.name] = parsed
    per_operation = file.actor_operations(problems)

    # Per-operation variables: check their values now, match them to operations later.
    operation_env = {name: value for name, value in environ.items()
                     if name.startswith(PER_OPERATION_PREFIXES)}
    for name, value in operation_env.items():
        env_knob = per_operation_knob(name)
        if env_knob is not None and value.strip():
            parse_knob(env_knob, value, name, problems)

    if env_value(environ, STACK_SIZE_ENV) is not None:
        notes.append((STACK_SIZE_ENV, NO_STACK))

    if problems:
        raise ConfigError(problems)
    return Settings(
        **values,
        actor_defaults=ActorSettings(**defaults),
        actor_operations=per_operation,
        operation_env=operation_env,
        security=file.sections["security"],
        config_file=config_file,
        file=file.data,
        notes=tuple(notes),
    )
