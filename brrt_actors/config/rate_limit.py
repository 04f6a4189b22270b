"""Rate limit settings: the config file's ``rate_limit`` section and the ``BRRTR_RATE_LIMIT*`` vars.

    rate_limit:
      limit: "100/minute"            # every operation (default: none; the spec's x-rate-limit)
      operations: {addPet: "10/minute", getPet: off}
      storage: "redis://redis:6379/0"  # default memory:// (one process)
      key: subject_then_ip           # or subject, ip (BRRTRouter's names)
      trusted_proxies: ["10.0.0.0/8"]  # X-Forwarded-For is read only from these
      max_keys: 10000                # memory storage: counters kept at most
      on_storage_error: open         # or closed (503)
      # BRRTRouter's shape loads as it is: enabled, requests, window_secs, routes, skip_options

An operation's limit, most specific first: ``BRRTR_RATE_LIMIT__<operationId>``, the spec's
``x-rate-limit``, ``rate_limit.operations`` (then BRRTRouter's ``routes``), ``BRRTR_RATE_LIMIT``,
``rate_limit.limit`` (then BRRTRouter's ``requests`` per ``window_secs``). The limit strings are
the `limits` library's notation (``"100/minute"``, ``"5 per 10 seconds"``); ``off`` (or
``false``) means no limit. Values are checked here, at start; `operation_limit` resolves one
operation's limit when its stage is built.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final

from brrt_actors.config.knobs import (
    Invalid,
    Knob,
    _choice,
    _integer,
    _switch,
    describe,
    env_value,
    parse_knob,
)
from brrt_actors.config.settings import (
    KEY_MODES,
    STORAGE_ERROR_POLICIES,
    STRATEGIES,
    RateLimitSettings,
    redact_url,
)
from brrt_actors.errors import Problem

__all__ = [
    "RATE_LIMIT_ENV",
    "RATE_LIMIT_EXTENSION",
    "RATE_LIMIT_KEYS",
    "check_limit",
    "operation_limit",
    "read_rate_limit",
    "unknown_operations",
]

RATE_LIMIT_ENV: Final = "BRRTR_RATE_LIMIT"
RATE_LIMIT_EXTENSION: Final = "x-rate-limit"
_STORAGE_SCHEMES: Final = ("memory", "redis", "rediss", "redis+unix")
_OFF: Final = frozenset({"off", "false", "no", "none", "0"})

# -- value checks: return the value or add a problem and return None -----------------------

def check_limit(value: object, where: str, problems: list[Problem]) -> tuple[bool, str | None]:
    """Return (valid, the limit string or None for ``off``); a bad value adds a problem."""
    if value is False or value is None or (isinstance(value, str)
                                           and value.strip().lower() in _OFF):
        return True, None
    if isinstance(value, str) and value.strip():
        from limits import parse_many  # NOTE: ~80 ms of imports, only when limits are given

        try:
            items = parse_many(value)
        except ValueError:
            items = []
        if len(items) == 1 and items[0].amount >= 1:
            return True, value.strip()
        if len(items) > 1:
            problems.append((where, f"{describe(value)}: one limit per operation, e.g. "
                                    "'100/minute'"))
            return False, None
    problems.append((where, f"{describe(value)} is not valid; expected a limit such as "
                            "'100/minute' or '5 per 10 seconds', or off"))
    return False, None




def _storage(value: object) -> str:
    if isinstance(value, str) and "://" in value:
        url = value.strip()
        if url.partition("://")[0].lower() in _STORAGE_SCHEMES:
            return url
    raise Invalid("memory:// or a Redis URL (redis://host:6379/0, rediss://..., "
                  "redis+unix:///path)")


def _networks(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise Invalid("a list of IP addresses or networks (10.0.0.0/8)")
    try:
        return tuple(str(ipaddress.ip_network(str(item).strip(), strict=False))
                     for item in items)
    except ValueError as ex:
        raise Invalid(f"a list of IP addresses or networks (10.0.0.0/8): {ex}") from ex


#: The settings other than the limits: config file key, variable, parser.
_PLAIN_KNOBS: Final = (
    Knob("enabled", f"{RATE_LIMIT_ENV}_ENABLED", _switch),
    Knob("storage", f"{RATE_LIMIT_ENV}_STORAGE", _storage),
    Knob("strategy", f"{RATE_LIMIT_ENV}_STRATEGY", _choice(*STRATEGIES)),
    Knob("key", f"{RATE_LIMIT_ENV}_KEY", _choice(*KEY_MODES)),
    Knob("trusted_proxies", f"{RATE_LIMIT_ENV}_TRUSTED_PROXIES", _networks),
    Knob("max_keys", f"{RATE_LIMIT_ENV}_MAX_KEYS", _integer(1)),
    Knob("on_storage_error", f"{RATE_LIMIT_ENV}_ON_STORAGE_ERROR",
         _choice(*STORAGE_ERROR_POLICIES)),
    Knob("storage_timeout_ms", f"{RATE_LIMIT_ENV}_STORAGE_TIMEOUT_MS", _integer(1)),
    Knob("storage_connections", f"{RATE_LIMIT_ENV}_STORAGE_CONNECTIONS", _integer(1)),
    Knob("skip_options", f"{RATE_LIMIT_ENV}_SKIP_OPTIONS", _switch),
)
_WINDOW: Final = Knob("window_secs", "", _integer(1))
_BRRTROUTER_KEYS: Final = frozenset({"requests", "window_secs", "routes"})
#: Every key of the ``rate_limit`` section.
RATE_LIMIT_KEYS: Final = frozenset({"limit", "operations", *_BRRTROUTER_KEYS,
                                    *(knob.name for knob in _PLAIN_KNOBS)})


# -- the section and the variables ---------------------------------------------------------

def _brrtrouter_values(section: Mapping[str, Any], where: str, problems: list[Problem],
                       notes: list[Problem]) -> tuple[str | None, dict[str, str | None]]:
    """BRRTRouter's ``requests`` per ``window_secs`` and ``routes`` as limit strings."""
    window = 60
    if "window_secs" in section:
        window = parse_knob(_WINDOW, section["window_secs"], f"{where}.window_secs",
                            problems) or 60
    default = None
    if "requests" in section:
        requests = parse_knob(_WINDOW, section["requests"], f"{where}.requests", problems)
        if requests is not None:
            default = f"{requests}/{window} seconds"
            if "limit" in section:
                notes.append((f"{where}.requests", "rate_limit.limit is also given and wins"))
    routes: dict[str, str | None] = {}
    raw_routes = section.get("routes")
    if raw_routes is not None and not isinstance(raw_routes, dict):
        problems.append((f"{where}.routes", "must be a mapping of operationId to requests"))
        raw_routes = None
    for operation_id, raw in (raw_routes or {}).items():
        requests = parse_knob(_WINDOW, raw, f"{where}.routes.{operation_id}", problems)
        if requests is not None:
            routes[str(operation_id)] = f"{requests}/{window} seconds"
    return default, routes


