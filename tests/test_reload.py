"""Hot reload (`brrt serve --reload`, brrt_actors.reload): a new version swapped in with no
request lost, a broken one refused while the old one serves."""
from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import ujson

from brrt_actors.app import App
from brrt_actors.build import build_app
from brrt_actors.reload import Reloader, reimport_changed
from brrt_actors.testing import Client
from brrt_actors.watching import WatchSet, spec_digest, watch_set

ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"listening on http://([^\s:/]+):(\d+)")
# What the issue asks: a new route answers, a removed one 404s, within 2 s of the change.
SWAP_WITHIN_S = 2.0

_OPERATION = """
  {path}:
    get:
      operationId: {operation_id}
      parameters:
        - {{name: n, in: query, schema: {{type: {n_type}}}}}
      responses:
        "200":
          description: ok
          content: {{application/json: {{schema: {{type: object}}}}}}
"""


def spec_text(version: str, operations: dict[str, str], n_type: str = "string") -> str:
    """A spec of `operations` (path -> operationId), each with a query parameter `n`."""
    paths = "".join(_OPERATION.format(path=path, operation_id=operation_id, n_type=n_type)
                    for path, operation_id in operations.items())
    return (f'openapi: 3.0.3\ninfo: {{title: reloading, version: "{version}"}}\n'
            f"paths:{paths}")


HANDLERS = """
def get_a(request):
    return {"a": %d}

def get_b(request):
    return {"b": 1}
"""


def write(path: Path, text: str) -> None:
    # NOTE: into a new file, then renamed over the old one, as editors save: the watcher
    # never sees half a file.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


@pytest.fixture()
def service(tmp_path: Path) -> tuple[Path, Path]:
    """A spec with one operation (/a) and a plain folder of handlers, in `tmp_path`."""
    spec = tmp_path / "api.yaml"
    write(spec, spec_text("1", {"/a": "get_a"}))
    handlers = tmp_path / f"reload_handlers_{uuid.uuid4().hex}"
    handlers.mkdir()
    write(handlers / "ops.py", HANDLERS % 1)
    return spec, handlers


# -- in one process: the swap itself -------------------------------------------------------

@pytest.fixture()
def reloading(service: tuple[Path, Path], apps: list[object]) -> Iterator[Reloader]:
    spec, handlers = service

    def build(previous: App | None = None) -> App:
        return build_app(spec, str(handlers), environ={}, previous=previous)

    app = build().start()
    apps.append(app)
    yield Reloader(app, build, lambda: watch_set(spec, None, handlers), grace_s=1.0)
    for name in [n for n in sys.modules if n.startswith(handlers.name)]:
        del sys.modules[name]


def test_a_reload_keeps_unchanged_actors_and_drains_removed_ones(
        service: tuple[Path, Path], reloading: Reloader) -> None:
    spec, _ = service
    app = reloading.app
    client = Client(app)
    actor_a = app.actors["get_a"]
    write(spec, spec_text("2", {"/a": "get_a", "/b": "get_b"}))
    assert reloading.reload([spec])
    assert app.actors["get_a"] is actor_a  # same handler, same settings: kept
    assert client.get("/b").json() == {"b": 1}
    actor_b = app.actors["get_b"]
    assert actor_b.workers  # started before it was routed to

    write(spec, spec_text("3", {"/a": "get_a"}))
    assert reloading.reload([spec])
    assert client.get("/b").status == 404
    assert client.get("/a").json() == {"a": 1}
    deadline = time.monotonic() + 5
    while not all(worker.dead for worker in actor_b.workers):
        assert time.monotonic() < deadline, "the removed operation's actor was not drained"
        gevent.sleep(0.01)
    assert app.spec.version == "3"
    ready = client.get("/ready").json()
    assert ready["spec"] == {"title": "reloading", "version": "3",
                             "sha256": spec_digest(app.spec)}
    assert ready["reload"] == {"watching": True, "reloads": 2, "failed": 0, "error": None}


def test_a_changed_handler_module_is_reimported(service: tuple[Path, Path],
                                                reloading: Reloader) -> None:
    _, handlers = service
    app = reloading.app
    actor_a = app.actors["get_a"]
    write(handlers / "ops.py", HANDLERS % 2)
    assert reloading.reload([handlers / "ops.py"])
    assert Client(app).get("/a").json() == {"a": 2}
    assert app.actors["get_a"] is not actor_a  # a new handler: a new actor


