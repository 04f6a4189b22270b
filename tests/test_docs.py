"""/docs and /redoc really render in a browser: headless Chromium against a real server.

Swagger UI 4 answers an OpenAPI 3.1 document with "Unable to render this definition"; these
tests hold the runtime to Swagger UI 5 by reading the DOM Chromium built (``--dump-dom``).
"Try it out" needs clicks: that test drives Chromium through the DevTools protocol (a
websocket, `--remote-debugging-port`). Without a `chromium` binary they skip, except in CI
(env CI set), where they fail: .ci/run installs Chromium.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import websocket
import yaml
from conftest import Serve
from gevent.event import AsyncResult
from reference_spec import REFERENCE_PETSTORE, absent_reason

from brrt_actors import create_app

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

pytestmark = pytest.mark.slow

CHROMIUM_TIMEOUT_S = 90
# "Try it out": Chromium has this long to start, and the page (in its script) to answer.
DEVTOOLS_START_S = 10
PAGE_SCRIPT_S = 15
SWAGGER_4_ERROR = "Unable to render this definition"
OPBLOCK = re.compile(r'class="opblock opblock-(get|put|post|delete|options|head|patch|trace)\b')
SUMMARY = re.compile(r'class="opblock-summary-description">([^<]*)<')

# An OpenAPI 3.1 document under a base path that owns /openapi.json (mock mode serves it);
# it uses 3.1-only features: info.summary, license.identifier, type lists, prefixItems,
# top-level webhooks.
SPEC_31 = """
openapi: 3.1.0
info:
  title: Docs <check> & co
  version: "2.0"
  summary: A 3.1 document
  license: {name: MIT, identifier: MIT}
servers:
  - url: BASE
paths:
  /openapi.json:
    get:
      operationId: own_openapi
      summary: The service's own openapi.json
      responses:
        "200":
          description: Not the spec.
          content:
            application/json:
              schema: {type: object}
  /things/{id}:
    get:
      operationId: get_thing
      summary: Read a thing
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses:
        "200":
          description: A thing.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Thing"}
components:
  schemas:
    Thing:
      type: object
      properties:
        name: {type: [string, "null"]}
        tags: {type: array, prefixItems: [{type: string}]}
webhooks:
  thingChanged:
    post:
      summary: A thing changed
      requestBody:
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Thing"}
      responses:
        "200": {description: Taken.}
