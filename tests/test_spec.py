"""Loading OpenAPI documents into the `Spec` model (brrt_actors.spec)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from reference_spec import absent_reason

from brrt_actors.errors import SpecError
from brrt_actors.spec import MISSING, Spec, load_spec, load_spec_document
from brrt_actors.validation import compile_validator

SPECS = Path(__file__).parent / "specs"
PETSTORE = Path(__file__).parents[2] / "shared" / "reference" / "brrtrouter-petstore.yaml"


def write_spec(tmp_path: Path, doc: dict[str, Any], name: str = "openapi.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def minimal(paths: dict[str, Any] | None = None, version: str = "3.1.0",
            **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"openapi": version, "info": {"title": "T", "version": "1"}}
    doc["paths"] = paths if paths is not None else {
        "/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "ok"}}}}}
    doc.update(extra)
    return doc


def get_op(spec: Spec, operation_id: str) -> Any:
    return next(op for op in spec.operations if op.operation_id == operation_id)


def problems_of(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.problems


# -- reading files ------------------------------------------------------------------------------

def test_yaml_is_read_like_json(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("responses:\n  200: {description: ok}\nday: 2024-01-31\nyes: true\n"
                    "enum: [yes, no, on, True, false, 1.5, null]\n")
    doc = load_spec_document(path)
    assert doc == {"responses": {"200": {"description": "ok"}}, "day": "2024-01-31",
                   "yes": True, "enum": ["yes", "no", "on", True, False, 1.5, None]}


def test_json_documents(tmp_path: Path) -> None:
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(minimal()))
    assert load_spec(path).operations[0].operation_id == "ping"


def test_unreadable_documents(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec_document(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("openapi: 3.1.0\npaths: [\n")
    with pytest.raises(SpecError, match="line 3"):
        load_spec_document(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec_document(scalar)


@pytest.mark.parametrize(("doc", "message"), [
    ({"swagger": "2.0"}, "Swagger 2.0"),
    ({"openapi": "4.0.0"}, "use 3.0.x or 3.1.x"),
    ({"openapi": 3.0}, "write it as a string"),
])
def test_unsupported_versions(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(write_spec(tmp_path, doc))


# -- the model ----------------------------------------------------------------------------------

def test_multi_file_spec_with_external_refs() -> None:
    spec = load_spec(SPECS / "multifile" / "main.yaml")
    assert spec.openapi_version == "3.0.3"
    assert spec.base_path == "/api/v1"
    assert [(op.method, op.path) for op in spec.operations] == [
        ("GET", "/api/v1/pets"), ("POST", "/api/v1/pets"), ("GET", "/api/v1/pets/{id}"),
        ("GET", "/api/v1/trees")]
    list_pets = get_op(spec, "list_pets")
    # Path-item parameters merge in; the operation's own `limit` wins.
    params = {p.name: p for p in list_pets.parameters}
    assert set(params) == {"limit", "X-Trace"}
    assert params["limit"].schema == {"type": "integer", "maximum": 10}
    assert params["limit"].default is MISSING
    assert params["X-Trace"].location == "header"
    assert params["X-Trace"].pointer == "common.yaml#/components/parameters/Trace"
    # The response's `default` is a ref into another file, whose own refs resolve there.
    error = list_pets.responses["default"]
    assert error.pointer == "common.yaml#/components/responses/Error"
    assert compile_validator(error.content["application/json"].schema).errors({}) == [
        ("/message", "is required")]
    # A whole-file schema, with ~1 and percent-encoded refs into a third file.
    pets = compile_validator(list_pets.responses["200"].content["application/json"].schema)
    good = {"id": "123e4567-e89b-12d3-a456-426614174000", "name": "Rex",
            "owner": {"name": "Ann"}, "tag": "dog"}
    assert pets.errors([good]) == []
    assert pets.errors([{**good, "owner": {}, "tag": "x" * 11}]) == [
        ("/0/owner/name", "is required"), ("/0/tag", "must be at most 10 characters long")]
    # A path item in its own file.
    get_pet = get_op(spec, "get_pet")
    assert get_pet.pointer == "/paths/~1pets~1{id}/get"
    assert get_pet.parameters[0].schema == {"type": "string", "format": "uuid"}
    assert get_pet.parameters[0].pointer == "paths/pet-by-id.yaml#/parameters/0"


def test_request_body_ref_in_other_file_drops_read_only_from_required() -> None:
    spec = load_spec(SPECS / "multifile" / "main.yaml")
    body = get_op(spec, "add_pet").request_body
    assert body.required is True
    validator = compile_validator(body.content["application/json"].schema)
    assert validator.errors({"name": "Rex", "owner": {"name": "Ann"}}) == []
    response = get_op(spec, "add_pet").responses["201"].content["application/json"].schema
    assert compile_validator(response).errors({"name": "Rex", "owner": {"name": "Ann"}}) == [
        ("/id", "is required")]


def test_recursive_schema_validates_nested_values() -> None:
    spec = load_spec(SPECS / "multifile" / "main.yaml")
    schema = get_op(spec, "get_tree").responses["200"].content["application/json"].schema
    assert schema["type"] == "object"
    assert "Tree" in schema["definitions"]
    validator = compile_validator(schema)
    tree = {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}, {"value": 4}]}
    assert validator.errors(tree) == []
    tree["children"][0]["children"].append({"children": [{"value": 2**31}]})
    assert validator.errors(tree) == [
        ("/children/0/children/1/children/0/value", "must be <= 2147483647"),
        ("/children/0/children/1/value", "is required"),
    ]


def test_features_of_openapi_30() -> None:
    spec = load_spec(SPECS / "features30.yaml")
    assert spec.base_path == ""
    assert spec.version == "2"
    list_users = get_op(spec, "list_users")
    assert list_users.handler_name == "users_index"
    assert list_users.extensions == {"x-handler": "users_index", "x-brrt-actor": {"workers": 2}}
    assert list_users.tags == ["users"]
    assert list_users.summary == "List users"
    params = {p.name: p for p in list_users.parameters}
    assert (params["ids"].style, params["ids"].explode) == ("form", True)
    assert (params["X-Request-Id"].style, params["X-Request-Id"].explode) == ("simple", False)
    assert (params["session"].style, params["session"].explode) == ("form", False)
    assert params["filter"].content_type == "application/json"
    assert params["filter"].schema_type == "object"
    # int keys (200:) are read as strings; ranges and default are kept as written.
    assert list(list_users.responses) == ["200", "2XX", "default"]
    ok = list_users.responses["200"]
    assert ok.headers["X-Rate-Limit"]["schema"]["maximum"] == 2**31 - 1
    # The first of `examples`, following its $ref.
    assert ok.content["application/json"].example == [{"id": 1, "name": "Ann", "nickname": None}]
    get_user = get_op(spec, "get_user")
    assert get_user.parameters[0].required is True
    assert get_user.responses["200"].content["text/plain"].schema is None
    assert get_user.responses["200"].content["application/json"].example is MISSING


def test_parameter_defaults_and_styles(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, minimal({"/x/{id}": {"get": {
        "operationId": "x",
        "parameters": [
            {"name": "id", "in": "path", "required": True, "style": "matrix",
             "schema": {"type": "array", "items": {"type": "integer"}}},
            {"name": "page", "in": "query", "schema": {"type": "integer", "default": 1}},
            {"name": "q", "in": "query", "style": "deepObject", "allowReserved": True,
             "deprecated": True, "schema": {"type": "object"}},
            {"name": "h", "in": "header", "schema": {"type": "string"}},
            {"name": "c", "in": "cookie", "schema": {"type": "string"}},
            {"name": "raw", "in": "query"},
        ],
        "responses": {"200": {"description": "ok"}}}}})))
    params = {p.name: p for p in spec.operations[0].parameters}
    assert (params["id"].style, params["id"].explode, params["id"].required) == (
        "matrix", False, True)
    assert (params["page"].style, params["page"].explode, params["page"].default) == (
        "form", True, 1)
    assert params["page"].required is False
    assert (params["q"].style, params["q"].explode) == ("deepObject", False)
    assert params["q"].allow_reserved and params["q"].deprecated
    assert (params["h"].style, params["h"].explode) == ("simple", False)
    assert (params["c"].style, params["c"].explode) == ("form", True)
    assert params["raw"].schema is None
    assert any("neither schema nor content" in message for _, message in spec.warnings)


def test_security_requirements(tmp_path: Path) -> None:
    spec = load_spec(SPECS / "features30.yaml")
    assert get_op(spec, "list_users").security == [{"ApiKey": []}]
    assert get_op(spec, "create_user").security == []
    assert get_op(spec, "get_user").security == [{"Bearer": []}, {"ApiKey": []}]
    schemes = spec.security_schemes
    assert (schemes["ApiKey"].type, schemes["ApiKey"].location,
            schemes["ApiKey"].parameter_name) == ("apiKey", "header", "X-API-Key")
    assert (schemes["Bearer"].scheme, schemes["Bearer"].bearer_format) == ("bearer", "JWT")
    assert schemes["Bearer"].pointer == "/components/securitySchemes/Bearer"


def test_unknown_security_scheme_is_a_problem(tmp_path: Path) -> None:
    doc = minimal(security=[{"Key": []}],
                  components={"securitySchemes": {"Key": {"type": "apiKey"}}})
    problems = dict(problems_of(write_spec(tmp_path, doc)))
    assert "must be header, query or cookie" in problems["/components/securitySchemes/Key/in"]
    doc = minimal(security=[{"Other": []}])
    problems = dict(problems_of(write_spec(tmp_path, doc)))
    assert "'Other' is not defined" in problems["/security/0/Other"]


@pytest.mark.parametrize(("servers", "base_path"), [
    (None, ""),
    ([{"url": "/"}], ""),
    ([{"url": "http://example.com"}], ""),
    ([{"url": "https://example.com/api/v1/"}], "/api/v1"),
    ([{"url": "/base"}], "/base"),
    ([{"url": "api"}], "/api"),
    ([{"url": "{scheme}://x/{v}", "variables": {"scheme": {"default": "https"},
                                                 "v": {"default": "v2"}}}], "/v2"),
])
def test_base_path(tmp_path: Path, servers: Any, base_path: str) -> None:
    doc = minimal() if servers is None else minimal(servers=servers)
    spec = load_spec(write_spec(tmp_path, doc))
    assert spec.base_path == base_path
    assert spec.operations[0].path == base_path + "/ping"


def test_media_type_examples(tmp_path: Path) -> None:
    def response(media: dict[str, Any]) -> dict[str, Any]:
        return {"description": "ok", "content": {"application/json": media}}

    doc = minimal({"/e": {"get": {"operationId": "e", "responses": {
        "200": response({"example": 1, "examples": {"a": {"value": 2}}}),
        "201": response({"examples": {"a": {"externalValue": "x.json"}, "b": {"value": 3}}}),
        "202": response({"schema": {"$ref": "#/components/schemas/S"}}),
        "203": response({"schema": {"type": "integer", "examples": [5, 6]}}),
        "204": response({"schema": {"type": "integer"}}),
        "205": response({"example": None}),
    }}}}, components={"schemas": {"S": {"type": "integer", "example": 4}}})
    responses = load_spec(write_spec(tmp_path, doc)).operations[0].responses
    examples = {status: r.content["application/json"].example for status, r in responses.items()}
    assert examples == {"200": 1, "201": 3, "202": 4, "203": 5, "204": MISSING, "205": None}


def test_response_statuses(tmp_path: Path) -> None:
    doc = minimal({"/s": {"get": {"operationId": "s", "responses": {
        "2xx": {"description": "ok"}, "Default": {"description": "d"},
        "600": {"description": "bad"}}}}})
    assert dict(problems_of(write_spec(tmp_path, doc))) == {
        "/paths/~1s/get/responses/600":
            "'600' is not a response status; use a code (200), a range (2XX) or default"}
    del doc["paths"]["/s"]["get"]["responses"]["600"]
    spec = load_spec(write_spec(tmp_path, doc))
    assert list(spec.operations[0].responses) == ["2XX", "default"]


def test_path_parameters_must_match_the_template(tmp_path: Path) -> None:
    doc = minimal({"/a/{id}": {"get": {
        "operationId": "a",
        "parameters": [{"name": "other", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok"}}}}})
    problems = dict(problems_of(write_spec(tmp_path, doc)))
    assert "path parameter 'id' of '/a/{id}' is not declared" in problems["/paths/~1a~1{id}/get"]
    assert "does not appear in the path" in problems["/paths/~1a~1{id}/get/parameters/0"]


def test_duplicate_and_bad_parameters(tmp_path: Path) -> None:
    doc = minimal({"/a": {"get": {
        "operationId": "a",
        "parameters": [
            {"name": "q", "in": "query", "schema": {"type": "string"}},
            {"name": "q", "in": "query", "schema": {"type": "string"}},
            {"name": "h", "in": "body"},
            {"name": "s", "in": "query", "style": "simple"},
        ],
        "responses": {"200": {"description": "ok"}}}}})
    problems = dict(problems_of(write_spec(tmp_path, doc)))
    assert "declared twice" in problems["/paths/~1a/get/parameters/1"]
    assert "must be one of path, query" in problems["/paths/~1a/get/parameters/2/in"]
    assert "not allowed for query" in problems["/paths/~1a/get/parameters/3/style"]


def test_every_problem_is_reported_together() -> None:
    problems = problems_of(SPECS / "broken.yaml")
    where = [pointer for pointer, _ in problems]
    messages = dict(problems)
    assert "operationId is missing" in messages["/paths/~1a/get"]
    assert "'same' is also used at /paths/~1b/get" in messages["/paths/~1c/post/operationId"]
    assert "no 'Missing' under /components/schemas" in messages[
        "/paths/~1b/get/responses/200/content/application~1json/schema/$ref"]
    assert "'Nope' is not defined" in messages["/paths/~1b/get/security/0/Nope"]
    assert "beside allOf" in messages[
        "/paths/~1c/post/requestBody/content/application~1json/schema/unevaluatedProperties"]
    assert "$dynamicRef" in where[-1] or any(p.endswith("/$dynamicRef") for p in where)
    assert len(problems) == 7
    assert str(SpecError(problems)).startswith("7 problems:")


def test_bad_refs(tmp_path: Path) -> None:
    def schema_at(ref: str) -> dict[str, Any]:
        return {"operationId": f"op{len(ref)}", "responses": {"200": {
            "description": "ok", "content": {"application/json": {"schema": {"$ref": ref}}}}}}

    doc = minimal({
        "/a": {"get": schema_at("missing.yaml#/X")},
        "/b": {"get": schema_at("https://example.com/s.yaml")},
        "/c": {"get": schema_at("#anchor")},
        "/d": {"get": schema_at("#/components/schemas/Loop")},
    }, components={"schemas": {"Loop": {"$ref": "#/components/schemas/Loop"}}})
    messages = " | ".join(message for _, message in problems_of(write_spec(tmp_path, doc)))
    assert "file not found" in messages
    assert "remote document" in messages
    assert "plain-name fragments" in messages
    assert "cycle" in messages


def test_spec_keeps_the_document_as_read() -> None:
    path = SPECS / "multifile" / "main.yaml"
    spec = load_spec(path)
    assert spec.document == load_spec_document(path)
    assert spec.document["paths"]["/pets/{id}"] == {"$ref": "paths/pet-by-id.yaml"}
    assert spec.source == str(path)


def test_warnings_do_not_stop_the_start(tmp_path: Path) -> None:
    doc = minimal({"/w": {"get": {"operationId": "w", "responses": {"200": {
        "description": "ok", "content": {"application/json": {"schema": {
            "type": "string", "format": "phone", "requried": ["x"]}}}}}}}})
    spec = load_spec(write_spec(tmp_path, doc))
    warnings = dict(spec.warnings)
    base = "/paths/~1w/get/responses/200/content/application~1json/schema"
    assert warnings[base + "/format"] == "format 'phone' is not checked"
    assert warnings[base + "/requried"] == "unknown schema keyword 'requried' is ignored"


def test_brrtrouter_petstore_loads() -> None:
    if not PETSTORE.exists():
        pytest.skip(absent_reason("loading and compiling BRRTRouter's pet store spec"))
    start = time.perf_counter()
    spec = load_spec(PETSTORE)
    elapsed = time.perf_counter() - start
    print(f"pet store: load + compile {elapsed * 1000:.1f} ms")
    assert len(spec.operations) == 22
    assert spec.openapi_version == "3.1.0"
    assert spec.warnings == []
    assert get_op(spec, "secure_endpoint").security == [{"BearerAuth": []}, {"OAuth2": ["read"]}]
    assert get_op(spec, "list_pets").security == [{"ApiKeyHeader": []}]
    user = get_op(spec, "get_user").responses["200"].content["application/json"]
    assert compile_validator(user.schema).errors(user.example) == [("/id", "must be a valid uuid")]


def test_many_mistakes_each_named(tmp_path: Path) -> None:
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "servers": [{"url": "http://x/{missing}"}],
        "security": "ApiKey",
        "components": {"securitySchemes": {
            "Weird": {"type": "magic"},
            "Http": {"type": "http"},
            "Key": {"type": "apiKey", "in": "header", "name": "X-Key"},
        }},
        "paths": {
            "x-internal": {"get": {}},
            "relative": {"get": {"operationId": "r"}},
            "/ops": {
                "get": "not an operation",
                "put": {"operationId": "put_ops", "x-handler": 5,
                        "security": [{"Key": "read"}, "Key"],
                        "parameters": {"name": "q"},
                        "requestBody": {"content": {}},
                        "responses": {"200": {"description": "ok", "content": ["json"],
                                              "headers": ["X-A"]}}},
                "post": {"operationId": "post_ops",
                         "parameters": [{"in": "query"},
                                        {"name": "e", "in": "query", "explode": "yes"},
                                        {"name": "c", "in": "query", "content": {}}],
                         "requestBody": {"content": {"application/json": "schema"}},
                         "responses": "ok"},
            },
            "/empty/{}": {"get": {"operationId": "empty", "responses": {}}},
        },
    }
    problems = dict(problems_of(write_spec(tmp_path, doc)))
    expected = {
        "/servers/0/url": "server variable 'missing' has no default",
        "/security": "must be a list of security requirements",
        "/components/securitySchemes/Weird/type": "type must be one of apiKey",
        "/components/securitySchemes/Http/scheme": "must name the HTTP scheme",
        "/paths/relative": "must start with '/'",
        "/paths/~1ops/get": "must be an operation object",
        "/paths/~1ops/put/x-handler": "must name the handler function",
        "/paths/~1ops/put/security/0/Key": "must be a list of scope names",
        "/paths/~1ops/put/security/1": "must be a mapping of scheme names",
        "/paths/~1ops/put/parameters": "must be a list of parameters",
        "/paths/~1ops/put/requestBody": "a request body needs content",
        "/paths/~1ops/put/responses/200/content": "must be a mapping of media types",
        "/paths/~1ops/put/responses/200/headers": "must be a mapping of header names",
        "/paths/~1ops/post/parameters/0/name": "a parameter needs a name",
        "/paths/~1ops/post/parameters/1/explode": "must be true or false",
        "/paths/~1ops/post/parameters/2/content": "must hold exactly one media type",
        "/paths/~1ops/post/requestBody/content/application~1json": "must be a media type",
        "/paths/~1ops/post/responses": "must be a mapping of status codes",
        "/paths/~1empty~1{}/get": "has an empty {}",
    }
    for where, text in expected.items():
        assert text in problems.get(where, ""), where
    assert len(problems) == len(expected), sorted(set(problems) - set(expected))


def test_warnings_for_what_is_served_differently(tmp_path: Path) -> None:
    doc = minimal({"/items/{id}": {
        "servers": [{"url": "https://cdn.example.com/files"}],
        "get": {
            "operationId": "item",
            "servers": [{"url": "/elsewhere"}],
            "parameters": [{"name": "id", "in": "path", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok", "headers": {
                "X-Json": {"content": {"application/json": {"schema": {"type": "object"}}}}},
                "content": {"text/plain": None}}},
        }}}, version="3.0.3")
    del doc["info"]
    spec = load_spec(write_spec(tmp_path, doc))
    warnings = dict(spec.warnings)
    assert warnings["/info"] == "info (title, version) is missing"
    assert "not used; served under ''" in warnings["/paths/~1items~1{id}/servers"]
    assert "not used; served under ''" in warnings["/paths/~1items~1{id}/get/servers"]
    assert "required: true" in warnings["/paths/~1items~1{id}/get/parameters/0"]
    response = spec.operations[0].responses["200"]
    assert response.headers["X-Json"]["schema"] == {"type": "object"}
    assert response.content["text/plain"].schema is None
    assert spec.operations[0].parameters[0].required is True


def test_no_paths(tmp_path: Path) -> None:
    doc = minimal()
    del doc["paths"]
    spec = load_spec(write_spec(tmp_path, doc))
    assert spec.operations == []
    assert spec.warnings == [("/paths", "the document declares no paths")]


def test_invalid_regex_found_when_compiling_is_reported(tmp_path: Path) -> None:
    # Found while translating, so the problem names the keyword itself.
    doc = minimal({"/r": {"get": {"operationId": "r", "parameters": [
        {"name": "q", "in": "query", "schema": {"type": "string", "pattern": "[a-"}}],
        "responses": {"200": {"description": "ok"}}}}})
    problems = dict(problems_of(write_spec(tmp_path, doc)))
    assert "not a valid regular expression" in problems[
        "/paths/~1r/get/parameters/0/schema/pattern"]


def test_pointer_escapes_in_refs(tmp_path: Path) -> None:
    doc = minimal({"/e": {"get": {"operationId": "e", "responses": {"200": {
        "description": "ok", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/a~0b~1c%20d"}}}}}}}},
        components={"schemas": {"a~b/c d": {"type": "integer", "maximum": 3}}})
    spec = load_spec(write_spec(tmp_path, doc))
    schema = spec.operations[0].responses["200"].content["application/json"].schema
    assert schema == {"type": "integer", "maximum": 3}


def test_components_are_translated_once_per_direction() -> None:
    spec = load_spec(SPECS / "multifile" / "main.yaml")
    listed = get_op(spec, "list_pets").responses["200"].content["application/json"].schema
    one = get_op(spec, "get_pet").responses["200"].content["application/json"].schema
    created = get_op(spec, "add_pet").responses["201"].content["application/json"].schema
    sent = get_op(spec, "add_pet").request_body.content["application/json"].schema
    assert listed["items"] == {"$ref": "#/definitions/pet"}
    assert listed["definitions"]["pet"]["properties"] is created["properties"]
    assert one["definitions"]["Owner_Ref"] is listed["definitions"]["Owner_Ref"]
    assert one["properties"] is created["properties"]  # the same response-side translation
    assert one["required"] == ["id", "name", "owner"]
    assert sent["required"] == ["name", "owner"]  # id is readOnly
