"""Rendering generated files: the Jinja2 templates and Python literals of JSON values."""
from __future__ import annotations

import json
from typing import Any

from brrt_actors.errors import ConfigError

__all__ = ["python_literal", "render", "text_literal"]

_WIDTH = 88
_environment: Any = None


def _templates() -> Any:
    global _environment
    if _environment is None:
        try:
            import jinja2
        except ImportError as ex:
            raise ConfigError([("brrt gen", "needs Jinja2: pip install 'brrt_actors[gen]' "
                                             f"({ex})")]) from ex
        # NOTE: autoescape is for HTML; these templates write Python, YAML and Markdown.
        _environment = jinja2.Environment(
            loader=jinja2.PackageLoader("brrt_actors.codegen", "templates"),
            keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
            undefined=jinja2.StrictUndefined)
        _environment.filters["literal"] = python_literal
        _environment.filters["text"] = text_literal
    return _environment


def render(template: str, **values: Any) -> str:
    """Render the template `template` (under ``codegen/templates``) with `values`."""
    text: str = _templates().get_template(template).render(**values)
    return text


def text_literal(value: str) -> str:
    """Return a Python string literal of `value` (double quotes)."""
    return json.dumps(value, ensure_ascii=False)


def python_literal(value: Any, indent: int = 0, lead: int | None = None) -> str:
    """Return the Python expression of the JSON value `value`, wrapped to fit 88 columns.

    Args:
        indent: the indentation of the line it starts on (its lines go 4 further).
        lead: the column it starts at (`indent` by default).
    """
    flat = _flat(value)
    start = indent if lead is None else lead
    if start + len(flat) <= _WIDTH or not isinstance(value, (dict, list)) or not value:
        return flat
    inner = " " * (indent + 4)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            name = text_literal(str(key))
            items.append(f"{inner}{name}: "
                         f"{python_literal(item, indent + 4, indent + 6 + len(name))}")
        return "{\n" + ",\n".join(items) + ",\n" + " " * indent + "}"
    items = [inner + python_literal(item, indent + 4) for item in value]
    return "[\n" + ",\n".join(items) + ",\n" + " " * indent + "]"


def _flat(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return text_literal(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, bytes):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{text_literal(str(k))}: {_flat(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    return repr(value)
