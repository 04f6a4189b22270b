"""Reading an operation's parameters (part of `load_spec`).

A path item's and an operation's ``parameters`` lists become `Parameter` objects: name,
location, style and explode (checked against what each location allows), required, the
schema (translated for requests) or the one ``content`` media type. Path parameters are
checked against the path template. Problems are reported through the loader with the
others, never raised one by one.
"""
from __future__ import annotations

import re
from typing import Any, Protocol

from brrt_actors.spec.model import MISSING, Parameter
from brrt_actors.spec.problems import Problems
from brrt_actors.spec.refs import Location, child
from brrt_actors.spec.schema import REQUEST, SchemaTranslator
from brrt_actors.spec.security_schemes import SpecReader

__all__ = ["STYLES", "TEMPLATE_NAME", "ParameterReader", "check_path_parameters",
           "read_parameters"]

# The styles each location allows; the first is its default.
STYLES: dict[str, tuple[str, ...]] = {
    "path": ("simple", "label", "matrix"),
    "query": ("form", "spaceDelimited", "pipeDelimited", "deepObject"),
    "header": ("simple",),
    "cookie": ("form",),
}
# A ``{name}`` in a path template (or a server URL's variables).
TEMPLATE_NAME = re.compile(r"\{([^{}]*)\}")


class ParameterReader(SpecReader, Protocol):
    """What reading parameters needs of the loader, beyond the documents and `error`."""

    schemas: SchemaTranslator
    problems: Problems

    def warn(self, loc: Location, message: str) -> None:
        """Report a warning at `loc`."""


def read_parameters(reader: ParameterReader, value: Any, loc: Location) -> list[Parameter]:
    """Read a ``parameters`` list (None: none); a parameter declared twice is reported."""
    if value is None:
        return []
    if not isinstance(value, list):
        reader.error(loc, "must be a list of parameters")
        return []
    parameters: list[Parameter] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(value):
        found = reader.resolved(item, child(loc, index))
        param = _parameter(reader, *found) if found is not None else None
        if param is None:
            continue
        key = (param.name.lower() if param.location == "header" else param.name,
               param.location)
        if key in seen:
            reader.error(child(loc, index), f"parameter '{param.name}' in {param.location} is "
                                            "declared twice; remove one")
            continue
        seen.add(key)
        parameters.append(param)
    return parameters


def check_path_parameters(reader: ParameterReader, template: str, parameters: list[Parameter],
                          loc: Location) -> None:
    """Report the path template's names not declared, and path parameters not in it."""
    names = TEMPLATE_NAME.findall(template)
    declared = {p.name for p in parameters if p.location == "path"}
    for index, name in enumerate(names):
        if not name:
            reader.error(loc, f"path '{template}' has an empty {{}}")
        elif name in names[:index]:
            reader.error(loc, f"path '{template}' names {{{name}}} twice")
        elif name not in declared:
            reader.error(loc, f"path parameter '{name}' of '{template}' is not declared; add "
                              f"{{name: {name}, in: path, required: true, schema: {{type: "
                              "string}} to its parameters")
    for param in parameters:
        if param.location == "path" and param.name not in names:
            reader.problems.error(param.pointer, f"path parameter '{param.name}' does not "
                                                 f"appear in the path '{template}'")


def _parameter(reader: ParameterReader, node: dict[str, Any], loc: Location,
               ) -> Parameter | None:
    name, location = node.get("name"), node.get("in")
    if not isinstance(name, str) or not name:
        reader.error(child(loc, "name"), "a parameter needs a name")
        return None
    if location not in STYLES:
        reader.error(child(loc, "in"), f"must be one of path, query, header, cookie "
                                       f"(got {location!r})")
        return None
    allowed = STYLES[location]
    style = node.get("style", allowed[0])
    if style not in allowed:
        reader.error(child(loc, "style"), f"style {style!r} is not allowed for {location} "
                                          f"parameters; use one of {', '.join(allowed)}")
        style = allowed[0]
    explode = node.get("explode", style == "form")
    if not isinstance(explode, bool):
        reader.error(child(loc, "explode"), "must be true or false")
        explode = style == "form"
    required = node.get("required", False) is True
    if location == "path" and not required:
        reader.warn(loc, "path parameters must say required: true (treated as required)")
        required = True
    schema, content_type = None, None
    if "content" in node:
        content = node["content"]
        if not isinstance(content, dict) or len(content) != 1:
            reader.error(child(loc, "content"), "must hold exactly one media type")
        else:
            content_type, media = next(iter(content.items()))
            content_type = content_type.lower()
            if isinstance(media, dict) and "schema" in media:
                schema = reader.schemas.translate(
                    media["schema"], child(loc, "content", content_type, "schema"), REQUEST)
    elif "schema" in node:
        schema = reader.schemas.translate(node["schema"], child(loc, "schema"), REQUEST)
    else:
        reader.warn(loc, "has neither schema nor content: its value is taken as a string")
    return Parameter(
        name=name,
        location=location,
        pointer=reader.where(loc),
        required=required,
        style=style,
        explode=explode,
        schema=schema,
        content_type=content_type,
        allow_reserved=node.get("allowReserved") is True,
        deprecated=node.get("deprecated") is True,
        default=schema.get("default", MISSING) if schema else MISSING,
    )
