"""`brrt lint`: what is wrong (errors) or odd (warnings) in a spec, each with its JSON pointer.

Errors are what stops `brrt serve` (everything the loader, `brrt_actors.spec.load_spec`,
reports: missing or duplicate operationIds, unresolved ``$ref``s, undeclared path parameters,
schemas fastjsonschema cannot compile ...) plus ``$ref``s that nothing loads yet and
operations declaring no response. Warnings are served, but likely not what the author meant:
operationIds that are not Python identifiers (with the name `brrt gen` gives their
functions), unused components and security schemes, operations without a 2xx response or
without response schemas, examples that do not validate against their schemas.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from brrt_actors.codegen.names import handler_functions, is_public_identifier, python_name
from brrt_actors.errors import SpecError
from brrt_actors.spec import load_spec, load_spec_document
from brrt_actors.spec.loader import METHODS
from brrt_actors.spec.model import MISSING, Spec
from brrt_actors.spec.problems import Problems
from brrt_actors.spec.refs import Documents, escape
from brrt_actors.spec.schema import RESPONSE, SchemaTranslator
from brrt_actors.validation import ValidatorCache

__all__ = ["Finding", "LintReport", "lint_spec"]

_VERSION = re.compile(r"3\.([01])\.")
ERROR = "error"
WARNING = "warning"
_COMPONENT_KINDS = ("schemas", "responses", "parameters", "examples", "requestBodies",
                    "headers", "links", "callbacks", "pathItems")
# The loader's messages, sorted into rules by what they mention.
_LOADER_RULES = (("operationId", "operation-id"), ("$ref", "unresolved-ref"),
                 ("path parameter", "path-parameter"), ("cannot be compiled", "schema-compile"))


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing lint found."""

    level: str  # "error" | "warning"
    pointer: str  # JSON pointer into the spec ("other.yaml#/..." in another file)
    rule: str
    message: str


