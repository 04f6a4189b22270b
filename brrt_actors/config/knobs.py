"""Knobs: one setting's name, environment variable and value parser, and the tables of them.

A parser returns the parsed value or raises `Invalid` saying what is allowed; `parse_knob`
turns that into a problem naming where the value came from (variable, config file key,
spec pointer or command-line flag).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from brrt_actors.config.settings import HTTP_ENGINES, POLICIES, RESPONSE_VALIDATION_MODES
from brrt_actors.errors import Problem

__all__ = [
    "ACTOR_KNOBS",
    "ACTOR_KNOB_BY_NAME",
    "MAX_HANDLER_WORKERS",
    "NO_STACK",
    "PER_OPERATION_PREFIXES",
    "RESPONSES_KNOB",
    "SERVER_KNOBS",
    "SERVER_KNOB_BY_NAME",
    "STACK_SIZE_ENV",
    "Invalid",
    "Knob",
    "Parser",
    "describe",
    "env_value",
    "parse_knob",
    "per_operation_knob",
]

STACK_SIZE_ENV: Final = "BRRTR_STACK_SIZE"
NO_STACK: Final = "accepted but has no effect: greenlets have no fixed stack size"


# -- value parsers: return the parsed value or raise Invalid with what is allowed ----------

class Invalid(ValueError):
    """A value a parser refuses; the message says what is allowed."""


Parser = Callable[[object], Any]

_INT = re.compile(r"\s*[+-]?\d+\s*\Z")


def _integer(minimum: int, maximum: int | None = None) -> Parser:
    allowed = (f"an integer from {minimum} to {maximum}" if maximum is not None
               else f"an integer >= {minimum}")

    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise Invalid(allowed)
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and _INT.match(value):
            number = int(value)
        else:
            raise Invalid(allowed)
        if number < minimum or (maximum is not None and number > maximum):
            raise Invalid(allowed)
        return number

    return parse


def _number(minimum: float, maximum: float = math.inf, allowed: str | None = None) -> Parser:
    allowed = allowed or f"a number >= {minimum:g} (seconds)"

    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise Invalid(allowed)
        try:
            number = float(value)
        except ValueError as ex:
            raise Invalid(allowed) from ex
        if not math.isfinite(number) or not minimum <= number <= maximum:
            raise Invalid(allowed)
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
        raise Invalid(allowed)

    return parse


_SWITCH_WORDS: Final = {"on": True, "true": True, "1": True, "yes": True,
                        "off": False, "false": False, "0": False, "no": False}


def _switch(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _SWITCH_WORDS:
        return _SWITCH_WORDS[value.strip().lower()]
    raise Invalid("on or off (or true/false, 1/0, yes/no)")


#: The on/off parser, for the sections read by other modules (`brrt_actors.config.cors`).
parse_switch: Final = _switch


_fraction: Final = _number(0.0, 1.0, "a number from 0 to 1 (0.1: one request in ten)")


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("a non-empty string")
    return value.strip()


_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+\Z")


def _url_prefix(value: object) -> str:
    allowed = ("a URL path such as /static: '/' then segments of letters, digits and "
               "-._~ (no '.' or '..' segment, no %-escapes)")
    if not isinstance(value, str) or not value.strip().startswith("/"):
        raise Invalid(allowed)
    segments = value.strip().strip("/").split("/")
    if segments == [""]:
        return "/"
    if any(s in (".", "..") or not _PATH_SEGMENT.match(s) for s in segments):
        raise Invalid(allowed)
    return "/" + "/".join(segments)


# -- the knobs -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Knob:
    """One setting: its attribute and config file key, its variable, its parser."""

    name: str  # attribute and config file key
    env: str  # environment variable
    parse: Parser


#: Worker greenlets one operation may have. Past a few hundred, more greenlets in one process
#: only wait on each other: more processes (``--workers``) serve more.
MAX_HANDLER_WORKERS: Final = 1000

ACTOR_KNOBS: Final = (
    Knob("workers", "BRRTR_HANDLER_WORKERS", _integer(1, MAX_HANDLER_WORKERS)),
    Knob("mailbox", "BRRTR_HANDLER_QUEUE_BOUND", _integer(1)),
    Knob("policy", "BRRTR_BACKPRESSURE_MODE", _choice(*POLICIES)),
    Knob("block_timeout_ms", "BRRTR_BACKPRESSURE_TIMEOUT_MS", _integer(0)),
    Knob("deadline_ms", "BRRTR_HANDLER_DEADLINE_MS", _integer(0)),
    Knob("retry_after_s", "BRRTR_RETRY_AFTER_S", _integer(0)),
)
ACTOR_KNOB_BY_NAME: Final = {knob.name: knob for knob in ACTOR_KNOBS}

# The config file's `server:` section, one key per knob.
SERVER_KNOBS: Final = (
    Knob("host", "BRRTR_HOST", _text),
    Knob("port", "PORT", _integer(0, 65535)),
    Knob("max_connections", "BRRTR_MAX_CONNECTIONS", _integer(1)),
    Knob("keepalive_timeout_s", "BRRTR_KEEPALIVE_TIMEOUT_S", _number(0)),
    Knob("max_body_bytes", "BRRTR_MAX_BODY_BYTES", _integer(0)),
    Knob("shutdown_grace_s", "BRRTR_SHUTDOWN_GRACE_S", _number(0)),
    Knob("metrics", "BRRTR_METRICS", _switch),
    Knob("http_engine", "BRRTR_HTTP_ENGINE", _choice(*HTTP_ENGINES)),
    Knob("max_blocking_ms", "BRRTR_MAX_BLOCKING_MS", _integer(0)),
    Knob("gc_threshold", "BRRTR_GC_THRESHOLD", _integer(0, 10_000_000)),
    Knob("workers", "BRRTR_WORKERS", _integer(1)),
    Knob("static_dir", "BRRTR_STATIC_DIR", _text),
    Knob("static_prefix", "BRRTR_STATIC_PREFIX", _url_prefix),
    Knob("static_chunk_bytes", "BRRTR_STATIC_CHUNK_BYTES", _integer(1024, 16 * 1024 * 1024)),
    Knob("access_log", "BRRTR_ACCESS_LOG", _switch),
    Knob("access_log_sample", "BRRTR_ACCESS_LOG_SAMPLE", _fraction),
    Knob("tracing", "BRRTR_TRACING", _switch),
    Knob("sse_heartbeat_s", "BRRTR_SSE_HEARTBEAT_S", _number(0.1)),
    Knob("sse_max_streams", "BRRTR_SSE_MAX_STREAMS", _integer(1)),
    Knob("sse_buffer_events", "BRRTR_SSE_BUFFER_EVENTS", _integer(1, 100000)),
)
SERVER_KNOB_BY_NAME: Final = {knob.name: knob for knob in SERVER_KNOBS}

RESPONSES_KNOB: Final = Knob(
    "response_validation", "BRRTR_RESPONSE_VALIDATION",
    _choice(*RESPONSE_VALIDATION_MODES, booleans={False: "off", True: "enforce"}))

# Per-operation variables: <global name>__<operationId>.
PER_OPERATION_PREFIXES: Final = (*(f"{knob.env}__" for knob in ACTOR_KNOBS),
                                 f"{STACK_SIZE_ENV}__")


def per_operation_knob(name: str) -> Knob | None:
    """Return the actor knob of the per-operation variable `name`, if it is one."""
    for knob in ACTOR_KNOBS:
        if name.startswith(f"{knob.env}__"):
            return knob
    return None


def describe(value: object) -> str:
    """Return `value` as shown in a problem: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_knob(knob: Knob, value: object, where: str, problems: list[Problem]) -> Any:
    """Return `value` parsed by `knob`, or None after adding a problem naming `where`."""
    try:
        return knob.parse(value)
    except Invalid as ex:
        problems.append((where, f"{describe(value)} is not valid; expected {ex}"))
        return None


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    """Return the variable `name`, or None when unset or blank."""
    # NOTE: an empty variable counts as unset (`PORT= brrt serve ...`, compose files).
    value = environ.get(name)
    return value if value is not None and value.strip() else None
