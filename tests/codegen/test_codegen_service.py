"""`brrt gen`: the generated service starts, answers every operation as its spec says, and
its whole output passes `mypy --strict`.

Specs: the pet store, BRRTRouter's pet store (skipped when absent), and small specs covering
allOf / oneOf / anyOf, enums, nested arrays, recursive schemas, every parameter location and
style, form / multipart / text bodies, event streams, every built-in security scheme and
operationIds that are not Python identifiers (`get-node`, `class`).
"""
from __future__ import annotations

import base64
import http.client
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REFERENCE_PETSTORE, ROOT, SPECS, TEST_SPECS

from brrt_actors import build_app
from brrt_actors.codegen import ServicePlan, generate, plan_service
from brrt_actors.codegen.samples import SampleRequest, success_response
from brrt_actors.entrypoints.commands import make_token
from brrt_actors.testing import Client
from brrt_actors.validation import ValidatorCache

pytestmark = pytest.mark.slow

_NO_REFERENCE = (f"not tested: brrt gen on BRRTRouter's pet store; it needs its spec at "
                 f"{REFERENCE_PETSTORE} (kept beside the checkout, never copied here)")
SPEC_FILES = {
    "petstore": SPECS / "petstore.yaml",
    "shapes": TEST_SPECS / "codegen_shapes.yaml",
    "params": TEST_SPECS / "codegen_params.yaml",
    "brrtrouter": REFERENCE_PETSTORE,
}
NAMES = [pytest.param(name, marks=pytest.mark.skipif(
    not REFERENCE_PETSTORE.exists(), reason=_NO_REFERENCE)) if name == "brrtrouter" else name
    for name in SPEC_FILES]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Generate each spec's service once: name -> its folder (package ``gen_<name>``)."""
    root = tmp_path_factory.mktemp("services")
    yield {name: root / name for name in SPEC_FILES}


def _generated(services: dict[str, Path], name: str) -> Path:
    out = services[name]
    if not out.exists():
        generate(SPEC_FILES[name], out, package=f"gen_{name}")
    return out


def _send(client: Client, spec: Path, sample: SampleRequest) -> Any:
    """Send `sample` with the `--dev` credentials its operation asks for."""
    headers, target = dict(sample.headers), sample.target
    for credential in sample.credentials:
        if credential.kind == "apiKey":
            if credential.location == "header":
                headers[credential.name] = "dev"
            elif credential.location == "query":
                target += ("&" if "?" in target else "?") + f"{credential.name}=dev"
            else:
                cookie = headers.get("Cookie")
                headers["Cookie"] = f"{cookie}; {credential.name}=dev" if cookie \
                    else f"{credential.name}=dev"
        elif credential.kind == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(b"dev:dev").decode()
        else:
            token = make_token(credential.scheme, spec=spec, scopes=credential.scopes,
                               dev=True, environ={})
            headers["Authorization"] = f"Bearer {token}"
    return client.request(sample.method, target, headers=headers, data=sample.body,
                          content_type=sample.content_type)


def _check_answer(plan: ServicePlan, index: int, status: int, content_type: str,
                  body: bytes, validators: ValidatorCache) -> None:
    op = plan.operations[index]
    assert status == op.sample.status, (op.operation.operation_id, status, body[:300])
    declared = success_response(op.operation, status)
    assert declared is not None
    if not content_type.startswith("application/json") or op.operation.method == "HEAD":
        return
    media = declared.content.get("application/json")
    if media is not None and media.schema is not None:
        import ujson

        errors = validators.compile(media.schema).errors(ujson.loads(body))
        assert errors == [], (op.operation.operation_id, errors)


@pytest.mark.parametrize("name", NAMES)
def test_every_operation_answers_as_its_spec_says(services: dict[str, Path], name: str,
                                                  apps: list[object]) -> None:
    out = _generated(services, name)
    spec = SPEC_FILES[name]
    plan = plan_service(spec)
    app = build_app(spec, out / f"gen_{name}", dev=True, environ={})
    apps.append(app)
    app.start()
    client = Client(app)
    validators = ValidatorCache()
    assert plan.operations
    for index, op in enumerate(plan.operations):
        answer = _send(client, spec, op.sample)
        _check_answer(plan, index, answer.status, answer.headers.get("content-type", ""),
                      answer.body, validators)


