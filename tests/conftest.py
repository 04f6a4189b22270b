"""Test setup: gevent monkey-patching first, as the entry point does."""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any, Protocol  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:
    from brrt_actors.entrypoints.server import HTTPServer

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
TEST_SPECS = Path(__file__).resolve().parent / "specs"
REFERENCE_PETSTORE = ROOT.parent / "shared" / "reference" / "brrtrouter-petstore.yaml"

# Settings and secrets come from the environment; tests pass their own environ instead.
for _name in list(os.environ):
    if _name.startswith("BRRTR_"):
        del os.environ[_name]


# The secrets of the pet store's security schemes, as the environment gives them.
PETSTORE_BEARER_SECRET = "test-bearer-secret-0123456789abcdef"
PETSTORE_OAUTH2_SECRET = "test-oauth2-secret-0123456789abcdef"
PETSTORE_ENV = {
    "BRRTR_API_KEY__ApiKeyHeader": "test123",
    "BRRTR_JWT_SECRET__BearerAuth": PETSTORE_BEARER_SECRET,
    "BRRTR_JWT_SECRET__OAuth2": PETSTORE_OAUTH2_SECRET,
}


@pytest.fixture()
def petstore_env() -> dict[str, str]:
    """The environment the pet store needs: its API key and its JWT secrets."""
    return dict(PETSTORE_ENV)


@pytest.fixture()
def apps() -> Iterator[list[object]]:
    """Collect apps built by a test and stop their actors afterwards."""
    built: list[object] = []
    yield built
    for app in built:
        app.stop(0.5)  # type: ignore[attr-defined]


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: The two ways brrt's engine calls a brrt app: its direct entry (``App.respond``) or WSGI.
ENTRIES = ("direct", "wsgi")


class WSGIEntry:
    """A brrt app seen through WSGI alone: brrt's engine calls it as any WSGI app.

    Its CORS hook for the engine's own answers is kept (as a WSGI middleware could keep it),
    so that both entries answer alike.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cors_headers = app.cors_headers

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


def entry(app: Any, name: str) -> Any:
    """Return `app` as the engine should call it: ``"direct"`` (itself) or ``"wsgi"``."""
    return app if name == "direct" else WSGIEntry(app)


class Serve(Protocol):
    """What the `serve` fixture returns (annotate a test's `serve` parameter with it)."""

    def __call__(self, app: WSGIApp, *,
                 before_start: Callable[[HTTPServer], object] | None = None,
                 **options: Any) -> HTTPServer: ...


@pytest.fixture()
def serve(apps: list[object]) -> Iterator[Serve]:
    """Serve WSGI apps (brrt Apps or any other) with the project's HTTPServer on real sockets.

    ``serve(app, **options)`` builds an `HTTPServer` on 127.0.0.1, any free port (``host``
    and ``port`` may be given), with any other option of its constructor (``engine``,
    ``max_body_bytes``, ``header_timeout_s``, ``keepalive_timeout_s``, ``max_connections``,
    ...), calls ``before_start(server)`` when given (to patch the engine), starts it and
    returns it: ``server.address`` and ``server.url`` are the bound ones. At teardown the
    servers stop (no grace), then the brrt Apps given are stopped by `apps`.
    """
    # NOTE: imported here, not at the top: a module of the package that fails to import
    # then fails the tests that serve, not the collection of every test module.
    from brrt_actors.app import App
    from brrt_actors.entrypoints.server import HTTPServer

    servers: list[HTTPServer] = []

    def _serve(app: WSGIApp, *, before_start: Callable[[HTTPServer], object] | None = None,
               **options: Any) -> HTTPServer:
        if isinstance(app, str):
            raise TypeError(f"serve(app, engine={app!r}): the app comes first, "
                            "the engine is a keyword")
        if isinstance(app, App) and not any(app is built for built in apps):
            apps.append(app)  # NOTE: `apps` tears down after this fixture: servers stop first
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        server = HTTPServer(app, **options)
        if before_start is not None:
            before_start(server)
        server.start()
        servers.append(server)
        return server

    yield _serve
    for server in servers:
        server.stop(grace_s=0)


# -- apps on the HTTP test spec (tests/http_app.py) ------------------------------------------

@pytest.fixture()
def make_app(apps: list[object]) -> Callable[..., Any]:
    """Build an app on the HTTP spec (or another), stopped after the test."""

    from http_app import ACTOR_DEFAULTS, ACTORS_SPEC, ENV, HTTP_SPEC, http_handlers

    from brrt_actors import create_app

    def make(spec: Path = HTTP_SPEC, handlers: dict[str, Any] | None = None,
             **env: str) -> Any:
        if handlers is None:
            handlers = http_handlers()
        elif spec == ACTORS_SPEC:
            handlers = {**ACTOR_DEFAULTS, **handlers}
        app = create_app(spec, handlers, environ={**ENV, **env})
        apps.append(app)
        return app

    return make


@pytest.fixture()
def client(make_app: Callable[..., Any]) -> Any:
    """An in-process client of an app on the HTTP test spec."""
    from brrt_actors.testing import Client

    return Client(make_app())


# -- a real Redis server (the rate limit's shared storage) -------------------------------------

class RedisServer:
    """A ``redis-server`` on a free loopback port, without persistence, for one test."""

    def __init__(self, folder: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.folder = folder
        self.process: Any = None

    @property
    def url(self) -> str:
        """The ``redis://`` URL of its database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait (at most 10 s) until it answers PING."""
        import socket
        import subprocess
        import time

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)  # NOTE: polling the server's start-up, bounded by the deadline
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def stop(self) -> None:
        """Stop the server (its data is gone: no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started `RedisServer`, stopped after the test (skipped without redis-server;
    failed instead under CI, which installs it: see .ci/run)."""
    import shutil

    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


# -- apps on the observability spec (tests/observability_handlers.py) --------------------------

@pytest.fixture()
def serve_observed(apps: list[object], serve: Serve) -> Callable[..., HTTPServer]:
    """``serve_observed(environ, config=None)``: the observability spec's app on a socket."""
    from observability_handlers import SPEC, handlers

    from brrt_actors import create_app

    def start(environ: dict[str, str], config: Path | None = None) -> HTTPServer:
        app = create_app(SPEC, handlers(), environ=environ, config_file=config)
        apps.append(app)
        return serve(app)

    return start
