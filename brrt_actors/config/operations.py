"""Per-operation actor tuning: which settings apply to one operation, most specific first.

    BRRTR_HANDLER_WORKERS__<operationId> ...  (env; suffix as written or upper-cased)
    x-brrt-actor on the operation             (spec; x-brrtrouter-deadline-ms just below it)
    actors.operations.<operationId>           (config file)
    BRRTR_HANDLER_WORKERS ...                 (env, global)
    actors.defaults                           (config file)
    ActorSettings()                           (built-in defaults)

The spec is the designer's default; a per-operation variable is the operator's decision at
deploy time, so it wins (and the start log says so, `ActorPlan.overrides`). The last three are
already merged by `load_settings` (`Settings.actor_defaults`, `Settings.actor_operations`);
this module adds the per-operation ones, and tells where each value came from
(`ActorPlan.sources`, shown by ``brrt routes``).

An operation served at a probe path (`PROBE_PATHS`: the spec's own /health or /ready) is not
shed like the rest: unless its own settings say otherwise, it waits for room in its mailbox
(policy ``block``) for as long as its deadline, whatever the global defaults say.
"""
from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from brrt_actors.config.knobs import (
    ACTOR_KNOB_BY_NAME,
    ACTOR_KNOBS,
    NO_STACK,
    PER_OPERATION_PREFIXES,
    STACK_SIZE_ENV,
    env_value,
    parse_knob,
)
from brrt_actors.config.settings import ActorPlan, ActorSettings, Settings
from brrt_actors.errors import ConfigError, Problem

if TYPE_CHECKING:
    from brrt_actors.spec.model import Operation

__all__ = ["PROBE_PATHS", "actor_settings_for", "check_operation_env", "env_suffix",
           "resolve_actor_settings"]

# NOTE: the package's name, as before the split, so that log filters keep working.
logger = logging.getLogger("brrt_actors.config")

ACTOR_EXTENSION: Final = "x-brrt-actor"
#: Paths where an operation answers liveness or readiness probes (those of the built-ins).
PROBE_PATHS: Final = frozenset({"/health", "/ready"})
BRRTR_DEADLINE_EXTENSION: Final = "x-brrtrouter-deadline-ms"
BRRTR_STACK_EXTENSION: Final = "x-brrtrouter-stack-size"


def env_suffix(operation_id: str) -> str:
    """Return the upper-cased variable suffix for `operation_id` (``get_pet`` -> ``GET_PET``).

    Characters a shell cannot put in a variable name become ``_`` (``get-pet`` -> ``GET_PET``).
    """
    return re.sub(r"[^0-9A-Za-z_]", "_", operation_id).upper()


def _operation_env(environ: Mapping[str, str], base: str, operation_id: str,
                   problems: list[Problem]) -> tuple[str, str] | None:
    """Find `<base>__<operationId>` (as written, or upper-cased): (name, raw value)."""
    exact = f"{base}__{operation_id}"
    upper = f"{base}__{env_suffix(operation_id)}"
    found = [(name, value) for name in dict.fromkeys((exact, upper))
             if (value := env_value(environ, name)) is not None]
    if len(found) == 2 and found[0][1].strip() != found[1][1].strip():
        problems.append((exact, f"both {exact} and {upper} are set, to different values; "
                                "keep one"))
    return found[0] if found else None


