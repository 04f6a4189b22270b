"""brrt_actors: serve an OpenAPI spec on gevent, one actor per operation.

    from brrt_actors import build_app, create_app, Request, Response, HTTPError

`build_app` compiles an app (nothing runs), ``app.start()`` starts its actors, and
`create_app` does both. The app is a WSGI callable; `brrt serve` runs it on the project's
gevent HTTP engine.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from brrt_actors.errors import ConfigError, HTTPError, SpecError
from brrt_actors.handler import Principal, Request, Response, UploadedFile

if TYPE_CHECKING:
    from brrt_actors.app import App
    from brrt_actors.build import build_app, create_app

__all__ = [
    "App",
    "ConfigError",
    "HTTPError",
    "Principal",
    "Request",
    "Response",
    "SpecError",
    "UploadedFile",
    "build_app",
    "create_app",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # NOTE: the app (and with it gevent) is imported on first use, so that an entry point
    # can monkey-patch before anything gevent-related is imported.
    if name == "App":
        from brrt_actors import app

        return app.App
    if name in ("build_app", "create_app"):
        from brrt_actors import build

        return getattr(build, name)
    raise AttributeError(f"module 'brrt_actors' has no attribute {name!r}")