@dataclass(slots=True)
class LintReport:
    """Every finding about one spec, errors first."""

    spec: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    def as_json(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (``brrt lint --format json``)."""
        return {"spec": self.spec, "errors": [asdict(f) for f in self.errors],
                "warnings": [asdict(f) for f in self.warnings]}

    def as_text(self) -> str:
        """Return the report for a terminal."""
        lines = [f"{self.spec}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"]
        for title, found in (("errors", self.errors), ("warnings", self.warnings)):
            if found:
                lines.append(f"{title}:")
                lines.extend(f"  {f.pointer or '/'}: {f.message} [{f.rule}]" for f in found)
        return "\n".join(lines) + "\n"


def lint_spec(path: str | os.PathLike[str]) -> LintReport:
    """Check the spec at `path`; every finding has a JSON pointer, a level and a rule name.

    Raises:
        SpecError: the file cannot be read or parsed at all.
    """
    source = os.fspath(path)
    document = load_spec_document(source)
    found: dict[Finding, None] = {}

    def add(level: str, pointer: str, rule: str, message: str) -> None:
        found[Finding(level, pointer, rule, message)] = None

    validators = ValidatorCache()
    spec: Spec | None = None
    try:
        spec = load_spec(source, validators=validators)
    except SpecError as ex:
        for where, message in ex.problems:
            add(ERROR, where, _loader_rule(message), message)
    if spec is not None:
        for where, message in spec.warnings:
            add(WARNING, where, "spec", message)
    docs = Documents(source, document, Problems())
    _check_refs(docs, document, add)
    _check_operations(document, spec, add)
    _check_unused(document, add)
    check = _checker(validators, add)
    _check_schemas(document, docs, check, add)
    if spec is not None:
        _check_examples(spec, docs, check)
    else:
        add(WARNING, "", "not-checked", "the examples of the operations are checked once "
                                        "the errors are fixed")
    findings = sorted(found, key=lambda f: (f.level != ERROR, f.pointer))
    return LintReport(source, findings)


def _loader_rule(message: str) -> str:
    return next((rule for word, rule in _LOADER_RULES if word in message), "spec")


# -- the document ----------------------------------------------------------------------------

def _walk(node: Any, pointer: str = "") -> Any:
    """Yield (pointer, mapping) for every mapping in `node`."""
    stack = [(pointer, node)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, dict):
            yield at, value
            stack.extend((f"{at}/{escape(str(k))}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{at}/{i}", v) for i, v in enumerate(value))


def _check_refs(docs: Documents, document: dict[str, Any], add: Any) -> None:
    """Resolve every ``$ref`` of the document, also those nothing loads (unused parts)."""
    for pointer, node in _walk(document):
        # NOTE: under `properties`, "$ref" would be a property's name.
        if "$ref" in node and not pointer.endswith("/properties"):
            docs.resolve(node["$ref"], (docs.root_path, pointer))
    for where, message in docs.problems.errors:
        add(ERROR, where, "unresolved-ref", message)


def _operations(document: dict[str, Any]) -> Any:
    paths = document.get("paths")
    for template, item in (paths.items() if isinstance(paths, dict) else ()):
        if not isinstance(item, dict) or template.startswith("x-"):
            continue
        for method in METHODS:
            if isinstance(item.get(method), dict):
                yield f"/paths/{escape(template)}/{method}", method, item[method]


def _check_operations(document: dict[str, Any], spec: Spec | None, add: Any) -> None:
    functions = handler_functions(spec.operations) if spec is not None else {}
    for pointer, _method, node in _operations(document):
        operation_id = node.get("operationId")
        handler = node.get("x-handler", operation_id)
        if isinstance(handler, str) and handler and not is_public_identifier(handler):
            name = functions.get(operation_id) if isinstance(operation_id, str) else None
            what = "x-handler" if "x-handler" in node else "operationId"
            add(WARNING, f"{pointer}/{what}", "operation-id-identifier",
                f"{what} {handler!r} is not a Python identifier: brrt gen names its function "
                f"{name or python_name(handler)!r} (and publishes it under {handler!r} in "
                "aliases.py); rename it, or set x-handler to a Python name")
        responses = node.get("responses")
        if responses is None or responses == {}:
            add(ERROR, f"{pointer}/responses", "no-responses",
                "the operation declares no response; declare at least its success response")
            continue
        if not isinstance(responses, dict):
            continue
        statuses = [str(s) for s in responses if not str(s).startswith("x-")]
        if not any(s.startswith("2") for s in statuses):
            also = " (only default)" if "default" in statuses else ""
            add(WARNING, f"{pointer}/responses", "no-success-response",
                f"no 2xx response{also}: clients and the mock mode cannot tell what success "
                "looks like; declare it (e.g. 200 with a schema)")
    if spec is None:
        return
    for op in spec.operations:
        for status, response in op.responses.items():
            if not status.startswith("2"):
                continue
            for media in response.content.values():
                if media.schema is None:
                    add(WARNING, media.pointer, "no-response-schema",
                        f"the {status} response's {media.content_type} has no schema: "
                        "its answers are not validated and brrt gen cannot type them")


def _check_unused(document: dict[str, Any], add: Any) -> None:
    """Warn about components no ``$ref`` names, and security schemes no requirement names."""
    targets: set[str] = set()
    for pointer, node in _walk(document):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            inside = ref[1:]
            # NOTE: a component that only names itself is still unused.
            parts = inside.split("/")
            own = "/".join(parts[:4])
            if not pointer.startswith(own + "/") and pointer != own:
                targets.add(own)
    components = document.get("components")
    if not isinstance(components, dict):
        return
    for kind in _COMPONENT_KINDS:
        entries = components.get(kind)
        for name in (entries if isinstance(entries, dict) else ()):
            pointer = f"/components/{kind}/{escape(str(name))}"
            if pointer not in targets:
                add(WARNING, pointer, "unused-component",
                    f"components.{kind}.{name} is never referenced; remove it or $ref it")
    schemes = components.get("securitySchemes")
    if not isinstance(schemes, dict):
        return
    used: set[str] = set()
    requirements = [document.get("security")] + [
        node.get("security") for _, _, node in _operations(document)]
    for requirement in requirements:
        for group in (requirement if isinstance(requirement, list) else ()):
            if isinstance(group, dict):
                used.update(group)
    for name in schemes:
        if name not in used:
            add(WARNING, f"/components/securitySchemes/{escape(str(name))}",
                "unused-security-scheme",
                f"security scheme {name!r} is never required (no security requirement names "
                "it); remove it or add it to a security requirement")


# -- examples ---------------------------------------------------------------------------------

def _checker(validators: ValidatorCache, add: Any) -> Any:
    """Return check(schema, value, pointer): compile `schema` (an error when it cannot be),
    then validate the example `value` against it (a warning when it does not)."""
    def check(schema: dict[str, Any] | None, value: Any, pointer: str) -> None:
        if schema is None:
            return
        try:
            validator = validators.compile(schema, pointer=pointer.rsplit("/", 1)[0])
        except SpecError as ex:
            for where, message in ex.problems:
                add(ERROR, where, "schema-compile", message)
            return
        if value is MISSING:
            return
        errors = validator.errors(value)
        if errors:
            shown = "; ".join(f"{at or '/'}: {message}" for at, message in errors[:3])
            more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
            add(WARNING, pointer, "invalid-example",
                f"the example does not validate against its schema ({shown}{more}); the "
                "mock mode and brrt gen serve a generated value instead")

    return check


def _check_examples(spec: Spec, docs: Documents, check: Any) -> None:
    """Check the examples of every parameter, request body and response."""
    for op in spec.operations:
        for param in op.parameters:
            node = _node(docs, param.pointer)
            if isinstance(node, dict) and "example" in node:
                check(param.schema, node["example"], f"{param.pointer}/example")
        media_types = list(op.request_body.content.values()) if op.request_body else []
        for response in op.responses.values():
            media_types.extend(response.content.values())
        for media in media_types:
            node = _node(docs, media.pointer)
            if not isinstance(node, dict):
                continue
            if "example" in node:
                check(media.schema, node["example"], f"{media.pointer}/example")
            examples = node.get("examples")
            for name, example in (examples.items() if isinstance(examples, dict) else ()):
                found = docs.deref(example, (docs.root_path, f"{media.pointer}/examples/"
                                                             f"{escape(str(name))}"))
                if found is not None and isinstance(found[0], dict) and "value" in found[0]:
                    check(media.schema, found[0]["value"],
                          f"{media.pointer}/examples/{escape(str(name))}/value")


def _check_schemas(document: dict[str, Any], docs: Documents, check: Any, add: Any) -> None:
    """Translate and compile every component schema (also those no operation uses), and
    check its ``example`` and those of its properties."""
    components = document.get("components")
    schemas = components.get("schemas") if isinstance(components, dict) else None
    version = _VERSION.match(str(document.get("openapi", "")))
    if not isinstance(schemas, dict) or version is None:
        return
    minor = int(version.group(1))
    problems = Problems()
    translator = SchemaTranslator(docs, (3, minor), problems)
    for name, node in schemas.items():
        pointer = f"/components/schemas/{escape(str(name))}"
        translated = translator.translate(node, (docs.root_path, pointer), RESPONSE)
        check(translated, node.get("example", MISSING) if isinstance(node, dict) else MISSING,
              f"{pointer}/example")
        definitions = translated.get("definitions")
        properties = translated.get("properties")
        raw = node.get("properties") if isinstance(node, dict) else None
        for key, prop in (properties.items() if isinstance(properties, dict) else ()):
            written = raw.get(key) if isinstance(raw, dict) else None
            if isinstance(prop, dict) and isinstance(written, dict) and "example" in written:
                schema = {**prop, "definitions": definitions} if definitions else prop
                check(schema, written["example"],
                      f"{pointer}/properties/{escape(str(key))}/example")
    for where, message in problems.errors:
        add(ERROR, where, "schema", message)


def _node(docs: Documents, pointer: str) -> Any:
    if "#" in pointer:
        return None  # in another file: its examples are checked where they are used
    try:
        return docs.get((docs.root_path, pointer))
    except (KeyError, IndexError, TypeError):
        return None
