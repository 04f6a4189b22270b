"""The built-in endpoints, in process: bodies, headers, methods, caching, and where they live."""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import yaml

from brrt_actors import create_app
from brrt_actors.app import App
from brrt_actors.builtins import redoc_folder, swagger_ui_folder
from brrt_actors.spec.effective import THIS_SERVER
from brrt_actors.testing import Client, TestResponse
from brrt_actors.watching import spec_digest

ROOT = Path(__file__).resolve().parents[1]
PETSTORE = ROOT / "specs" / "petstore.yaml"

SMALL_SPEC = """
openapi: 3.1.0
info: {title: "Small <one> & co", version: "1"}
servers: [{url: BASE}]
paths:
  /openapi.json:
    get:
      operationId: own_openapi
      responses:
        "200":
          description: Not the spec.
          content:
            application/json:
              schema: {type: object, properties: {mine: {type: boolean}}}
"""


@pytest.fixture()
def app(apps: list[object], petstore_env: dict[str, str]) -> App:
    built = create_app(PETSTORE, "handlers", environ=petstore_env)
    apps.append(built)
    return built


@pytest.fixture()
def client(app: App) -> Client:
    return Client(app)


@pytest.fixture()
def small(apps: list[object], tmp_path: Path) -> Callable[[str], Client]:
    """A client of a small spec served under `base` that owns /openapi.json."""

    def _small(base: str) -> Client:
        path = tmp_path / "small.yaml"
        path.write_text(SMALL_SPEC.replace("BASE", base))
        built = create_app(path, {"own_openapi": lambda request: {"mine": True}})
        apps.append(built)
        return Client(built)

    return _small


def problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status == status, response
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# -- /health and /ready -----------------------------------------------------------------------

def test_health_is_json_and_never_cached(client: Client) -> None:
    response = client.get("/health")
    assert (response.status, response.json()) == (200, {"status": "ok"})
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.body))
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_ready_is_200_then_503_with_retry_after_once_the_app_stops(
        app: App, client: Client) -> None:
    ready = client.get("/ready")
    assert (ready.status, ready.json()) == (200, {
        "status": "ready", "spec": {"title": app.spec.title, "version": app.spec.version,
                                    "sha256": spec_digest(app.spec)}})
    assert ready.headers["content-type"] == "application/json"
    assert ready.headers["cache-control"] == "no-store"
    assert "retry-after" not in ready.headers
    app.stop(0.5)
    draining = client.get("/ready")
    assert (draining.status, draining.json()) == (503, {"status": "draining"})
    assert draining.headers["retry-after"] == "1"
    assert draining.headers["content-length"] == str(len(draining.body))
    assert client.get("/health").status == 200  # alive, only not ready


# -- the spec documents -----------------------------------------------------------------------

def test_openapi_yaml_is_the_same_document_as_openapi_json(app: App, client: Client) -> None:
    as_json = client.get("/openapi.json")
    as_yaml = client.get("/openapi.yaml")
    assert as_json.status == as_yaml.status == 200
    assert as_json.headers["content-type"] == "application/json"
    assert as_yaml.headers["content-type"] == "application/yaml; charset=utf-8"
    document = yaml.safe_load(as_yaml.text)
    assert document == as_json.json() == app.effective_document
    assert document["openapi"] == "3.1.0"
    for response in (as_json, as_yaml):
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])


def test_each_ui_has_the_spec_beside_it(client: Client) -> None:
    spec = client.get("/openapi.json").body
    for path in ("/docs/openapi.json", "/redoc/openapi.json"):
        response = client.get(path)
        assert (response.status, response.body) == (200, spec)
        assert response.headers["content-type"] == "application/json"


def test_a_spec_that_owns_openapi_json_keeps_the_docs_working(
        small: Callable[[str], Client]) -> None:
    client = small("/")
    assert client.get("/openapi.json").json() == {"mine": True}
    document = client.get("/docs/openapi.json").json()
    assert document["info"]["title"] == "Small <one> & co"
    assert "/openapi.json" in document["paths"]
    assert client.get("/docs").status == 200


def test_builtins_stay_at_the_root_under_a_base_path(small: Callable[[str], Client]) -> None:
    client = small("/api/v1")
    assert client.get("/api/v1/openapi.json").json() == {"mine": True}
    for path in ("/health", "/ready", "/openapi.json", "/openapi.yaml", "/docs",
                 "/docs/openapi.json", "/redoc"):
        assert client.get(path).status == 200, path
    assert client.get("/openapi.json").json()["servers"] == [{"url": "/api/v1"}]
    problem(client.get("/api/v1/docs"), 404)


@pytest.mark.parametrize(("declared", "served"), [
    # The first declared server names a host this instance is not on (BRRTRouter's pet store
    # says http://localhost:8081): "Try it out" must call the page's own server instead.
    ([{"url": "http://localhost:8081"}, {"url": "https://api.example.com/v2"}],
     [{"url": "/", "description": THIS_SERVER}, {"url": "http://localhost:8081"},
      {"url": "https://api.example.com/v2"}]),
    ([{"url": "https://api.example.com/v2", "description": "production"}],
     [{"url": "/v2", "description": THIS_SERVER},
      {"url": "https://api.example.com/v2", "description": "production"}]),
    # Already relative to this server: kept as declared, moved first, not repeated.
    ([{"url": "https://api.example.com/v2"}, {"url": "/v2", "description": "here"}],
     [{"url": "/v2", "description": "here"}, {"url": "https://api.example.com/v2"}]),
])
def test_the_spec_lists_the_serving_instance_first(
        apps: list[object], tmp_path: Path, declared: list[dict[str, str]],
        served: list[dict[str, str]]) -> None:
    path = tmp_path / "servers.yaml"
    document = yaml.safe_load(SMALL_SPEC.replace("BASE", "/"))
    document["servers"] = declared
    document["paths"]["/openapi.json"]["servers"] = declared
    path.write_text(yaml.safe_dump(document))
    built = create_app(path, {"own_openapi": lambda request: {"mine": True}})
    apps.append(built)
    effective = Client(built).get("/docs/openapi.json").json()
    assert effective["servers"] == served
    assert effective["paths"]["/openapi.json"]["servers"] == served


