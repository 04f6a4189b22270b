"""`load_settings`: defaults < config file < environment < command line, checked at start."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brrt_actors.config.compression import read_compression_settings
from brrt_actors.config.cors import read_cors_settings
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
from brrt_actors.config.rate_limit import read_rate_limit
from brrt_actors.config.settings import ActorSettings, Settings
from brrt_actors.errors import ConfigError, Problem

__all__ = ["load_settings"]

#: The OpenTelemetry variables that turn span export on (when the `otel` extra is installed).
OTEL_SWITCHES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_TRACES_EXPORTER")


def load_settings(environ: Mapping[str, str], config_file: str | None = None, *,
                  host: str | None = None, port: int | None = None,
                  workers: int | None = None, static_dir: str | None = None) -> Settings:
    """Read the config file and the environment into checked `Settings`.

    Environment variables override the config file; `host`, `port`, `workers` and
    `static_dir` (the command line's ``--host``, ``--port``, ``--workers`` and
    ``--static-dir``) override both.

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
    for name, given in (("host", host), ("port", port), ("workers", workers),
                        ("static_dir", static_dir)):
        if given is not None:
            parsed = parse_knob(SERVER_KNOB_BY_NAME[name], given,
                                f"--{name.replace('_', '-')}", problems)
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
    cors = read_cors_settings(file.sections["cors"], environ, file.prefix, problems)
    compression = read_compression_settings(file.sections["compression"], environ,
                                            file.prefix, problems)
    rate_limit = read_rate_limit(file.sections["rate_limit"], environ, file.prefix, problems,
                                 notes)
    otel = {name: value for name in OTEL_SWITCHES if (value := env_value(environ, name))}

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
        cors=cors,
        compression=compression,
        rate_limit=rate_limit,
        otel=otel,
        security=file.sections["security"],
        config_file=config_file,
        file=file.data,
        notes=tuple(notes),
    )
