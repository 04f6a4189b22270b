"""What `brrt gen` writes for a spec, before it is written: models, handlers, samples.

The spec is loaded as `brrt serve` loads it (`brrt_actors.spec.load_spec`), and its schemas
are translated by the loader's own `SchemaTranslator`: the components and every schema an
operation uses are gathered as ``$ref``s of one synthetic schema, so that every model comes
out of one set of ``definitions`` (the `$ref`s are resolved there, never here).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from brrt_actors.codegen.names import class_name, handler_functions, module_name
from brrt_actors.codegen.render import python_literal, text_literal
from brrt_actors.codegen.samples import (
    SampleRequest,
    mock_answer,
    sample_request,
    success_response,
)
from brrt_actors.codegen.types import (
    ANY,
    NONE,
    Field,
    Model,
    ModelBuilder,
    PyType,
    fits,
    render_type,
    union,
)
from brrt_actors.handler import Response
from brrt_actors.spec import load_spec
from brrt_actors.spec.model import MISSING, Operation, Spec
from brrt_actors.spec.problems import Problems
from brrt_actors.spec.refs import Documents, escape
from brrt_actors.spec.schema import REQUEST, RESPONSE, SchemaTranslator
from brrt_actors.validation import ValidatorCache

__all__ = ["OperationPlan", "ServicePlan", "plan_service"]

_DEFS_PREFIX = "#/definitions/"
_LOCATIONS = (("path", "path_params", "Path"), ("query", "query", "Query"),
              ("header", "header_params", "Headers"), ("cookie", "cookies", "Cookies"))
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})


@dataclass(slots=True)
class OperationPlan:
    """One operation's handler stub, its request type and a sample request."""

    operation: Operation
    function: str  # the handler function's name
    module: str  # the handlers module (from the first tag)
    request_type: str  # the Protocol describing what the handler receives
    attributes: list[tuple[str, str]]  # that Protocol's typed attributes
    returns: str  # the handler's return annotation
    answer: str  # the expression the stub returns
    uses_cast: bool
    sample: SampleRequest

    @property
    def uses_response(self) -> bool:
        return "Response" in self.returns or self.answer.startswith("Response(")

    @property
    def typing_names(self) -> list[str]:
        """The names of `typing` the stub uses."""
        return [name for name, used in (("Any", re.search(r"\bAny\b", self.returns)),
                                        ("cast", self.uses_cast)) if used]


@dataclass(slots=True)
class ServicePlan:
    """Everything `brrt gen` writes for one spec."""

    spec: Spec
    models: list[Model]
    operations: list[OperationPlan] = field(default_factory=list)

    @property
    def aliases(self) -> dict[str, OperationPlan]:
        """Handler names that are not Python identifiers -> the operation whose function
        serves them."""
        return {plan.operation.handler_name: plan for plan in self.operations
                if plan.operation.handler_name != plan.function}


def plan_service(spec_path: str | os.PathLike[str]) -> ServicePlan:
    """Load the spec and plan every generated file's content.

    Raises:
        SpecError: the spec cannot be served as written (as ``brrt check`` says).
    """
    validators = ValidatorCache()
    spec = load_spec(spec_path, validators=validators)
    docs = Documents(spec.source, spec.document, Problems())
    functions = handler_functions(spec.operations)
    answers = {op.operation_id: mock_answer(op, validators) for op in spec.operations}
    refs: dict[str, tuple[str, str]] = {}
    components = (spec.document.get("components") or {}).get("schemas") or {}
    for name in components:
        refs[f"c:{name}"] = (RESPONSE, "#/components/schemas/" + escape(name))
    for index, op in enumerate(spec.operations):
        for number, param in enumerate(op.parameters):
            if param.schema is not None:
                refs[f"p:{index}:{number}"] = (REQUEST, _schema_ref(param.pointer, param))
        if op.request_body is not None:
            for content_type, media in op.request_body.content.items():
                if media.schema is not None:
                    refs[f"b:{index}:{content_type}"] = (REQUEST, _ref(media.pointer))
        served = _answered_media(op, answers[op.operation_id])
        if served is not None:
            refs[f"r:{index}"] = (RESPONSE, _ref(served))
    hops, definitions = _translate(spec, docs, refs)
    builder = ModelBuilder(definitions)
    for name in components:
        if f"c:{name}" in hops:
            builder.named(hops[f"c:{name}"], name)
    plan = ServicePlan(spec, [])
    for index, op in enumerate(spec.operations):
        function = functions[op.operation_id]
        plan.operations.append(_operation_plan(
            spec, op, index, function, builder, hops, answers[op.operation_id],
            sample_request(spec, op, validators, docs, answers[op.operation_id].status)))
    plan.models = list(builder.models.values())
    return plan


def _ref(pointer: str) -> str:
    file_part, hash_, fragment = pointer.rpartition("#")
    fragment = (fragment if hash_ else pointer) + "/schema"
    return (file_part if hash_ else "") + "#" + fragment.replace("%", "%25")


def _schema_ref(pointer: str, param: Any) -> str:
    if param.content_type is None:
        return _ref(pointer)
    return _ref(f"{pointer}/content/{escape(param.content_type)}")