def _spec_actor_values(operation: Operation, problems: list[Problem],
                       notes: list[Problem]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    extensions = operation.extensions
    if BRRTR_DEADLINE_EXTENSION in extensions:
        parsed = parse_knob(ACTOR_KNOB_BY_NAME["deadline_ms"],
                            extensions[BRRTR_DEADLINE_EXTENSION],
                            f"{operation.pointer}/{BRRTR_DEADLINE_EXTENSION}", problems)
        if parsed is not None:
            values["deadline_ms"] = parsed
    if BRRTR_STACK_EXTENSION in extensions:
        notes.append((f"{operation.pointer}/{BRRTR_STACK_EXTENSION}", NO_STACK))
    if ACTOR_EXTENSION in extensions:
        where = f"{operation.pointer}/{ACTOR_EXTENSION}"
        tuning = extensions[ACTOR_EXTENSION]
        if not isinstance(tuning, dict):
            problems.append((where, "must be a mapping of " + ", ".join(ACTOR_KNOB_BY_NAME)))
            return values
        for key, raw in tuning.items():
            knob = ACTOR_KNOB_BY_NAME.get(key)
            pointer = f"{where}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if knob is None:
                problems.append((pointer, "unknown key; allowed: "
                                 + ", ".join(sorted(ACTOR_KNOB_BY_NAME))))
                continue
            parsed = parse_knob(knob, raw, pointer, problems)
            if parsed is not None:
                values[key] = parsed
    return values


def _default_sources(settings: Settings) -> dict[str, str]:
    """Where each value of `Settings.actor_defaults` came from."""
    actors = settings.file.get("actors")
    file_defaults = actors.get("defaults") if isinstance(actors, dict) else None
    builtin = ActorSettings()
    sources: dict[str, str] = {}
    for knob in ACTOR_KNOBS:
        value = getattr(settings.actor_defaults, knob.name)
        if (isinstance(file_defaults, dict) and knob.name in file_defaults
                and parse_knob(knob, file_defaults[knob.name], "", []) == value):
            sources[knob.name] = "config file actors.defaults"
        elif value != getattr(builtin, knob.name):
            sources[knob.name] = f"env {knob.env}"
        else:
            sources[knob.name] = "default"
    return sources


def _resolve(settings: Settings, operation: Operation, environ: Mapping[str, str],
             problems: list[Problem], notes: list[Problem],
             sources: dict[str, str] | None = None,
             overrides: list[Problem] | None = None) -> ActorSettings:
    operation_id = operation.operation_id
    if sources is not None:
        sources.update(_default_sources(settings))
    values: dict[str, Any] = dict(settings.actor_operations.get(operation_id, {}))
    if sources is not None:
        sources.update(dict.fromkeys(values, f"config file actors.operations.{operation_id}"))
    env_values: dict[str, tuple[str, str, Any]] = {}  # knob -> (variable, raw, parsed)
    for knob in ACTOR_KNOBS:
        found = _operation_env(environ, knob.env, operation_id, problems)
        if found is not None:
            parsed = parse_knob(knob, found[1], found[0], problems)
            if parsed is not None:
                env_values[knob.name] = (found[0], found[1].strip(), parsed)
    stack = _operation_env(environ, STACK_SIZE_ENV, operation_id, problems)
    if stack is not None:
        notes.append((stack[0], NO_STACK))
    spec_values = _spec_actor_values(operation, problems, notes)
    values.update(spec_values)
    if sources is not None:
        tuning = operation.extensions.get(ACTOR_EXTENSION)
        for key in spec_values:
            extension = (ACTOR_EXTENSION if isinstance(tuning, dict) and key in tuning
                         else BRRTR_DEADLINE_EXTENSION)
            sources[key] = f"spec {operation.pointer}/{extension}"
    for key, (variable, raw, parsed) in env_values.items():
        if key in spec_values and overrides is not None:
            overrides.append((variable, f"{raw} overrides the spec's {spec_values[key]} for "
                                        f"{key} of {operation_id!r} (the operator's "
                                        "variable wins over x-brrt-actor)"))
        values[key] = parsed
        if sources is not None:
            sources[key] = f"env {variable}"
    resolved = replace(settings.actor_defaults, **values)
    if operation.path in PROBE_PATHS:
        # NOTE: a probe answered 503 because its mailbox is full gets a busy but healthy
        # process restarted (liveness) or taken out of rotation (readiness): it waits for room
        # instead, up to its deadline, unless the operation's own settings say otherwise.
        if "policy" not in values:
            resolved = replace(resolved, policy="block")
            if sources is not None:
                sources["policy"] = "probe path"
        if "block_timeout_ms" not in values:
            resolved = replace(resolved, block_timeout_ms=resolved.deadline_ms
                               or ActorSettings().deadline_ms)
            if sources is not None:
                sources["block_timeout_ms"] = "probe path"
    return resolved


def actor_settings_for(settings: Settings, operation: Operation,
                       environ: Mapping[str, str] | None = None, *,
                       notes: list[Problem] | None = None) -> ActorSettings:
    """Return the actor tuning of `operation`, the most specific setting winning.

    Args:
        settings: from `load_settings`.
        operation: the operation (its ``x-brrt-actor`` / ``x-brrtrouter-*`` extensions).
        environ: where per-operation variables are read (default: those `load_settings`
            found).
        notes: collects settings accepted without effect (stack sizes); without it they
            are logged as warnings.

    Raises:
        ConfigError: a bad per-operation variable or spec extension value (all listed).
    """
    problems: list[Problem] = []
    found: list[Problem] = []
    resolved = _resolve(settings, operation,
                        settings.operation_env if environ is None else environ, problems, found)
    if problems:
        raise ConfigError(problems)
    _report(found, notes)
    return resolved


def _report(found: Iterable[Problem], notes: list[Problem] | None) -> None:
    if notes is not None:
        notes.extend(found)
        return
    for where, message in found:
        logger.warning("%s: %s", where, message)


def _unknown_operation_problems(names: Iterable[str], prefixes: Iterable[str],
                                operation_ids: Collection[str],
                                where: Callable[[str], str]) -> list[Problem]:
    known = set(operation_ids) | {env_suffix(op) for op in operation_ids}
    problems: list[Problem] = []
    for name in names:
        suffix = next((name[len(p):] for p in prefixes if name.startswith(p)), name)
        if suffix in known:
            continue
        hint = difflib.get_close_matches(suffix, sorted(known), n=1)
        problems.append((where(name), f"no operation has the operationId {suffix!r}"
                         + (f"; did you mean {hint[0]!r}?" if hint else "")))
    return problems


def check_operation_env(environ: Mapping[str, str], operation_ids: Collection[str], *,
                        settings: Settings | None = None,
                        notes: list[Problem] | None = None) -> None:
    """Check that every per-operation setting names an existing operation.

    Looks at ``BRRTR_HANDLER_WORKERS__<operationId>`` and its siblings in `environ`, and at
    the config file's ``actors.operations`` when `settings` is given. Reports a global
    ``BRRTR_STACK_SIZE`` as having no effect (into `notes`, else as a logged warning).

    Raises:
        ConfigError: every variable or config key naming an unknown operationId.
    """
    names = [name for name in environ if name.startswith(PER_OPERATION_PREFIXES)]
    problems = _unknown_operation_problems(names, PER_OPERATION_PREFIXES, operation_ids,
                                           lambda name: name)
    if settings is not None:
        prefix = f"{settings.config_file}: " if settings.config_file else ""
        problems += _unknown_operation_problems(
            settings.actor_operations, (), operation_ids,
            lambda name: f"{prefix}actors.operations.{name}")
    if problems:
        raise ConfigError(problems)
    if env_value(environ, STACK_SIZE_ENV) is not None:
        _report([(STACK_SIZE_ENV, NO_STACK)], notes)


def resolve_actor_settings(settings: Settings, operations: Iterable[Operation],
                           environ: Mapping[str, str] | None = None) -> ActorPlan:
    """Resolve the actor tuning of every operation at once, listing all problems together.

    Does what `check_operation_env` and `actor_settings_for` do for each operation, but
    returns the notes (settings accepted without effect) instead of logging them.

    Raises:
        ConfigError: every bad value and every setting naming an unknown operationId.
    """
    env = settings.operation_env if environ is None else environ
    operations = list(operations)
    ids = [op.operation_id for op in operations]
    problems: list[Problem] = []
    notes: list[Problem] = list(settings.notes) if environ is None else []
    try:
        check_operation_env(env, ids, settings=settings, notes=notes)
    except ConfigError as ex:
        problems.extend(ex.problems)
    sources: dict[str, dict[str, str]] = {}
    overrides: list[Problem] = []
    per_operation = {
        op.operation_id: _resolve(settings, op, env, problems, notes,
                                  sources.setdefault(op.operation_id, {}), overrides)
        for op in operations}
    if problems:
        raise ConfigError(problems)
    return ActorPlan(per_operation, tuple(dict.fromkeys(notes)), sources, tuple(overrides))
