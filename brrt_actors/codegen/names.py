"""Python names for what a spec names: handler functions, tag modules, model classes.

The generator and `brrt lint` share these rules, so that lint can say which name the
generator will use for an operationId that is not a Python identifier.
"""
from __future__ import annotations

import keyword
import re
from collections.abc import Iterable

from brrt_actors.spec.model import Operation

__all__ = ["RESERVED_MODULES", "class_name", "handler_functions", "module_name",
           "python_name"]

# Modules of the generated handlers package that `brrt gen` owns (tag modules avoid them).
RESERVED_MODULES = frozenset({"models", "operations", "aliases", "__init__"})
_NOT_WORD = re.compile(r"\W+")


def python_name(name: str) -> str:
    """Return `name` as a public Python identifier (``get-pet`` -> ``get_pet``, ``class`` ->
    ``class_``); a name that already is one is returned unchanged."""
    text = _NOT_WORD.sub("_", name).strip("_") or "operation"
    if text[0].isdigit():
        text = "op_" + text
    if keyword.iskeyword(text):
        text += "_"
    return text


def is_public_identifier(name: str) -> bool:
    """Tell whether brrt finds a function of this very name (an identifier, not a keyword,
    not private)."""
    return python_name(name) == name


def handler_functions(operations: Iterable[Operation]) -> dict[str, str]:
    """Return the function name of each operation's handler, by operationId.

    A handler name (``x-handler``, else the operationId) that is a Python identifier is kept;
    another one is mapped by `python_name`, made unique with a number when two map to one
    name. Operations sharing one handler name share the function.
    """
    operations = list(operations)
    taken = {op.handler_name for op in operations if is_public_identifier(op.handler_name)}
    by_handler: dict[str, str] = {}
    functions: dict[str, str] = {}
    for op in operations:
        name = by_handler.get(op.handler_name)
        if name is None:
            name = op.handler_name
            if not is_public_identifier(name):
                base = name = python_name(name)
                number = 2
                while name in taken:
                    name, number = f"{base}_{number}", number + 1
                taken.add(name)
            by_handler[op.handler_name] = name
        functions[op.operation_id] = name
    return functions


def module_name(tag: str) -> str:
    """Return the handlers module of a tag (``Pet Store`` -> ``pet_store``)."""
    text = python_name(tag.lower())
    return text + "_api" if text in RESERVED_MODULES else text


def class_name(name: str) -> str:
    """Return `name` in CamelCase as a class name (``get_pet`` -> ``GetPet``, ``Pet`` kept)."""
    parts = [part for part in _NOT_WORD.sub("_", name).split("_") if part]
    text = "".join(part[:1].upper() + part[1:] for part in parts) or "Model"
    if text[0].isdigit():
        text = "M" + text
    return text