def _parse_plain(knob: Knob, value: object, where: str, problems: list[Problem]) -> Any:
    if knob.name != "storage":
        return parse_knob(knob, value, where, problems)
    try:
        return knob.parse(value)
    except Invalid as ex:
        # SECURITY: a Redis URL may hold a password; the problem shows it redacted.
        shown = describe(redact_url(value) if isinstance(value, str) else value)
        problems.append((where, f"{shown} is not valid; expected {ex}"))
        return None


def read_rate_limit(section: Mapping[str, Any], environ: Mapping[str, str], prefix: str,
                    problems: list[Problem], notes: list[Problem]) -> RateLimitSettings:
    """Return the settings of the config file's ``rate_limit`` `section` and the environment.

    The section's keys are checked by `brrt_actors.config.file` (`RATE_LIMIT_KEYS`).

    Args:
        prefix: what problems put before a config file key (``"<path>: "``).
        problems: gets every bad value.
        notes: gets what is accepted but changes nothing.
    """
    where = f"{prefix}rate_limit"
    values: dict[str, Any] = {}
    default, routes = _brrtrouter_values(section, where, problems, notes)
    if (_BRRTROUTER_KEYS & set(section)) and "enabled" not in section:
        # NOTE: BRRTRouter limits nothing without `enabled: true`; its config means the same here.
        values["enabled"] = False
        notes.append((where, "BRRTRouter's requests/window_secs/routes apply only with "
                             "enabled: true (as in BRRTRouter); rate limiting is off"))
    if "limit" in section:
        valid, limit = check_limit(section["limit"], f"{where}.limit", problems)
        if valid:
            default = limit
    operations: dict[str, str | None] = dict(routes)
    raw_operations = section.get("operations")
    if raw_operations is not None and not isinstance(raw_operations, dict):
        problems.append((f"{where}.operations", "must be a mapping of operationId to a limit"))
        raw_operations = None
    for operation_id, raw in (raw_operations or {}).items():
        valid, limit = check_limit(raw, f"{where}.operations.{operation_id}", problems)
        if valid:
            operations[str(operation_id)] = limit
    for knob in _PLAIN_KNOBS:
        if knob.name in section:
            parsed = _parse_plain(knob, section[knob.name], f"{where}.{knob.name}", problems)
            if parsed is not None:
                values[knob.name] = parsed

    # The environment wins over the file.
    raw_default = env_value(environ, RATE_LIMIT_ENV)
    if raw_default is not None:
        valid, limit = check_limit(raw_default, RATE_LIMIT_ENV, problems)
        if valid:
            default = limit
    for knob in _PLAIN_KNOBS:
        raw_value = env_value(environ, knob.env)
        if raw_value is not None:
            parsed = _parse_plain(knob, raw_value, knob.env, problems)
            if parsed is not None:
                values[knob.name] = parsed
    operation_env = {name: value for name, value in environ.items()
                     if name.startswith(f"{RATE_LIMIT_ENV}__") and value.strip()}
    for name, value in operation_env.items():
        check_limit(value, name, problems)
    return RateLimitSettings(limit=default, operations=operations, operation_env=operation_env,
                             where=where, **values)


