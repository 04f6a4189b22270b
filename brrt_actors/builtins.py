"""The runtime's own endpoints: /health, /ready, /metrics, /openapi.yaml|json, /docs, /redoc.

Their bodies are built once (the big ones on first request); a spec operation on the same
path wins. /docs is Swagger UI 5 and /redoc is ReDoc 2, both served from the
`openapi-ui-bundles` package (no CDN), so that OpenAPI 3.1 documents render offline.
"""
from __future__ import annotations

import hashlib
import html
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ujson
import yaml

from brrt_actors.stages.response import dumps

# (status, headers, body) of a built-in answer.
BuiltinAnswer = tuple[int, list[tuple[str, str]], bytes]
Builtin = Callable[[dict[str, Any]], BuiltinAnswer]

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"

# SECURITY: no built-in body may be sniffed into another type (a spec's text as HTML).
_NOSNIFF = ("X-Content-Type-Options", "nosniff")
# SECURITY: the UI pages run only their own scripts and cannot be framed (clickjacking on
# "Try it out"). Styles need 'unsafe-inline' (React/styled-components set them); "Try it out"
# may call any server the spec lists, so connect-src stays open; ReDoc's search runs in a
# blob: worker.
_PAGE_HEADERS = (
    _NOSNIFF,
    ("Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
     "img-src 'self' data: https:; font-src 'self' data:; connect-src *; "
     "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
)
_STATIC_CACHE = ("Cache-Control", "public, max-age=86400")

# NOTE: every URL in the pages is relative ("docs/x" from "/docs"), and the scripts find the
# spec next to themselves, so the pages also work behind a reverse proxy that adds a prefix.
# The spec is served inside each UI's folder too, so a spec that owns /openapi.json (or any
# other root path) does not take the document away from the UI.
_DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - Swagger UI</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="stylesheet" href="docs/index.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/init.js"></script>
</body>
</html>
"""

_DOCS_INIT = """(function () {
  "use strict";
  var spec = new URL("openapi.json", document.currentScript.src).href;
  window.addEventListener("load", function () {
    window.ui = SwaggerUIBundle({
      url: spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      displayRequestDuration: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    });
  });
})();
"""

_REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - ReDoc</title>
  <link rel="icon" type="image/svg+xml" href="redoc/logo-mini.svg">
  <style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
  <div id="redoc"></div>
  <script src="redoc/redoc.standalone.js"></script>
  <script src="redoc/init.js"></script>
</body>
</html>
"""

_REDOC_INIT = """(function () {
  "use strict";
  var spec = new URL("openapi.json", document.currentScript.src).href;
  Redoc.init(spec, {}, document.getElementById("redoc"));
})();
"""

_JS = "application/javascript; charset=utf-8"
_SWAGGER_FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "index.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": _JS,
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
_REDOC_FILES = {
    "redoc.standalone.js": _JS,
    "logo-mini.svg": "image/svg+xml",
}


def swagger_ui_folder() -> Path:
    """Return the folder of the packaged Swagger UI 5 files."""
    from openapi_ui_bundles import swagger_ui

    return Path(swagger_ui.static_path)


def redoc_folder() -> Path:
    """Return the folder of the packaged ReDoc files."""
    from openapi_ui_bundles import redoc

    return Path(redoc.static_path)


def _fixed(status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> Builtin:
    all_headers = [*headers, ("Content-Length", str(len(body)))]

    def answer(environ: dict[str, Any]) -> BuiltinAnswer:
        return status, list(all_headers), body

    return answer


def _once(make: Callable[[], bytes], content_type: str,
          extra: tuple[tuple[str, str], ...] = ()) -> Builtin:
    # NOTE: built on first request, then kept: start-up does not pay for bodies that
    # may never be asked for (the spec dumps, the 1.5 MB Swagger UI bundle). The ETag lets
    # a browser revalidate its cached copy with a 304 instead of fetching it again.
    cache: list[tuple[bytes, str]] = []

    def answer(environ: dict[str, Any]) -> BuiltinAnswer:
        if not cache:
            body = make()
            cache.append((body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'))
        body, etag = cache[0]
        if etag_matches(environ.get("HTTP_IF_NONE_MATCH"), etag):
            return 304, [("ETag", etag), *extra, ("Content-Length", "0")], b""
        return 200, [("Content-Type", content_type), ("ETag", etag), _NOSNIFF, *extra,
                     ("Content-Length", str(len(body)))], body

    return answer


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Tell whether an ``If-None-Match`` value matches `etag` (weak comparison, RFC 9110)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


def _static(folder: Path, files: dict[str, str], prefix: str) -> dict[str, Builtin]:
    return {f"{prefix}/{name}": _once((folder / name).read_bytes, content_type, (_STATIC_CACHE,))
            for name, content_type in files.items() if (folder / name).is_file()}


def _ui(prefix: str, page: str, init: str, title: str, spec_json: Builtin) -> dict[str, Builtin]:
    # /docs/ would resolve the page's relative URLs to /docs/docs/...; send it to /docs.
    redirect = (("Location", f"..{prefix}"), ("Cache-Control", "no-cache"))
    return {
        prefix: _fixed(200, (("Content-Type", "text/html; charset=utf-8"), *_PAGE_HEADERS),
                       page.format(title=html.escape(title)).encode()),
        f"{prefix}/": _fixed(307, redirect, b""),
        f"{prefix}/init.js": _once(init.encode, _JS, (("Cache-Control", "no-cache"),)),
        f"{prefix}/openapi.json": spec_json,
    }


def build_builtins(document: dict[str, Any], title: str, is_ready: Callable[[], bool],
                   metrics: Builtin | None = None,
                   ready_details: Callable[[], Mapping[str, Any]] | None = None,
                   ) -> dict[str, Builtin]:
    """Return the built-in endpoints by path (all answer GET and HEAD).

    Args:
        metrics: the /metrics endpoint (`brrt_actors.metrics.figures.Metrics.endpoint`), if on.
        ready_details: what /ready adds to ``"status": "ready"`` (the spec served, the last
            hot reload), read at each probe.
    """
    json_type = ("Content-Type", "application/json")
    no_store = ("Cache-Control", "no-store")
    ready_headers = (json_type, _NOSNIFF, no_store)
    draining_answer = _fixed(503, (json_type, _NOSNIFF, no_store, ("Retry-After", "1")),
                             dumps({"status": "draining"}))

    def ready(environ: dict[str, Any]) -> BuiltinAnswer:
        if not is_ready():
            return draining_answer(environ)
        details = ready_details() if ready_details is not None else {}
        body = dumps({"status": "ready", **details})
        return 200, [*ready_headers, ("Content-Length", str(len(body)))], body

    def yaml_body() -> bytes:
        return yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                         sort_keys=False, allow_unicode=True).encode()

    def json_body() -> bytes:
        return ujson.dumps(document, ensure_ascii=False, escape_forward_slashes=False,
                           indent=2).encode()

    no_cache = (("Cache-Control", "no-cache"),)
    spec_json = _once(json_body, "application/json", no_cache)
    builtins: dict[str, Builtin] = {
        "/health": _fixed(200, (json_type, _NOSNIFF, no_store), dumps({"status": "ok"})),
        "/ready": ready,
        "/openapi.yaml": _once(yaml_body, "application/yaml; charset=utf-8", no_cache),
        "/openapi.json": spec_json,
    }
    if metrics is not None:
        builtins["/metrics"] = metrics
    builtins.update(_ui(DOCS_PATH, _DOCS_PAGE, _DOCS_INIT, title, spec_json))
    builtins.update(_static(swagger_ui_folder(), _SWAGGER_FILES, DOCS_PATH))
    builtins.update(_ui(REDOC_PATH, _REDOC_PAGE, _REDOC_INIT, title, spec_json))
    builtins.update(_static(redoc_folder(), _REDOC_FILES, REDOC_PATH))
    return builtins