def test_a_broken_spec_leaves_the_old_version_serving(service: tuple[Path, Path],
                                                       reloading: Reloader) -> None:
    spec, handlers = service
    app = reloading.app
    client = Client(app)
    write(spec, spec_text("2", {"/a": "get_a", "/c": "get_c"}) + "  broken: [\n")
    assert not reloading.reload([spec])
    write(spec, spec_text("2", {"/a": "get_a", "/c": "get_c"}))  # no handler for get_c
    assert not reloading.reload([spec])
    assert client.get("/a").json() == {"a": 1}
    assert client.get("/c").status == 404
    ready = client.get("/ready")
    assert ready.status == 200
    body = ready.json()
    assert body["spec"]["version"] == "1"
    assert body["reload"]["failed"] == 2 and body["reload"]["reloads"] == 0
    problems = body["reload"]["error"]["problems"]
    assert problems == [{"where": "/paths/~1c/get",
                         "message": "no handler for operation 'get_c' (GET /c): define a "
                                    "function named 'get_c' in the handlers, or serve with "
                                    "--mock"}]
    metrics = client.get("/metrics").text
    assert 'brrt_reloads_total{result="failed"} 2.0' in metrics
    assert 'brrt_reloads_total{result="ok"} 0.0' in metrics
    write(handlers / "ops.py", HANDLERS % 1 + "\ndef get_c(request):\n    return {'c': 1}\n")
    assert reloading.reload([handlers / "ops.py"])
    assert client.get("/c").json() == {"c": 1}
    assert client.get("/ready").json()["reload"]["error"] is None


def test_reimport_changed_reloads_a_package_that_re_exports(tmp_path: Path) -> None:
    package = tmp_path / f"reexport_{os.getpid()}"
    package.mkdir()
    (package / "__init__.py").write_text("from .ops import ping\n")
    write(package / "ops.py", "def ping(request):\n    return 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        module = __import__(package.name)
        first = module.ping
        write(package / "ops.py", "def ping(request):\n    return 2\n")
        names = reimport_changed([package / "ops.py"], [package])
        assert names == [f"{package.name}.ops", package.name]
        assert module.ping is not first and module.ping(None) == 2
        assert sys.modules[f"{package.name}.ops"].ping is module.ping
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith(package.name)]:
            del sys.modules[name]


def test_watch_set_names_the_spec_its_refs_the_config_and_the_handlers(
        tmp_path: Path) -> None:
    (tmp_path / "schemas.yaml").write_text("Thing: {type: object}\n")
    spec = tmp_path / "api.yaml"
    spec.write_text(spec_text("1", {"/a": "get_a"}).replace(
        "{schema: {type: object}}", "{schema: {$ref: 'schemas.yaml#/Thing'}}"))
    handlers = tmp_path / "hs"
    (handlers / "sub").mkdir(parents=True)
    watched = watch_set(spec, tmp_path / "brrt.yaml", handlers)
    assert watched == WatchSet(frozenset({spec, tmp_path / "schemas.yaml",
                                          tmp_path / "brrt.yaml"}), frozenset({handlers}))
    assert watched.concerns(handlers / "sub" / "x.py")
    assert not watched.concerns(handlers / "notes.txt")
    assert not watched.concerns(tmp_path / "other.yaml")
    assert watched.folders() == sorted([tmp_path, handlers, handlers / "sub"])


# -- a real server under steady load -------------------------------------------------------