def test_names_that_are_not_identifiers_are_mapped_and_served(
        services: dict[str, Path], apps: list[object]) -> None:
    out = _generated(services, "shapes")
    trees = (out / "gen_shapes" / "trees.py").read_text()
    assert "def get_node(request: models.GetNodeRequest) -> models.Node | Response:" in trees
    assert "def class_(request: models.ClassRequest)" in trees
    aliases = (out / "gen_shapes" / "aliases.py").read_text()
    assert '"get-node": getattr(trees, "get_node", None)' in aliases
    assert '"class": getattr(trees, "class_", None)' in aliases


def test_models_describe_the_schemas(services: dict[str, Path]) -> None:
    models = (_generated(services, "shapes") / "gen_shapes" / "models.py").read_text()
    assert "class Node(TypedDict):\n    name: str\n    children: NotRequired[list[Node]]" \
        in models
    # allOf: one TypedDict with every part's properties; keys that are not identifiers
    assert 'Extended = TypedDict("Extended", {\n    "id": "int",\n    "extra": "str",\n' \
           '    "class": "NotRequired[str]",\n    "x-y": "NotRequired[float]",\n})' in models
    assert """Choice: TypeAlias = 'Literal["a", "b"] | Base | list[list[int]]'""" in models
    assert 'AnyThing: TypeAlias = "int | str"' in models
    assert 'Matrix: TypeAlias = "list[list[Color]]"' in models
    assert 'Free: TypeAlias = "dict[str, Any]"' in models
    assert 'maybe: NotRequired[Literal["yes", "no"] | None]' in models
    # allOf + nullable recursion (a 3.0 idiom): the same model, or None
    assert "class Tree(TypedDict):\n    parent: NotRequired[Tree | None]" in models
    # what each handler receives
    assert "class GetNodeRequest(BaseRequest, Protocol):" in models
    assert "    path_params: GetNodePath\n" in models
    assert "    body: Node\n" in models


def test_params_are_typed_per_location(services: dict[str, Path]) -> None:
    models = (_generated(services, "params") / "gen_params" / "models.py").read_text()
    assert ("class QueryStylesQuery(TypedDict):\n    \"\"\"The query parameters of "
            "query_styles.\"\"\"\n\n    form: list[str]\n    flat: list[int]") in models
    assert "optional: bool" in models  # a default: always there
    assert '"x-trace-id": "str",' in models  # header names as the handler sees them
    assert "    body: SendFormBody\n" in models
    assert "    body: dict[str, Any] | None\n" in models  # an optional multipart body


@pytest.mark.parametrize("name", NAMES)
def test_output_passes_mypy_strict(services: dict[str, Path], name: str,
                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    out = _generated(services, name)
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"
    # NOTE: an editable install is found through an import hook mypy does not follow:
    # MYPYPATH points it at the package's source.
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(cache), f"gen_{name}", "locustfile.py"],
        cwd=out, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_brrt_serve_runs_the_generated_handlers(services: dict[str, Path],
                                                tmp_path: Path) -> None:
    """A real `brrt serve` process on the generated package, over a socket."""
    out = _generated(services, "shapes")
    spec = SPEC_FILES["shapes"]
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRRTR_") and k != "PORT"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "brrt_actors", "serve", str(spec), "--handlers",
             str(out / "gen_shapes"), "--port", "0"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        port = _listening_port(process, log)
        plan = plan_service(spec)
        validators = ValidatorCache()
        for index, op in enumerate(plan.operations):
            sample = op.sample
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request(sample.method, sample.target, body=sample.body,
                                   headers=sample.headers)
                answer = connection.getresponse()
                _check_answer(plan, index, answer.status,
                              answer.getheader("content-type") or "", answer.read(),
                              validators)
            finally:
                connection.close()
    finally:
        process.terminate()
        process.wait(timeout=20)


def _listening_port(process: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(r"listening on http://[^\s:/]+:(\d+)", text)
        if found:
            return int(found.group(1))
        assert process.poll() is None, f"brrt serve exited:\n{text}"
        time.sleep(0.05)
    raise AssertionError(f"brrt serve never listened:\n{log.read_text(errors='replace')}")