def _answered_media(op: Operation, answer: Response) -> str | None:
    """Return the pointer of the media type the mock answer serves (JSON only)."""
    declared = success_response(op, answer.status)
    if declared is None or not _is_json(answer.content_type):
        return None
    for media in declared.content.values():
        if media.content_type == answer.content_type or "*" in media.content_type:
            return media.pointer if media.schema is not None else None
    return None


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and (content_type == "application/json"
                                         or content_type.endswith("+json"))


def _translate(spec: Spec, docs: Documents, refs: dict[str, tuple[str, str]]
               ) -> tuple[dict[str, str], dict[str, Any]]:
    """Return each ref's definition key, and the definitions of both directions."""
    minor = int(spec.openapi_version.split(".")[1])
    translator = SchemaTranslator(docs, (3, minor), docs.problems)
    hops: dict[str, str] = {}
    definitions: dict[str, Any] = {}
    for direction in (RESPONSE, REQUEST):
        wanted = {key: ref for key, (way, ref) in refs.items() if way == direction}
        if not wanted:
            continue
        wrapper = {"properties": {key: {"$ref": ref} for key, ref in wanted.items()}}
        root = translator.translate(wrapper, (docs.root_path, f"/x-brrt-gen/{direction}"),
                                    direction)
        for key, prop in root.get("properties", {}).items():
            target = prop.get("$ref") if isinstance(prop, dict) else None
            if isinstance(target, str) and target.startswith(_DEFS_PREFIX):
                hops[key] = target[len(_DEFS_PREFIX):]
        for key, body in root.get("definitions", {}).items():
            definitions.setdefault(key, body)
    return hops, definitions


def _operation_plan(spec: Spec, op: Operation, index: int, function: str,
                    builder: ModelBuilder, hops: dict[str, str], answer: Response,
                    sample: SampleRequest) -> OperationPlan:
    prefix = class_name(function)
    attributes: list[tuple[str, str]] = []
    for location, attribute, suffix in _LOCATIONS:
        fields = []
        for number, param in enumerate(op.parameters):
            if param.location != location:
                continue
            key = param.name.lower() if location == "header" else param.name
            if location == "header" and key in _IGNORED_HEADERS:
                continue
            hop = hops.get(f"p:{index}:{number}")
            kind = (builder.type_of(builder.definitions[hop], f"{prefix}{class_name(key)}")
                    if hop is not None else ANY)
            fields.append(Field(key, kind, param.required or param.default is not MISSING))
        if fields:
            model = Model(builder.unique(prefix + suffix),
                          doc=f"The {location} parameters of {function}.", fields=fields,
                          built=True)
            builder.models[model.name] = model
            attributes.append((attribute, model.name))
        else:
            attributes.append((attribute, "dict[str, Any]"))
    attributes.append(("body", render_type(_body_type(op, index, prefix, builder, hops))))
    returns, value_type = "Response", None
    hop = hops.get(f"r:{index}")
    if _is_json(answer.content_type):
        value_type = (builder.type_of(builder.definitions[hop], f"{prefix}Response")
                      if hop is not None else ANY)
        returns = render_type(value_type, "models.") + " | Response"
    expression, uses_cast = _answer_code(answer, value_type, builder)
    return OperationPlan(op, function, module_name(op.tags[0]) if op.tags else "default",
                         prefix + "Request", attributes, returns, expression, uses_cast,
                         sample)


def _body_type(op: Operation, index: int, prefix: str, builder: ModelBuilder,
               hops: dict[str, str]) -> PyType:
    body = op.request_body
    if body is None:
        return NONE
    members: list[PyType] = []
    for content_type in body.content:
        hop = hops.get(f"b:{index}:{content_type}")
        if content_type == "multipart/form-data":
            members.append(PyType("dict", (ANY,)))
        elif content_type.startswith("text/"):
            members.append(PyType("str"))
        elif hop is not None and (_is_json(content_type) or "form" in content_type
                                  or "*" in content_type):
            members.append(builder.type_of(builder.definitions[hop], f"{prefix}Body"))
        elif _is_json(content_type) or "*" in content_type:
            members.append(ANY)
        else:
            members.append(PyType("bytes"))
    if not body.required:
        members.append(NONE)
    return union(members)


def _answer_code(answer: Response, value_type: PyType | None,
                 builder: ModelBuilder) -> tuple[str, bool]:
    """Return the expression a stub returns for the mock `answer`, and whether it casts."""
    value = answer.body
    lead = 4 + len("return ")
    plain = (answer.status == 200 and not answer.headers and value is not None
             and answer.content_type == "application/json" and value_type is not None)
    if plain and value_type is not None:
        if fits(value, value_type, {m.name: m for m in builder.models.values()}):
            return python_literal(value, 4, lead), False
        target = text_literal(render_type(value_type, "models."))
        return f"cast({target}, {python_literal(value, 4, lead + len(target) + 7)})", True
    if value is None and not answer.headers:
        return f"Response({answer.status})", False
    arguments = [str(answer.status)]
    if isinstance(value, str) and not _is_json(answer.content_type):
        arguments.append(text_literal(value))
    else:
        arguments.append(python_literal(value, 4, lead + len("Response(200, ")))
    if answer.headers:
        arguments.append(python_literal(answer.headers, 4, 40))
    if answer.content_type is not None and answer.content_type != "application/json":
        if not answer.headers:
            arguments.append("None")
        arguments.append(text_literal(answer.content_type))
    return "Response(" + ", ".join(arguments) + ")", False