def operation_limit(settings: RateLimitSettings, operation_id: str,
                    extensions: Mapping[str, Any], pointer: str,
                    problems: list[Problem]) -> str | None:
    """Return the limit of one operation (None: not limited), the most specific winning.

    Args:
        extensions: the operation's ``x-*`` keys (``x-rate-limit``).
        pointer: the operation's JSON pointer, for a bad ``x-rate-limit``.
    """
    if not settings.enabled:
        return None
    from brrt_actors.config.operations import env_suffix

    for name in dict.fromkeys((f"{RATE_LIMIT_ENV}__{operation_id}",
                               f"{RATE_LIMIT_ENV}__{env_suffix(operation_id)}")):
        if name in settings.operation_env:
            return check_limit(settings.operation_env[name], name, problems)[1]
    if RATE_LIMIT_EXTENSION in extensions:
        return check_limit(extensions[RATE_LIMIT_EXTENSION],
                           f"{pointer}/{RATE_LIMIT_EXTENSION}", problems)[1]
    if operation_id in settings.operations:
        return settings.operations[operation_id]
    return settings.limit


def unknown_operations(settings: RateLimitSettings, operation_ids: set[str]) -> list[Problem]:
    """Return a problem for every per-operation setting naming no operation."""
    from brrt_actors.config.operations import env_suffix

    known = operation_ids | {env_suffix(op) for op in operation_ids}
    problems = [(f"{settings.where}.operations.{op}", f"no operation has the operationId {op!r}")
                for op in settings.operations if op not in known]
    prefix = f"{RATE_LIMIT_ENV}__"
    problems += [(name, f"no operation has the operationId {name[len(prefix):]!r}")
                 for name in settings.operation_env if name[len(prefix):] not in known]
    return problems
