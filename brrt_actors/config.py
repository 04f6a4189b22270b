"""Settings: defaults < config file < environment < command line, and per-operation actor tuning.

`load_settings` reads the YAML config file and the environment once, at start, and checks
every value; all problems found are raised together in one `ConfigError` that names each
variable (or config file key) and the values it allows.

Actor tuning is resolved per operation, most specific first::

    x-brrt-actor on the operation             (spec; x-brrtrouter-deadline-ms just below it)
    BRRTR_HANDLER_WORKERS__<operationId> ...  (env; suffix as written or upper-cased)
    actors.operations.<operationId>           (config file)
    BRRTR_HANDLER_WORKERS ...                 (env, global)
    actors.defaults                           (config file)
    ActorSettings()                           (built-in defaults)
"""
from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import yaml

from .errors import ConfigError, Problem

if TYPE_CHECKING:
    from .spec.model import Operation

__all__ = [
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

logger = logging.getLogger("brrt_actors.config")

POLICIES: Final = ("block", "shed")
RESPONSE_VALIDATION_MODES: Final = ("enforce", "log", "off")

ACTOR_EXTENSION: Final = "x-brrt-actor"
BRRTR_DEADLINE_EXTENSION: Final = "x-brrtrouter-deadline-ms"
BRRTR_STACK_EXTENSION: Final = "x-brrtrouter-stack-size"
STACK_SIZE_ENV: Final = "BRRTR_STACK_SIZE"
_NO_STACK = "accepted but has no effect: greenlets have no fixed stack size"


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


# -- value parsers: return the parsed value or raise _Invalid with what is allowed ---------

class _Invalid(ValueError):
    pass


Parser = Callable[[object], Any]

_INT = re.compile(r"\s*[+-]?\d+\s*\Z")


def _integer(minimum: int, maximum: int | None = None) -> Parser:
    allowed = (f"an integer from {minimum} to {maximum}" if maximum is not None
               else f"an integer >= {minimum}")

    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise _Invalid(allowed)
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and _INT.match(value):
            number = int(value)
        else:
            raise _Invalid(allowed)
        if number < minimum or (maximum is not None and number > maximum):
            raise _Invalid(allowed)
        return number

    return parse


def _number(minimum: float) -> Parser:
    allowed = f"a number >= {minimum:g} (seconds)"

    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _Invalid(allowed)
        try:
            number = float(value)
        except ValueError as ex:
            raise _Invalid(allowed) from ex
        if not math.isfinite(number) or number < minimum:
            raise _Invalid(allowed)
        return number

    return parse


def _choice(*choices: str, booleans: Mapping[bool, str] | None = None) -> Parser:
    allowed = "one of " + ", ".join(choices)

    def parse(value: object) -> str:
        # NOTE: YAML 1.1 reads a bare `off` as False; accept it as the word it was.
        if isinstance(value, bool) and booleans is not None:
            return booleans[value]
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise _Invalid(allowed)

    return parse


_SWITCH_WORDS: Final = {"on": True, "true": True, "1": True, "yes": True,
                        "off": False, "false": False, "0": False, "no": False}


def _switch(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _SWITCH_WORDS:
        return _SWITCH_WORDS[value.strip().lower()]
    raise _Invalid("on or off (or true/false, 1/0, yes/no)")


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("a non-empty string")
    return value.strip()


@dataclass(frozen=True, slots=True)
class _Knob:
    name: str  # attribute and config file key
    env: str  # environment variable
    parse: Parser


_ACTOR_KNOBS: Final = (
    _Knob("workers", "BRRTR_HANDLER_WORKERS", _integer(1)),
    _Knob("mailbox", "BRRTR_HANDLER_QUEUE_BOUND", _integer(1)),
    _Knob("policy", "BRRTR_BACKPRESSURE_MODE", _choice(*POLICIES)),
    _Knob("block_timeout_ms", "BRRTR_BACKPRESSURE_TIMEOUT_MS", _integer(0)),
    _Knob("deadline_ms", "BRRTR_HANDLER_DEADLINE_MS", _integer(0)),
    _Knob("retry_after_s", "BRRTR_RETRY_AFTER_S", _integer(0)),
)
_ACTOR_KNOB_BY_NAME: Final = {knob.name: knob for knob in _ACTOR_KNOBS}

_SERVER_KNOBS: Final = (
    _Knob("host", "BRRTR_HOST", _text),
    _Knob("port", "PORT", _integer(0, 65535)),
    _Knob("max_connections", "BRRTR_MAX_CONNECTIONS", _integer(1)),
    _Knob("keepalive_timeout_s", "BRRTR_KEEPALIVE_TIMEOUT_S", _number(0)),
    _Knob("max_body_bytes", "BRRTR_MAX_BODY_BYTES", _integer(0)),
    _Knob("shutdown_grace_s", "BRRTR_SHUTDOWN_GRACE_S", _number(0)),
    _Knob("metrics", "BRRTR_METRICS", _switch),
)
_RESPONSES_KNOB: Final = _Knob(
    "response_validation", "BRRTR_RESPONSE_VALIDATION",
    _choice(*RESPONSE_VALIDATION_MODES, booleans={False: "off", True: "enforce"}))

# Per-operation variables: <global name>__<operationId>.
_PER_OPERATION_PREFIXES: Final = (*(f"{knob.env}__" for knob in _ACTOR_KNOBS),
                                  f"{STACK_SIZE_ENV}__")

_FILE_SECTIONS: Final = {
    "server": frozenset(knob.name for knob in _SERVER_KNOBS),
    "actors": frozenset({"defaults", "operations"}),
    "validation": frozenset({"responses"}),
    "security": None,  # kept as written for the security stage
    # BRRTRouter's sections, so that its config.yaml loads (see _brrtrouter_sections).
    "http": None,
    "cors": None,
}
_ACTOR_KEYS: Final = frozenset(_ACTOR_KNOB_BY_NAME)


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse(knob: _Knob, value: object, where: str, problems: list[Problem]) -> Any:
    try:
        return knob.parse(value)
    except _Invalid as ex:
        problems.append((where, f"{_describe(value)} is not valid; expected {ex}"))
        return None


def _env_value(environ: Mapping[str, str], name: str) -> str | None:
    # NOTE: an empty variable counts as unset (`PORT= brrt serve ...`, compose files).
    value = environ.get(name)
    return value if value is not None and value.strip() else None


# -- the config file -----------------------------------------------------------------------

def _read_file(path: str, problems: list[Problem]) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except OSError as ex:
        problems.append((path, f"cannot read the config file: {ex.strerror or ex}"))
        return {}
    except yaml.YAMLError as ex:
        problems.append((path, f"not valid YAML: {ex}"))
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append((path, "the config file must hold a mapping (server, actors, "
                               "validation, security)"))
        return {}
    return data


def _mapping(value: object, where: str, problems: list[Problem]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append((where, "must be a mapping"))
        return {}
    return value


def _unknown_keys(data: Mapping[str, Any], allowed: Collection[str], where: str,
                  problems: list[Problem]) -> None:
    for key in data:
        if key not in allowed:
            problems.append((f"{where}.{key}" if where else str(key),
                             f"unknown key; allowed: {', '.join(sorted(allowed))}"))


def _file_actor_values(data: Mapping[str, Any], where: str,
                       problems: list[Problem]) -> dict[str, Any]:
    _unknown_keys(data, _ACTOR_KEYS, where, problems)
    values: dict[str, Any] = {}
    for key, raw in data.items():
        knob = _ACTOR_KNOB_BY_NAME.get(key)
        if knob is not None:
            parsed = _parse(knob, raw, f"{where}.{key}", problems)
            if parsed is not None:
                values[key] = parsed
    return values


_NO_EFFECT = "accepted but has no effect here"


def _brrtrouter_sections(data: Mapping[str, Any], sections: Mapping[str, dict[str, Any]],
                         prefix: str, values: dict[str, Any], problems: list[Problem],
                         notes: list[Problem]) -> None:
    """Take what BRRTRouter's `http:` and `cors:` sections mean here; note the rest."""
    keepalive = _SERVER_KNOBS[3]
    for key, raw in sections["http"].items():
        where = f"{prefix}http.{key}"
        if key == "timeout_secs":
            parsed = _parse(keepalive, raw, where, problems)
            if parsed is not None:
                values[keepalive.name] = parsed
                if keepalive.name in sections["server"]:
                    notes.append((where, "server.keepalive_timeout_s is also given and wins"))
        elif key == "keep_alive":
            if not isinstance(raw, bool):
                problems.append((where, f"{_describe(raw)} is not valid; expected true or "
                                        "false"))
            elif not raw:
                notes.append((where, f"{_NO_EFFECT}: connections are always kept alive; an "
                                     "idle one is closed after server.keepalive_timeout_s"))
        elif key == "max_requests":
            notes.append((where, f"{_NO_EFFECT}: a connection serves any number of "
                                 "requests"))
        else:
            notes.append((where, f"{_NO_EFFECT} (not a BRRTRouter http setting brrt_actors "
                                 "knows)"))
    if "cors" in data:
        notes.append((f"{prefix}cors", f"{_NO_EFFECT} yet: CORS support comes in a later "
                                       "version"))


# -- load_settings -------------------------------------------------------------------------

def load_settings(environ: Mapping[str, str], config_file: str | None = None, *,
                  host: str | None = None, port: int | None = None) -> Settings:
    """Read the config file and the environment into checked `Settings`.

    Environment variables override the config file; `host` and `port` (the command
    line) override both.

    Raises:
        ConfigError: every malformed or out-of-range value, unknown config file key,
            unreadable config file, listed together.
    """
    problems: list[Problem] = []
    data = _read_file(config_file, problems) if config_file else {}
    prefix = f"{config_file}: " if config_file else ""
    for key in data:
        if key not in _FILE_SECTIONS:
            problems.append((f"{prefix}{key}", "unknown key; allowed: "
                             + ", ".join(sorted(_FILE_SECTIONS))))
    sections = {name: _mapping(data.get(name), f"{prefix}{name}", problems)
                for name in _FILE_SECTIONS}
    for name, allowed in _FILE_SECTIONS.items():
        if allowed is not None:
            _unknown_keys(sections[name], allowed, f"{prefix}{name}", problems)

    # Server settings: file (BRRTRouter's http section below server), then env, then CLI.
    values: dict[str, Any] = {}
    notes: list[Problem] = []
    _brrtrouter_sections(data, sections, prefix, values, problems, notes)
    for knob in _SERVER_KNOBS:
        if knob.name in sections["server"]:
            parsed = _parse(knob, sections["server"][knob.name],
                            f"{prefix}server.{knob.name}", problems)
            if parsed is not None:
                values[knob.name] = parsed
    if "responses" in sections["validation"]:
        parsed = _parse(_RESPONSES_KNOB, sections["validation"]["responses"],
                        f"{prefix}validation.responses", problems)
        if parsed is not None:
            values[_RESPONSES_KNOB.name] = parsed
    for knob in (*_SERVER_KNOBS, _RESPONSES_KNOB):
        raw = _env_value(environ, knob.env)
        if raw is not None:
            parsed = _parse(knob, raw, knob.env, problems)
            if parsed is not None:
                values[knob.name] = parsed
    if host is not None:
        parsed = _parse(_SERVER_KNOBS[0], host, "--host", problems)
        if parsed is not None:
            values["host"] = parsed
    if port is not None:
        parsed = _parse(_SERVER_KNOBS[1], port, "--port", problems)
        if parsed is not None:
            values["port"] = parsed

    # Actor defaults: built-in < actors.defaults < global env.
    actors = sections["actors"]
    defaults = _file_actor_values(_mapping(actors.get("defaults"), f"{prefix}actors.defaults",
                                           problems), f"{prefix}actors.defaults", problems)
    for knob in _ACTOR_KNOBS:
        raw = _env_value(environ, knob.env)
        if raw is not None:
            parsed = _parse(knob, raw, knob.env, problems)
            if parsed is not None:
                defaults[knob.name] = parsed
    per_operation: dict[str, Mapping[str, Any]] = {}
    operations = _mapping(actors.get("operations"), f"{prefix}actors.operations", problems)
    for operation_id, raw_values in operations.items():
        where = f"{prefix}actors.operations.{operation_id}"
        per_operation[str(operation_id)] = _file_actor_values(
            _mapping(raw_values, where, problems), where, problems)

    # Per-operation variables: check their values now, match them to operations later.
    operation_env = {name: value for name, value in environ.items()
                     if name.startswith(_PER_OPERATION_PREFIXES)}
    for name, value in operation_env.items():
        env_knob = _per_operation_knob(name)
        if env_knob is not None and value.strip():
            _parse(env_knob, value, name, problems)

    if _env_value(environ, STACK_SIZE_ENV) is not None:
        notes.append((STACK_SIZE_ENV, _NO_STACK))

    if problems:
        raise ConfigError(problems)
    return Settings(
        **values,
        actor_defaults=ActorSettings(**defaults),
        actor_operations=per_operation,
        operation_env=operation_env,
        security=sections["security"],
        config_file=config_file,
        file=data,
        notes=tuple(notes),
    )


# -- per-operation resolution --------------------------------------------------------------

def env_suffix(operation_id: str) -> str:
    """Return the upper-cased variable suffix for `operation_id` (``get_pet`` -> ``GET_PET``).

    Characters a shell cannot put in a variable name become ``_`` (``get-pet`` -> ``GET_PET``).
    """
    return re.sub(r"[^0-9A-Za-z_]", "_", operation_id).upper()


def _per_operation_knob(name: str) -> _Knob | None:
    for knob in _ACTOR_KNOBS:
        if name.startswith(f"{knob.env}__"):
            return knob
    return None


def _operation_env(environ: Mapping[str, str], base: str, operation_id: str,
                   problems: list[Problem]) -> tuple[str, str] | None:
    """Find `<base>__<operationId>` (as written, or upper-cased): (name, raw value)."""
    exact = f"{base}__{operation_id}"
    upper = f"{base}__{env_suffix(operation_id)}"
    found = [(name, value) for name in dict.fromkeys((exact, upper))
             if (value := _env_value(environ, name)) is not None]
    if len(found) == 2 and found[0][1].strip() != found[1][1].strip():
        problems.append((exact, f"both {exact} and {upper} are set, to different values; "
                                "keep one"))
    return found[0] if found else None


def _spec_actor_values(operation: Operation, problems: list[Problem],
                       notes: list[Problem]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    extensions = operation.extensions
    if BRRTR_DEADLINE_EXTENSION in extensions:
        parsed = _parse(_ACTOR_KNOB_BY_NAME["deadline_ms"], extensions[BRRTR_DEADLINE_EXTENSION],
                        f"{operation.pointer}/{BRRTR_DEADLINE_EXTENSION}", problems)
        if parsed is not None:
            values["deadline_ms"] = parsed
    if BRRTR_STACK_EXTENSION in extensions:
        notes.append((f"{operation.pointer}/{BRRTR_STACK_EXTENSION}", _NO_STACK))
    if ACTOR_EXTENSION in extensions:
        where = f"{operation.pointer}/{ACTOR_EXTENSION}"
        tuning = extensions[ACTOR_EXTENSION]
        if not isinstance(tuning, dict):
            problems.append((where, "must be a mapping of " + ", ".join(_ACTOR_KNOB_BY_NAME)))
            return values
        for key, raw in tuning.items():
            knob = _ACTOR_KNOB_BY_NAME.get(key)
            pointer = f"{where}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if knob is None:
                problems.append((pointer, "unknown key; allowed: "
                                 + ", ".join(sorted(_ACTOR_KNOB_BY_NAME))))
                continue
            parsed = _parse(knob, raw, pointer, problems)
            if parsed is not None:
                values[key] = parsed
    return values


def _resolve(settings: Settings, operation: Operation, environ: Mapping[str, str],
             problems: list[Problem], notes: list[Problem]) -> ActorSettings:
    operation_id = operation.operation_id
    values: dict[str, Any] = dict(settings.actor_operations.get(operation_id, {}))
    for knob in _ACTOR_KNOBS:
        found = _operation_env(environ, knob.env, operation_id, problems)
        if found is not None:
            parsed = _parse(knob, found[1], found[0], problems)
            if parsed is not None:
                values[knob.name] = parsed
    stack = _operation_env(environ, STACK_SIZE_ENV, operation_id, problems)
    if stack is not None:
        notes.append((stack[0], _NO_STACK))
    values.update(_spec_actor_values(operation, problems, notes))
    return replace(settings.actor_defaults, **values)


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
    names = [name for name in environ if name.startswith(_PER_OPERATION_PREFIXES)]
    problems = _unknown_operation_problems(names, _PER_OPERATION_PREFIXES, operation_ids,
                                           lambda name: name)
    if settings is not None:
        prefix = f"{settings.config_file}: " if settings.config_file else ""
        problems += _unknown_operation_problems(
            settings.actor_operations, (), operation_ids,
            lambda name: f"{prefix}actors.operations.{name}")
    if problems:
        raise ConfigError(problems)
    if _env_value(environ, STACK_SIZE_ENV) is not None:
        _report([(STACK_SIZE_ENV, _NO_STACK)], notes)


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
    per_operation = {op.operation_id: _resolve(settings, op, env, problems, notes)
                     for op in operations}
    if problems:
        raise ConfigError(problems)
    return ActorPlan(per_operation, tuple(dict.fromkeys(notes)))
