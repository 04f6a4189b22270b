"""Reading one OpenAPI (or referenced) file: YAML or JSON into plain Python values."""
from __future__ import annotations

import json
import os
import re
from typing import Any

import yaml

from brrt_actors.errors import SpecError

try:
    # PERF: libyaml's parser reads the pet store about 8x faster than the pure-Python one.
    from yaml import CSafeLoader as _YAMLBase
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _YAMLBase  # type: ignore[assignment]


class _Loader(_YAMLBase):
    """A safe loader that reads YAML the way JSON would: string keys, no date objects.

    NOTE: with plain PyYAML, unquoted ``200:`` response keys are ints, ``2024-01-31`` examples
    or enum members datetime.date objects no JSON value ever equals, and ``yes`` / ``on`` /
    ``no`` booleans (YAML 1.1). Here keys keep their text, dates stay strings and only
    true / false are booleans (YAML 1.2, which OpenAPI documents are written in).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        if all(type(key) is str for key in mapping):
            return mapping
        texts = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                texts[self.construct_object(key_node)] = key_node.value
        return {key if type(key) is str else texts.get(key, str(key)): value
                for key, value in mapping.items()}


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in (_BOOL, "tag:yaml.org,2002:timestamp")]
    for first, resolvers in _YAMLBase.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def load_spec_document(path: str | os.PathLike[str], *, require_mapping: bool = True) -> Any:
    """Read the YAML or JSON file at `path` (JSON when it ends in ``.json``).

    Raises:
        SpecError: the file cannot be read or parsed, or (with `require_mapping`) does not
            hold a mapping at its top level.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as stream:
            raw = stream.read()
    except FileNotFoundError:
        raise SpecError([(name, "file not found")]) from None
    except OSError as ex:
        raise SpecError([(name, f"cannot be read: {ex.strerror or ex}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as ex:
        raise SpecError([(name, f"is not UTF-8 text (byte {ex.start})")]) from None
    try:
        if name.lower().endswith(".json"):
            doc = json.loads(text)
        else:
            doc = yaml.load(text, Loader=_Loader)  # a safe loader (see above)
    except json.JSONDecodeError as ex:
        raise SpecError([(name, f"line {ex.lineno}, column {ex.colno}: {ex.msg}")]) from None
    except yaml.MarkedYAMLError as ex:
        mark = ex.problem_mark or ex.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError([(name, f"{at}{ex.problem or ex.context or 'invalid YAML'}")]) from None
    except yaml.YAMLError as ex:
        raise SpecError([(name, f"invalid YAML: {ex}")]) from None
    if require_mapping and not isinstance(doc, dict):
        raise SpecError([(name, "must hold a mapping (an OpenAPI document) at its top level")])
    return doc
