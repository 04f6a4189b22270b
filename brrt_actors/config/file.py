"""The YAML config file (``--config``): read it, check its sections and keys, parse values.

Sections: ``server`` (one key per server knob), ``actors`` (``defaults`` and
``operations``), ``validation`` (``responses``), ``security`` (kept as written for the
security stage), ``cors`` (BRRTRouter's keys, read by `brrt_actors.config.cors`),
``rate_limit`` (read by `brrt_actors.config.rate_limit`), ``compression`` (BRRTRouter's
keys and more, read by `brrt_actors.config.compression`), and
BRRTRouter's ``http`` (so that its config.yaml loads; what it means here is taken, the rest
noted as without effect).
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml

from brrt_actors.config.compression import COMPRESSION_KEYS
from brrt_actors.config.cors import CORS_KEYS
from brrt_actors.config.knobs import (
    ACTOR_KNOB_BY_NAME,
    RESPONSES_KNOB,
    SERVER_KNOB_BY_NAME,
    SERVER_KNOBS,
    describe,
    parse_knob,
)
from brrt_actors.config.rate_limit import RATE_LIMIT_KEYS
from brrt_actors.errors import Problem

__all__ = ["FILE_SECTIONS", "ConfigFile", "read_config_file"]

FILE_SECTIONS: Final = {
    "server": frozenset(knob.name for knob in SERVER_KNOBS),
    "actors": frozenset({"defaults", "operations"}),
    "validation": frozenset({"responses"}),
    "security": None,  # kept as written for the security stage
    # BRRTRouter's sections, so that its config.yaml loads: `http` (see
    # _brrtrouter_sections) and `cors` (its keys, see brrt_actors.config.cors).
    "http": None,
    "cors": frozenset(CORS_KEYS),
    "rate_limit": RATE_LIMIT_KEYS,  # read by brrt_actors.config.rate_limit
    "compression": frozenset(COMPRESSION_KEYS),  # read by brrt_actors.config.compression
}
_ACTOR_KEYS: Final = frozenset(ACTOR_KNOB_BY_NAME)
_NO_EFFECT = "accepted but has no effect here"


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """The config file as read, its sections checked to be mappings.

    Attributes:
        data: the whole file ({} without one, or when it cannot be read).
        sections: every section of `FILE_SECTIONS`, {} when absent.
        prefix: what problems put before a key (``"<path>: "``, or "" without a file).
    """

    data: dict[str, Any]
    sections: dict[str, dict[str, Any]]
    prefix: str

    def server_values(self, problems: list[Problem], notes: list[Problem]) -> dict[str, Any]:
        """Return the server settings and ``response_validation`` the file gives, parsed.

        BRRTRouter's ``http:`` section comes first, so that ``server:`` wins over it.
        """
        values: dict[str, Any] = {}
        self._brrtrouter_sections(values, problems, notes)
        server = self.sections["server"]
        for knob in SERVER_KNOBS:
            if knob.name in server:
                parsed = parse_knob(knob, server[knob.name],
                                    f"{self.prefix}server.{knob.name}", problems)
                if parsed is not None:
                    values[knob.name] = parsed
        validation = self.sections["validation"]
        if "responses" in validation:
            parsed = parse_knob(RESPONSES_KNOB, validation["responses"],
                                f"{self.prefix}validation.responses", problems)
            if parsed is not None:
                values[RESPONSES_KNOB.name] = parsed
        return values

    def actor_defaults(self, problems: list[Problem]) -> dict[str, Any]:
        """Return ``actors.defaults``, parsed (only the keys it gives)."""
        where = f"{self.prefix}actors.defaults"
        return _actor_values(_mapping(self.sections["actors"].get("defaults"), where,
                                      problems), where, problems)

    def actor_operations(self, problems: list[Problem]) -> dict[str, Mapping[str, Any]]:
        """Return ``actors.operations``, parsed, by operationId."""
        operations = _mapping(self.sections["actors"].get("operations"),
                              f"{self.prefix}actors.operations", problems)
        per_operation: dict[str, Mapping[str, Any]] = {}
        for operation_id, raw_values in operations.items():
            where = f"{self.prefix}actors.operations.{operation_id}"
            per_operation[str(operation_id)] = _actor_values(
                _mapping(raw_values, where, problems), where, problems)
        return per_operation

    def _brrtrouter_sections(self, values: dict[str, Any], problems: list[Problem],
                             notes: list[Problem]) -> None:
        """Take what BRRTRouter's `http:` section means here; note the rest."""
        keepalive = SERVER_KNOB_BY_NAME["keepalive_timeout_s"]
        prefix = self.prefix
        for key, raw in self.sections["http"].items():
            where = f"{prefix}http.{key}"
            if key == "timeout_secs":
                parsed = parse_knob(keepalive, raw, where, problems)
                if parsed is not None:
                    values[keepalive.name] = parsed
                    if keepalive.name in self.sections["server"]:
                        notes.append((where, "server.keepalive_timeout_s is also given and "
                                             "wins"))
            elif key == "keep_alive":
                if not isinstance(raw, bool):
                    problems.append((where, f"{describe(raw)} is not valid; expected true or "
                                            "false"))
                elif not raw:
                    notes.append((where, f"{_NO_EFFECT}: connections are always kept alive; "
                                         "an idle one is closed after "
                                         "server.keepalive_timeout_s"))
            elif key == "max_requests":
                notes.append((where, f"{_NO_EFFECT}: a connection serves any number of "
                                     "requests"))
            else:
                notes.append((where, f"{_NO_EFFECT} (not a BRRTRouter http setting "
                                     "brrt_actors knows)"))


def read_config_file(path: str | None, problems: list[Problem]) -> ConfigFile:
    """Read the config file at `path` (none: an empty one) and check its keys.

    Adds to `problems` an unreadable file, bad YAML, unknown keys, sections that are not
    mappings; what can be read is returned all the same.
    """
    data = _read(path, problems) if path else {}
    prefix = f"{path}: " if path else ""
    for key in data:
        if key not in FILE_SECTIONS:
            problems.append((f"{prefix}{key}", "unknown key; allowed: "
                             + ", ".join(sorted(FILE_SECTIONS))))
    sections = {name: _mapping(data.get(name), f"{prefix}{name}", problems)
                for name in FILE_SECTIONS}
    for name, allowed in FILE_SECTIONS.items():
        if allowed is not None:
            _unknown_keys(sections[name], allowed, f"{prefix}{name}", problems)
    return ConfigFile(data, sections, prefix)


def _read(path: str, problems: list[Problem]) -> dict[str, Any]:
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


def _actor_values(data: Mapping[str, Any], where: str,
                  problems: list[Problem]) -> dict[str, Any]:
    _unknown_keys(data, _ACTOR_KEYS, where, problems)
    values: dict[str, Any] = {}
    for key, raw in data.items():
        knob = ACTOR_KNOB_BY_NAME.get(key)
        if knob is not None:
            parsed = parse_knob(knob, raw, f"{where}.{key}", problems)
            if parsed is not None:
                values[key] = parsed
    return values