"""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary; its absence skips the test, or fails it in CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = ("chromium is not installed, so /docs cannot be rendered "
                   "(apt-get install chromium; .ci/run installs it)")
        if _in_ci():
            pytest.fail(f"{message}; CI is set, so this must not skip")
        pytest.skip(message)
    return found


@pytest.fixture()
def render(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Load a URL in headless Chromium and return the DOM once the page has settled."""

    def _render(url: str) -> str:
        profile = tmp_path_factory.mktemp("chromium-profile")
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--virtual-time-budget=10000", "--dump-dom", url,
        ]
        # NOTE: subprocess is gevent-patched (conftest), so the in-process server keeps
        # answering the browser while this greenlet waits.
        done = subprocess.run(command, capture_output=True, timeout=CHROMIUM_TIMEOUT_S,
                              check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        return done.stdout.decode()

    return _render


def _summaries(dom: str) -> list[str]:
    return SUMMARY.findall(dom)


def _assert_swagger_ui_5(dom: str) -> None:
    assert SWAGGER_4_ERROR not in dom
    assert 'class="swagger-ui"' in dom
    assert '<pre class="version">OAS 3.1</pre>' in dom  # the version stamp of Swagger UI 5


def _spec_31(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "docs31.yaml"
    path.write_text(SPEC_31.replace("BASE", base))
    return path


def test_docs_render_every_petstore_operation(
        render: Callable[[str], str], serve: Serve,
        petstore_env: dict[str, str]) -> None:
    app = create_app(SPECS / "petstore.yaml", "handlers", environ=petstore_env)
    dom = render(serve(app).url + "/docs")
    _assert_swagger_ui_5(dom)
    expected = [op.summary for op in app.spec.operations]
    assert len(expected) == 22
    assert len(OPBLOCK.findall(dom)) == len(expected)
    assert sorted(_summaries(dom)) == sorted(html_text(s) for s in expected)
    # Schemas are drawn by the JSON Schema 2020-12 renderer that OpenAPI 3.1 needs.
    assert "json-schema-2020-12" in dom
    assert "<title>brrt_actors pet store - Swagger UI</title>" in dom


def test_docs_render_a_31_document_that_owns_openapi_json(
        render: Callable[[str], str], serve: Serve,
        tmp_path: Path) -> None:
    url = serve(create_app(_spec_31(tmp_path, "/"), mock=True)).url
    dom = render(url + "/docs")
    _assert_swagger_ui_5(dom)
    # The page reads the effective spec, not the operation that took /openapi.json.
    assert sorted(_summaries(dom)) == ["A thing changed", "Read a thing",
                                       "The service's own openapi.json"]
    assert "<title>Docs &lt;check&gt; &amp; co - Swagger UI</title>" in dom
    assert "Webhooks" in dom


def test_docs_render_under_a_base_path_behind_a_proxy_prefix(
        render: Callable[[str], str], serve: Serve,
        tmp_path: Path, apps: list[object]) -> None:
    app = create_app(_spec_31(tmp_path, "/api/v1"), mock=True)
    apps.append(app)
    url = serve(_behind_prefix(app, "/gateway")).url
    dom = render(url + "/gateway/docs")
    _assert_swagger_ui_5(dom)
    assert "Read a thing" in _summaries(dom)
    assert 'data-path="/things/{id}"' in dom
    assert "/api/v1" in dom  # the server the operations are called on


def test_redoc_renders_the_petstore(
        render: Callable[[str], str], serve: Serve,
        petstore_env: dict[str, str]) -> None:
    app = create_app(SPECS / "petstore.yaml", "handlers", environ=petstore_env)
    dom = render(serve(app).url + "/redoc")
    assert "Something went wrong" not in dom
    for operation in app.spec.operations:
        assert html_text(operation.summary) in dom, operation.summary
    assert "<title>brrt_actors pet store - ReDoc</title>" in dom


@pytest.mark.reference
def test_docs_render_the_brrtrouter_petstore(
        render: Callable[[str], str], serve: Serve) -> None:
    if not REFERENCE_PETSTORE.is_file():
        pytest.skip(absent_reason("Swagger UI rendering every operation of BRRTRouter's spec"))
    app = create_app(REFERENCE_PETSTORE, mock=True, environ={})
    dom = render(serve(app).url + "/docs")
    _assert_swagger_ui_5(dom)
    document = yaml.safe_load(REFERENCE_PETSTORE.read_text())
    operations = [op for item in document["paths"].values() for method, op in item.items()
                  if method in ("get", "put", "post", "delete", "options", "head", "patch")]
    assert len(OPBLOCK.findall(dom)) == len(operations) == 22
    assert {html_text(op["summary"]) for op in operations if op.get("summary")} <= set(
        _summaries(dom))


# Run in the /docs page: wait for Swagger UI, give it the API key, open GET /pets, click
# "Try it out" then "Execute", and return what the page shows of the answer. Every wait is
# bounded by one deadline, so a page that never gets there fails with the step it was at.
TRY_GET_PETS = """(async () => {
  const deadline = Date.now() + PAGE_SCRIPT_MS;
  const until = async (find, what) => {
    for (;;) {
      const found = find();
      if (found) return found;
      if (Date.now() > deadline) throw new Error("the page never showed " + what);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  await until(() => window.ui && document.querySelector(".opblock"), "its operations");
  window.ui.preauthorizeApiKey("ApiKeyHeader", "API_KEY");
  const block = await until(() => [...document.querySelectorAll(".opblock-get")].find(
    (op) => op.querySelector(".opblock-summary-path")?.dataset.path === "/pets"), "GET /pets");
  block.querySelector(".opblock-summary-control").click();
  (await until(() => block.querySelector(".try-out__btn"), "Try it out")).click();
  (await until(() => block.querySelector(".btn.execute"), "Execute")).click();
  const status = await until(
    () => block.querySelector(".live-responses-table tbody .response-col_status"),
    "the server's response");
  return {
    status: status.textContent.trim(),
    requestUrl: block.querySelector(".request-url pre")?.textContent ?? "",
    servers: [...document.querySelectorAll(".scheme-container .servers option")]
      .map((option) => option.value),
  };
})()"""


class DevTools:
    """Headless Chromium driven through the DevTools protocol (a websocket per browser)."""

    def __init__(self, chromium: str, profile: Path) -> None:
        self._process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._stderr: list[str] = []
        endpoint: AsyncResult = AsyncResult()
        # NOTE: one greenlet reads Chromium's stderr to its end: it names the DevTools
        # endpoint, and a pipe nobody reads would stall the browser once full.
        self._reader = gevent.spawn(self._read_stderr, endpoint)
        self._ids = itertools.count(1)
        try:
            self._socket = websocket.create_connection(
                endpoint.get(timeout=DEVTOOLS_START_S), timeout=PAGE_SCRIPT_S + 5,
                suppress_origin=True)
        except BaseException:
            self._stop_browser()
            raise

    def _read_stderr(self, endpoint: AsyncResult) -> None:
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr.append(line)
            if line.startswith("DevTools listening on ") and not endpoint.ready():
                endpoint.set(line.split(" on ", 1)[1])
        if not endpoint.ready():
            endpoint.set_exception(RuntimeError(
                "chromium exited without a DevTools endpoint: " + "\n".join(self._stderr[-20:])))

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command; return its result (events in between are dropped)."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        while True:
            answer = json.loads(self._socket.recv())
            if answer.get("id") == number:
                assert "error" not in answer, (method, answer["error"])
                result: dict[str, Any] = answer["result"]
                return result

    def run_in_page(self, url: str, script: str) -> Any:
        """Open `url` in a new tab, run `script` (an expression, awaited) and return its value."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.navigate", session, url=url)
        result = self.call("Runtime.evaluate", session, expression=script, awaitPromise=True,
                           returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"]["value"]

    def close(self) -> None:
        """Close the connection and end the browser."""
        self._socket.close()
        self._stop_browser()

    def _stop_browser(self) -> None:
        self._process.kill()
        self._process.wait()
        self._reader.join(timeout=5)


@pytest.fixture()
def devtools(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    """A headless Chromium to drive, closed after the test."""
    browser = DevTools(chromium, tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.close()


@pytest.mark.reference
@pytest.mark.skipif(not REFERENCE_PETSTORE.is_file(), reason=absent_reason(
    '"Try it out" on /docs calling the server that serves the page'))
def test_try_it_out_calls_the_serving_instance(devtools: DevTools, serve: Serve) -> None:
    # BRRTRouter's spec declares http://localhost:8081 first: "Try it out" must still call
    # the server the page came from (any port), not a server declared in the document.
    app = create_app(REFERENCE_PETSTORE, None, mock=True,
                     environ={"BRRTR_API_KEY__ApiKeyHeader": "test123"})
    url = serve(app).url
    script = (TRY_GET_PETS.replace("PAGE_SCRIPT_MS", str(PAGE_SCRIPT_S * 1000))
              .replace("API_KEY", "test123"))
    shown = devtools.run_in_page(url + "/docs", script)
    assert shown["requestUrl"].startswith(f"{url}/pets"), shown
    assert shown["status"] == "200", shown
    assert shown["servers"][:3] == ["/", "http://localhost:8081", "https://api.example.com"]


def html_text(text: str) -> str:
    """`text` as Chromium serialises it into a text node."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _behind_prefix(app: WSGIApp, prefix: str) -> WSGIApp:
    """A reverse proxy that serves `app` under `prefix` (and strips it on the way in)."""

    def proxied(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raw = environ.get("RAW_URI") or environ["PATH_INFO"]
        if not raw.startswith(prefix + "/"):
            start_response("404 Not Found", [("Content-Length", "0")])
            return []
        environ["RAW_URI"] = raw[len(prefix):]
        environ["PATH_INFO"] = environ["PATH_INFO"][len(prefix):]
        return app(environ, start_response)

    return proxied
