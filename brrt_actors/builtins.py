"""The runtime's own endpoints: /health, /ready, /openapi.yaml|json, /docs.

Their bodies are built once at start; a spec operation on the same path wins.
"""
from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ujson
import yaml

from .responses import dumps

# (status, headers, body) of a built-in answer.
BuiltinAnswer = tuple[int, list[tuple[str, str]], bytes]
Builtin = Callable[[dict[str, Any]], BuiltinAnswer]

DOCS_PATH = "/docs"

_DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - API docs</title>
  <link rel="stylesheet" href="{docs}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{docs}/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{docs}/swagger-ui-bundle.js"></script>
  <script src="{docs}/swagger-ui-standalone-preset.js"></script>
  <script src="{docs}/init.js"></script>
</body>
</html>
"""

_DOCS_INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
};
"""


def _fixed(status: int, content_type: str, body: bytes) -> Builtin:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]

    def answer(environ: dict[str, Any]) -> BuiltinAnswer:
        return status, list(headers), body

    return answer


def swagger_ui_folder() -> Path:
    """Return the folder of the packaged Swagger UI 5 files."""
    from openapi_ui_bundles import swagger_ui

    return Path(swagger_ui.static_path)


def docs_assets() -> dict[str, Builtin]:
    """Return the Swagger UI static files as built-ins under /docs/."""
    folder = swagger_ui_folder()
    assets: dict[str, Builtin] = {}
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                 "favicon-32x32.png", "favicon-16x16.png"):
        path = folder / name
        if path.exists():
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if content_type.startswith(("text/", "application/javascript")):
                content_type += "; charset=utf-8"
            assets[f"{DOCS_PATH}/{name}"] = _lazy_file(path, content_type)
    assets[f"{DOCS_PATH}/init.js"] = _fixed(200, "application/javascript; charset=utf-8",
                                            _DOCS_INIT.encode())
    return assets


def _once(make: Callable[[], bytes], content_type: str,
          extra: tuple[tuple[str, str], ...] = ()) -> Builtin:
    # NOTE: built on first request, then kept: start-up does not pay for bodies that
    # may never be asked for (the spec dumps, the 1.5 MB Swagger UI bundle).
    cache: list[bytes] = []

    def answer(environ: dict[str, Any]) -> BuiltinAnswer:
        if not cache:
            cache.append(make())
        body = cache[0]
        return 200, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                     *extra], body

    return answer


def _lazy_file(path: Path, content_type: str) -> Builtin:
    return _once(path.read_bytes, content_type, (("Cache-Control", "public, max-age=86400"),))


def build_builtins(document: dict[str, Any], title: str,
                   is_ready: Callable[[], bool]) -> dict[str, Builtin]:
    """Return the built-in endpoints by path (all answer GET and HEAD)."""
    ready_body = dumps({"status": "ready"})
    draining_body = dumps({"status": "draining"})

    def ready(environ: dict[str, Any]) -> BuiltinAnswer:
        if is_ready():
            return 200, [("Content-Type", "application/json"),
                         ("Content-Length", str(len(ready_body)))], ready_body
        return 503, [("Content-Type", "application/json"), ("Retry-After", "1"),
                     ("Content-Length", str(len(draining_body)))], draining_body

    def yaml_body() -> bytes:
        return yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                         sort_keys=False, allow_unicode=True).encode()

    def json_body() -> bytes:
        return ujson.dumps(document, ensure_ascii=False, escape_forward_slashes=False,
                           indent=2).encode()

    html = _DOCS_PAGE.format(title=_html_escape(title), docs=DOCS_PATH).encode()
    builtins: dict[str, Builtin] = {
        "/health": _fixed(200, "application/json", dumps({"status": "ok"})),
        "/ready": ready,
        "/openapi.yaml": _once(yaml_body, "application/yaml; charset=utf-8"),
        "/openapi.json": _once(json_body, "application/json"),
        DOCS_PATH: _fixed(200, "text/html; charset=utf-8", html),
    }
    builtins.update(docs_assets())
    return builtins


def _html_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
