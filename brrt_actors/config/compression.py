"""Compression settings: the config file's ``compression:`` section and ``BRRTR_COMPRESSION*``.

    compression:
      enabled: true          # default false (BRRTRouter's keys: enabled, min_bytes, level)
      min_bytes: 256         # bodies shorter than this go out as they are
      level: 6               # gzip, 1 (fast) to 9 (small)
      brotli_quality: 4      # br, 0 to 11 (with the `brotli` extra installed)
      encodings: [br, gzip]  # offered, the server's preference first

Each key may come from the config file or its variable (the variable wins). ``br`` is
offered only when the ``brotli`` package is installed; listing it without the package stops
the start with a message naming the key.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any, Final

from brrt_actors.config.knobs import Invalid, Knob, _integer, _switch, env_value, parse_knob
from brrt_actors.config.settings import COMPRESSION_ENCODINGS, CompressionSettings
from brrt_actors.errors import Problem

__all__ = ["COMPRESSION_KEYS", "COMPRESSION_KNOBS", "brotli_installed",
           "read_compression_settings"]


def _encodings(value: object) -> tuple[str, ...]:
    allowed = f"a list of content codings from {', '.join(COMPRESSION_ENCODINGS)}"
    if isinstance(value, str):
        items = [item.strip().lower() for item in value.split(",") if item.strip()]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip().lower() for item in value if item.strip()]
    else:
        raise Invalid(allowed)
    if not items or any(item not in COMPRESSION_ENCODINGS for item in items):
        raise Invalid(allowed)
    return tuple(dict.fromkeys(items))


#: The ``compression:`` keys, each with its environment variable and parser.
COMPRESSION_KNOBS: Final = (
    Knob("enabled", "BRRTR_COMPRESSION", _switch),
    Knob("min_bytes", "BRRTR_COMPRESSION_MIN_BYTES", _integer(0)),
    Knob("level", "BRRTR_COMPRESSION_LEVEL", _integer(0, 9)),
    Knob("brotli_quality", "BRRTR_COMPRESSION_BROTLI_QUALITY", _integer(0, 11)),
    Knob("encodings", "BRRTR_COMPRESSION_ENCODINGS", _encodings),
)
COMPRESSION_KEYS: Final = {knob.name: knob.env for knob in COMPRESSION_KNOBS}


def brotli_installed() -> bool:
    """Tell whether the optional ``brotli`` package can be imported."""
    return importlib.util.find_spec("brotli") is not None


def read_compression_settings(section: Mapping[str, Any], environ: Mapping[str, str],
                              prefix: str, problems: list[Problem]) -> CompressionSettings:
    """Return the compression settings of the config file's `section`, the variables winning.

    Args:
        section: the config file's ``compression:`` mapping ({} without one); its keys were
            checked.
        environ: where ``BRRTR_COMPRESSION*`` are read.
        prefix: what problems put before a config file key (``"<path>: "``).
        problems: collects every bad value, and ``br`` listed without the brotli package.
    """
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for knob in COMPRESSION_KNOBS:
        sources = [(f"{prefix}compression.{knob.name}", section[knob.name])
                   ] if knob.name in section else []
        raw = env_value(environ, knob.env)
        if raw is not None:
            sources.append((knob.env, raw))
        for name, value in sources:
            parsed = parse_knob(knob, value, name, problems)
            if parsed is not None:
                values[knob.name], where[knob.name] = parsed, name
    if not brotli_installed():
        if "br" in values.get("encodings", ()):
            problems.append((where["encodings"], "lists br, but the brotli package is not "
                                                 "installed: pip install 'brrt_actors[brotli]'"))
        values["encodings"] = tuple(e for e in values.get("encodings", COMPRESSION_ENCODINGS)
                                    if e != "br")
    return CompressionSettings(**values, where=where)