class Load:
    """Greenlets asking a server for `path` over keep-alive connections, every few ms."""

    def __init__(self, host: str, port: int, path: str, clients: int = 4) -> None:
        self.host, self.port, self.path = host, port, path
        self.answers: list[int] = []
        self.failures: list[str] = []
        self._running = True
        self._greenlets = [gevent.spawn(self._run) for _ in range(clients)]

    def _run(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        while self._running:
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                response.read()
                self.answers.append(response.status)
                if response.status != 200:
                    self.failures.append(f"{response.status}")
            except (OSError, http.client.HTTPException) as ex:
                self.failures.append(repr(ex))
                connection.close()
                connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
            gevent.sleep(0.005)
        connection.close()

    def stop(self) -> None:
        self._running = False
        gevent.joinall(self._greenlets, timeout=15)


class Server:
    """`brrt serve ... --reload` in a process of its own."""

    def __init__(self, args: list[str], log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRRTR_")}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "brrt_actors", "serve", *args, "--port", "0"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.log = log
        deadline = time.monotonic() + 30
        while not (found := LISTENING.search(log.read_text())):
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            gevent.sleep(0.02)
        self.host, self.port = found.group(1), int(found.group(2))

    def get(self, path: str) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            return response.status, ujson.loads(body) if body[:1] in b"{[" else body
        finally:
            connection.close()

    def wait_for(self, path: str, status: int, within_s: float, what: str) -> float:
        started = time.monotonic()
        while self.get(path)[0] != status:
            assert time.monotonic() - started < within_s, (
                f"{what}: GET {path} did not answer {status} within {within_s} s\n"
                f"{self.log.read_text()}")
            gevent.sleep(0.02)
        return time.monotonic() - started

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(*args: str) -> Server:
        started.append(Server(list(args), tmp_path / f"serve-{len(started)}.log"))
        return started[-1]

    yield start
    for each in started:
        if each.process.poll() is None:
            each.process.kill()
            each.process.wait(timeout=30)


def completed(server: Server, operation_id: str) -> float:
    _, page = server.get("/metrics")
    found = re.search(rf'brrt_actor_completed_total{{operation_id="{operation_id}"}} (\S+)',
                      page.decode())
    assert found, page
    return float(found.group(1))


@pytest.mark.slow
def test_no_request_fails_while_versions_are_swapped(
        service: tuple[Path, Path], server: Callable[..., Server]) -> None:
    spec, handlers = service
    served = server(str(spec), "--handlers", str(handlers), "--reload")
    load = Load(served.host, served.port, "/a?n=7")
    try:
        gevent.sleep(0.3)
        before = completed(served, "get_a")
        # Add an operation.
        write(spec, spec_text("2", {"/a": "get_a", "/b": "get_b"}))
        served.wait_for("/b", 200, SWAP_WITHIN_S, "a new operation")
        # get_a's actor was kept: its counter went on, it did not start again from 0.
        assert completed(served, "get_a") >= before > 0
        # Change a schema: `n` becomes an integer.
        assert served.get("/a?n=seven")[0] == 200
        write(spec, spec_text("3", {"/a": "get_a", "/b": "get_b"}, n_type="integer"))
        served.wait_for("/a?n=seven", 400, SWAP_WITHIN_S, "a changed schema")
        # Remove an operation.
        write(spec, spec_text("4", {"/a": "get_a"}, n_type="integer"))
        served.wait_for("/b", 404, SWAP_WITHIN_S, "a removed operation")
        # Break the spec: the old version goes on serving, /ready says why.
        write(spec, spec_text("5", {"/a": "get_a"}) + "  broken: [\n")
        started = time.monotonic()
        while served.get("/ready")[1]["reload"]["failed"] == 0:
            assert time.monotonic() - started < SWAP_WITHIN_S, served.log.read_text()
            gevent.sleep(0.02)
        status, ready = served.get("/ready")
        assert status == 200 and ready["spec"]["version"] == "4"
        assert "line" in ready["reload"]["error"]["problems"][0]["message"]
        gevent.sleep(0.3)
    finally:
        load.stop()
    assert load.failures == [], load.failures[:10]
    assert len(load.answers) > 100
    assert served.get("/a?n=7") == (200, {"a": 1})
    _, page = served.get("/metrics")
    assert b'brrt_reloads_total{result="ok"} 3.0' in page
    assert b'brrt_reloads_total{result="failed"} 1.0' in page
    assert served.stop() == 0


def status_or_error(server: Server, path: str) -> int | str:
    try:
        return server.get(path)[0]
    except (OSError, http.client.HTTPException) as ex:
        return repr(ex)


@pytest.mark.slow
def _reload_done(log: str, *, workers: int) -> bool:
    # The workers booted after the SIGHUP all listen.
    after = log.partition("Handling signal: hup")[2]
    booted = re.findall(r"Booting worker with pid: (\d+)", after)
    return len(booted) >= workers and all(
        f"[{pid}] brrt_actors.server: listening on" in after for pid in booted)


def test_workers_reload_through_the_arbiter(service: tuple[Path, Path],
                                            server: Callable[..., Server]) -> None:
    spec, handlers = service
    served = server(str(spec), "--handlers", str(handlers), "--reload", "--workers", "2")
    assert served.get("/b")[0] == 404
    write(spec, spec_text("2", {"/a": "get_a", "/b": "get_b"}))
    # NOTE: gunicorn checks the new version in a subprocess, boots new workers, then stops
    # the old ones: until they are gone, some requests still reach the old version.
    deadline = time.monotonic() + 30
    while [status_or_error(served, "/b") for _ in range(10)] != [200] * 10:
        assert time.monotonic() < deadline, served.log.read_text()
        gevent.sleep(0.05)
    # NOTE: the reload is over once both new workers listen and both old ones left. A spec
    # broken while new workers still boot stops them (gunicorn reads the files at boot):
    # a known limit of reloading under --workers, documented in the README.
    while not _reload_done(served.log.read_text(), workers=2):
        assert time.monotonic() < deadline, served.log.read_text()
        gevent.sleep(0.05)
    write(spec, spec_text("3", {"/a": "get_a", "/b": "get_b"}) + "  broken: [\n")
    while "reload refused" not in served.log.read_text():
        assert time.monotonic() < deadline, served.log.read_text()
        gevent.sleep(0.05)
    assert [served.get("/b")[0] for _ in range(10)] == [200] * 10
    assert served.stop() == 0