# -- the UI pages -------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "title"), [("/docs", "Swagger UI"), ("/redoc", "ReDoc")])
def test_ui_pages_are_html_with_security_headers(
        small: Callable[[str], Client], path: str, title: str) -> None:
    response = small("/").get(path)
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-eval" not in policy
    # The title is escaped; no inline script (the policy forbids it).
    assert f"<title>Small &lt;one&gt; &amp; co - {title}</title>" in response.text
    assert "<script>" not in response.text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_ui_pages_link_only_relative_urls_that_resolve(client: Client, page: str) -> None:
    text = client.get(page).text
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert len(links) >= 2
    for link in links:
        # NOTE: relative links keep working when a proxy serves the app under a prefix.
        assert not link.startswith(("/", "http:", "https:")), link
        target = urljoin(f"http://testserver{page}", link).removeprefix("http://testserver")
        assert client.get(target).status == 200, target


def test_ui_scripts_find_the_spec_beside_themselves(client: Client) -> None:
    for path in ("/docs/init.js", "/redoc/init.js"):
        script = client.get(path).text
        assert 'new URL("openapi.json", document.currentScript.src)' in script
    assert 'layout: "BaseLayout"' in client.get("/docs/init.js").text
    assert "deepLinking: true" in client.get("/docs/init.js").text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_trailing_slash_redirects_to_the_page(client: Client, page: str) -> None:
    response = client.get(page + "/")
    assert response.status == 307
    assert response.headers["location"] == f"..{page}"
    assert response.headers["content-length"] == "0" and response.body == b""
    assert urljoin(f"http://h{page}/", response.headers["location"]) == f"http://h{page}"


# -- static files -------------------------------------------------------------------------------

STATIC = [
    ("/docs/swagger-ui-bundle.js", "application/javascript; charset=utf-8", swagger_ui_folder),
    ("/docs/swagger-ui.css", "text/css; charset=utf-8", swagger_ui_folder),
    ("/docs/index.css", "text/css; charset=utf-8", swagger_ui_folder),
    ("/docs/favicon-32x32.png", "image/png", swagger_ui_folder),
    ("/docs/favicon-16x16.png", "image/png", swagger_ui_folder),
    ("/redoc/redoc.standalone.js", "application/javascript; charset=utf-8", redoc_folder),
    ("/redoc/logo-mini.svg", "image/svg+xml", redoc_folder),
]


@pytest.mark.parametrize(("path", "content_type", "folder"), STATIC)
def test_static_files_come_from_the_package_with_their_type(
        client: Client, path: str, content_type: str, folder: Callable[[], Path]) -> None:
    response = client.get(path)
    assert response.status == 200
    assert response.body == (folder() / path.rsplit("/", 1)[1]).read_bytes()
    assert response.headers["content-type"] == content_type
    assert response.headers["content-length"] == str(len(response.body))
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["etag"]


def test_the_bundle_is_swagger_ui_5() -> None:
    bundle = (swagger_ui_folder() / "swagger-ui-bundle.js").read_text()
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle)
    assert version is not None and int(version.group(1)) >= 5, "OpenAPI 3.1 needs Swagger UI 5"


def test_init_scripts_are_javascript_and_revalidated(client: Client) -> None:
    for path in ("/docs/init.js", "/redoc/init.js"):
        response = client.get(path)
        assert response.status == 200
        assert response.headers["content-type"] == "application/javascript; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("sent", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_a_cached_copy_is_revalidated_with_304(client: Client, sent: str) -> None:
    first = client.get("/docs/swagger-ui.css")
    etag = first.headers["etag"]
    again = client.get("/docs/swagger-ui.css", headers={"If-None-Match": sent.format(etag=etag)})
    assert again.status == 304
    assert again.body == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "public, max-age=86400"


def test_a_stale_copy_gets_the_file_again(client: Client) -> None:
    response = client.get("/docs/swagger-ui.css", headers={"If-None-Match": '"stale"'})
    assert response.status == 200 and response.body


# -- methods and unknown paths ----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json", "/openapi.yaml", "/docs",
                                  "/docs/swagger-ui-bundle.js", "/redoc"])
def test_head_answers_the_headers_of_get_without_a_body(client: Client, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status == got.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.body))
    assert head.headers["content-type"] == got.headers["content-type"]


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/health"), ("PUT", "/ready"), ("DELETE", "/openapi.json"), ("POST", "/docs"),
    ("PATCH", "/docs/swagger-ui.css"),
])
def test_other_methods_are_405_with_allow(client: Client, method: str, path: str) -> None:
    response = client.request(method, path)
    problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", [
    "/docs/x", "/docs/index.html", "/docs/swagger-ui-standalone-preset.js",
    "/docs/../setup.cfg", "/docs/%2e%2e/setup.cfg", "/redoc/x", "/docs/docs/swagger-ui.css",
    "/health/", "/openapi.yml",
])
def test_unknown_builtin_paths_are_404(client: Client, path: str) -> None:
    problem(client.get(path), 404)
