"""Multi-process serving: `brrt serve --workers N` and
`gunicorn -k brrt_actors.entrypoints.gunicorn.Worker`, as real processes on 127.0.0.1; plus the
in-process parts of brrt_actors.entrypoints.gunicorn."""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import psutil
import pytest
import ujson
from gunicorn.config import Config

from brrt_actors import ConfigError
from brrt_actors.entrypoints.commands import check_spec
from brrt_actors.entrypoints.gunicorn import (
    AppFactory,
    SpecApplication,
    Worker,
    app_from_env,
    child_exit,
)
from brrt_actors.entrypoints.gunicorn.application import _bind, _SpecArbiter

ROOT = Path(__file__).resolve().parents[2]
TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_handlers"
PETSTORE = ["specs/petstore.yaml", "--handlers", "handlers",
            "--config", "specs/petstore.config.yaml"]
SLOW = [str(TEST_SPECS / "slow.yaml"), "--handlers", str(FIXTURES / "fx_slow.py")]
KEY = {"X-API-Key": "test123"}
KEY_ENV = {"BRRTR_API_KEY__ApiKeyHeader": "test123",
           "BRRTR_JWT_SECRET__BearerAuth": "test-bearer-secret-0123456789abcdef",
           "BRRTR_JWT_SECRET__OAuth2": "test-oauth2-secret-0123456789abcdef"}
LISTENING_AT = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
WAIT_S = 15
# NOTE: gunicorn >= 25.1 opens a control socket in $HOME unless told not to.
NO_CONTROL_SOCKET = (["--no-control-socket"]
                     if "control_socket_disable" in Config().settings else [])

pytestmark = pytest.mark.slow


def environment(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BRRTR_", "PROMETHEUS_")) and name != "PORT"}
    env.update(KEY_ENV)
    env.update(extra)
    return env


def wait_until(predicate: Callable[[], object], what: str, log: Callable[[], str]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log()}"
        gevent.sleep(0.05)


class Arbiter:
    """A gunicorn arbiter process (started by `brrt serve` or `gunicorn`) and its workers."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, workers: int) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                            stderr=subprocess.STDOUT)
        found = wait_until(lambda: LISTENING_AT.search(self.output) or self.process.poll()
                           is not None, "Listening at", lambda: self.output)
        assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.output}"
        self.port = int(found.group(1))
        self.wait_workers(workers)

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> set[int]:
        try:
            return {child.pid for child in psutil.Process(self.process.pid).children()}
        except psutil.NoSuchProcess:
            return set()

    def wait_workers(self, count: int, avoid: set[int] = frozenset()) -> set[int]:
        """Wait for `count` workers (none of `avoid`), each one accepting."""
        def ready() -> set[int] | None:
            pids = self.workers()
            if len(pids) != count or pids & avoid:
                return None
            return pids if all(self.listening(pid) for pid in pids) else None

        pids: set[int] = wait_until(ready, f"{count} listening workers", lambda: self.output)
        return pids

    def listening(self, pid: int) -> bool:
        return f"[{pid}]" in self.output and any(
            f"[{pid}]" in line and f"listening on http://127.0.0.1:{self.port}" in line
            for line in self.output.splitlines())

    def get(self, path: str, headers: dict[str, str] | None = None,
            timeout: float = 10) -> tuple[int, bytes, int | None]:
        """GET `path` on a new connection; return status, body and the pid that served."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
            client_port = connection.sock.getsockname()[1] if connection.sock else 0
            return response.status, body, self.served_by(client_port)
        finally:
            connection.close()

    def served_by(self, client_port: int) -> int | None:
        # The worker holding the server side of the (still open, keep-alive) connection.
        for pid in self.workers():
            with contextlib.suppress(psutil.NoSuchProcess):
                for conn in psutil.Process(pid).net_connections(kind="tcp"):
                    if (conn.raddr and conn.raddr.port == client_port
                            and conn.laddr.port == self.port):
                        return pid
        return None

    def signal(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=WAIT_S)

    def kill(self) -> None:
        pids = self.workers()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT_S)
        for pid in pids:  # NOTE: orphans of a killed arbiter
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()


@pytest.fixture()
def arbiter(tmp_path: Path) -> Iterator[Callable[..., Arbiter]]:
    started: list[Arbiter] = []

    def start(argv: list[str], *, env: dict[str, str] | None = None,
              workers: int = 2) -> Arbiter:
        served = Arbiter(argv, environment() if env is None else env,
                         tmp_path / f"arbiter-{len(started)}.log", workers)
        started.append(served)
        return served

    yield start
    for served in started:
        served.kill()


def brrt_serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "brrt_actors", "serve", *args, "--port", "0"]


def gunicorn(*args: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-k", "brrt_actors.entrypoints.gunicorn.Worker",
            "-b", "127.0.0.1:0", *NO_CONTROL_SOCKET, *args]


def serving_pids(server: Arbiter, path: str, headers: dict[str, str] | None,
                 want: int) -> tuple[set[int], int]:
    """Request `path` on new connections, 8 at once, until `want` pids served; count 200s."""
    seen: set[int] = set()
    ok = 0
    deadline = time.monotonic() + WAIT_S
    while len(seen) < want and time.monotonic() < deadline:
        batch = [gevent.spawn(server.get, path, headers) for _ in range(8)]
        gevent.joinall(batch, raise_error=True)
        for status, body, pid in (job.value for job in batch):
            assert status == 200, body
            ok += 1
            if pid is not None:
                seen.add(pid)
    return seen, ok


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


# -- brrt serve --workers N --------------------------------------------------------------

def test_workers_share_the_socket_and_metrics_add_up(arbiter: Callable[..., Arbiter]) -> None:
    server = arbiter(brrt_serve(*PETSTORE, "--workers", "2"),
                     env=environment(BRRTR_MAX_CONNECTIONS="50"))
    workers = server.workers()
    assert len(workers) == 2
    options = json.loads(psutil.Process(server.process.pid).cmdline()[-1])
    metrics_dir = Path(options["metrics_dir"])
    assert metrics_dir.is_dir()

    seen, served = serving_pids(server, "/pets/1", KEY, want=2)
    assert seen == workers, server.output

    # Each worker counts its own requests; /metrics, in whichever worker, sums them all.
    status, body, _ = server.get("/metrics")
    assert status == 200
    page = body.decode()
    assert metric(page, "brrt_requests_total", operation_id="get_pet",
                  method="GET", status="200") == served
    # The connections: the scrape's own at least, in the workers' pools of 50 each.
    open_now, idle = metric(page, "brrt_http_connections"), metric(
        page, "brrt_http_connections_idle")
    assert open_now is not None and idle is not None
    assert 0 <= idle < open_now <= 100  # the scraping connection is not idle
    assert metric(page, "brrt_http_connections_limit") == 2 * 50
    assert metric(page, "brrt_http_connections_evicted_total") == 0

    assert server.signal(signal.SIGTERM) == 0
    assert not metrics_dir.exists()
    assert "Traceback" not in server.output


def test_killed_worker_is_replaced(arbiter: Callable[..., Arbiter]) -> None:
    server = arbiter(brrt_serve(*PETSTORE, "--workers", "2"))
    metrics_dir = Path(json.loads(psutil.Process(server.process.pid).cmdline()[-1])
                       ["metrics_dir"])
    old = server.workers()
    victim = min(old)
    wait_until(lambda: list(metrics_dir.glob(f"gauge_live*_{victim}.db")),
               "the worker's live gauges", lambda: server.output)
    os.kill(victim, signal.SIGKILL)
    now = server.wait_workers(2, avoid={victim})
    assert len(now & old) == 1
    # child_exit: the dead worker's live gauges no longer count.
    assert not list(metrics_dir.glob(f"gauge_live*_{victim}.db"))
    for _ in range(6):
        status, body, pid = server.get("/pets/1", KEY)
        assert status == 200, body
        assert pid in now
    assert server.signal(signal.SIGTERM) == 0


def test_sigterm_drains_inflight_request_and_exits_zero(
        arbiter: Callable[..., Arbiter]) -> None:
    server = arbiter(brrt_serve(*SLOW, "--workers", "2"),
                     env=environment(BRRTR_SHUTDOWN_GRACE_S="10"))
    slow = gevent.spawn(server.get, "/slow?seconds=1.5")
    wait_until(lambda: "slow request" in server.output, "the slow request",
               lambda: server.output)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    gevent.sleep(0.3)
    assert refused(server.port)  # the arbiter and the workers closed the socket
    status, body, _ = slow.get(timeout=WAIT_S)
    assert status == 200, body
    assert ujson.loads(body) == {"slept": 1.5}
    assert server.process.wait(timeout=WAIT_S) == 0
    assert time.monotonic() - started < 8  # drained, not cut at the grace period
    assert server.output.count("brrt_actors.server: stopped") == 2


def test_sighup_replaces_workers_and_keeps_serving(arbiter: Callable[..., Arbiter]) -> None:
    server = arbiter(brrt_serve(*PETSTORE, "--workers", "2"))
    old = server.workers()
    server.process.send_signal(signal.SIGHUP)
    new = server.wait_workers(2, avoid=old)
    assert not new & old
    for _ in range(4):
        status, body, pid = server.get("/pets/1", KEY)
        assert status == 200, body
        assert pid in new
    assert server.signal(signal.SIGTERM) == 0


def test_sighup_with_a_broken_spec_keeps_the_old_workers(
        arbiter: Callable[..., Arbiter], tmp_path: Path) -> None:
    spec = tmp_path / "slow.yaml"
    shutil.copy(TEST_SPECS / "slow.yaml", spec)
    server = arbiter(brrt_serve(str(spec), *SLOW[1:], "--workers", "2"))
    old = server.workers()
    spec.write_text("openapi: 3.1.0\npaths: [not, a, mapping]\n")
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in server.output, "reload refused",
               lambda: server.output)
    assert server.workers() == old
    assert server.get("/fast")[0] == 200
    shutil.copy(TEST_SPECS / "slow.yaml", spec)
    server.process.send_signal(signal.SIGHUP)
    server.wait_workers(2, avoid=old)
    assert server.get("/fast")[0] == 200
    assert server.signal(signal.SIGTERM) == 0


def test_sigint_stops_at_once(arbiter: Callable[..., Arbiter]) -> None:
    server = arbiter(brrt_serve(*SLOW, "--workers", "2"),
                     env=environment(BRRTR_SHUTDOWN_GRACE_S="30"))
    slow = gevent.spawn(server.get, "/slow?seconds=8")
    wait_until(lambda: "slow request" in server.output, "the slow request",
               lambda: server.output)
    started = time.monotonic()
    assert server.signal(signal.SIGINT) == 0
    assert time.monotonic() - started < 5
    with pytest.raises(OSError):
        slow.get(timeout=WAIT_S)


def test_start_problems_are_reported_before_forking() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "brrt_actors", "serve", str(TEST_SPECS / "discovery.yaml"),
         "--handlers", str(FIXTURES / "fx_partial.py"), "--workers", "2", "--port", "0"],
        cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "brrt: cannot start:" in done.stderr
    assert "gunicorn" not in done.stderr

    done = subprocess.run(brrt_serve(*PETSTORE, "--workers", "0"), cwd=ROOT,
                          env=environment(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "--workers: 0 is not valid; expected an integer >= 1" in done.stderr

    done = subprocess.run(brrt_serve(*PETSTORE), cwd=ROOT, env=environment(BRRTR_WORKERS="0"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "BRRTR_WORKERS: '0' is not valid; expected an integer >= 1" in done.stderr


def test_workers_from_the_environment(arbiter: Callable[..., Arbiter]) -> None:
    server = arbiter(brrt_serve(*PETSTORE), env=environment(BRRTR_WORKERS="2"))
    seen, _ = serving_pids(server, "/pets/1", KEY, want=2)
    assert seen == server.workers()
    assert server.signal(signal.SIGTERM) == 0


def test_taken_address_is_reported(arbiter: Callable[..., Arbiter]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "brrt_actors", "serve", *SLOW, "--workers", "2",
             "--port", port], cwd=ROOT, env=environment(), capture_output=True, text=True,
            timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


# -- plain gunicorn ---------------------------------------------------------------------

HELLO = '''
import os

def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def test_gunicorn_serves_any_wsgi_app(arbiter: Callable[..., Arbiter], tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(HELLO)
    server = arbiter(gunicorn("-w", "2", "--pythonpath", str(tmp_path), "hello:app"))
    seen, _ = serving_pids(server, "/", None, want=2)
    assert seen == server.workers()
    status, body, pid = server.get("/")
    assert (status, int(body)) == (200, pid)
    assert server.signal(signal.SIGTERM) == 0


COLLECTOR = '''
import gc

def app(environ, start_response):
    body = str(gc.get_threshold()[0]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def test_gunicorn_worker_paces_the_collector_from_the_settings(
        arbiter: Callable[..., Arbiter], tmp_path: Path) -> None:
    (tmp_path / "collector.py").write_text(COLLECTOR)
    server = arbiter(gunicorn("-w", "1", "--pythonpath", str(tmp_path), "collector:app"),
                     env=environment(BRRTR_GC_THRESHOLD="4321"), workers=1)
    status, body, _ = server.get("/")
    assert (status, body) == (200, b"4321")
    assert server.signal(signal.SIGTERM) == 0


def test_gunicorn_worker_takes_the_engine_from_the_settings(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(HELLO)
    done = subprocess.run(gunicorn("-w", "1", "--pythonpath", str(tmp_path), "hello:app"),
                          cwd=ROOT, env=environment(BRRTR_HTTP_ENGINE="nginx"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "BRRTR_HTTP_ENGINE: 'nginx' is not valid; expected one of httptools, pywsgi" in (
        done.stdout + done.stderr)


def test_gunicorn_worker_warns_once_on_the_pywsgi_engine(
        arbiter: Callable[..., Arbiter], tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(HELLO)
    server = arbiter(gunicorn("-w", "1", "--pythonpath", str(tmp_path), "hello:app"),
                     env=environment(BRRTR_HTTP_ENGINE="pywsgi"), workers=1)
    assert server.get("/")[0] == 200
    warnings = [line for line in server.output.splitlines() if "comparison only" in line]
    assert len(warnings) == 1, server.output
    assert "request smuggling" in warnings[0] and "httptools engine in production" in warnings[0]
    assert server.signal(signal.SIGTERM) == 0


def test_gunicorn_max_requests_restarts_the_worker(
        arbiter: Callable[..., Arbiter], tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(HELLO)
    server = arbiter(gunicorn("-w", "1", "--max-requests", "3", "--pythonpath",
                              str(tmp_path), "hello:app"), workers=1)
    first = server.workers()
    pids = {int(server.get("/")[1]) for _ in range(3)}
    assert pids == first
    server.wait_workers(1, avoid=first)
    assert int(server.get("/")[1]) not in first
    assert server.signal(signal.SIGTERM) == 0


def test_gunicorn_reload_restarts_the_worker_on_change(
        arbiter: Callable[..., Arbiter], tmp_path: Path) -> None:
    module = tmp_path / "hello.py"
    module.write_text(HELLO)
    server = arbiter(gunicorn("-w", "1", "--reload", "--pythonpath", str(tmp_path),
                              "hello:app"), workers=1)
    first = server.workers()
    module.write_text(HELLO + "# changed\n")
    server.wait_workers(1, avoid=first)
    assert int(server.get("/")[1]) not in first
    assert server.signal(signal.SIGTERM) == 0


@pytest.mark.parametrize("target", [
    "brrt_actors.entrypoints.gunicorn:app_from_env()",
    'brrt_actors:create_app("specs/petstore.yaml", "handlers", '
    'config_file="specs/petstore.config.yaml")',
])
def test_gunicorn_serves_a_brrt_app_from_a_factory(
        arbiter: Callable[..., Arbiter], target: str) -> None:
    env = environment(BRRTR_SPEC="specs/petstore.yaml", BRRTR_HANDLERS="handlers",
                      BRRTR_CONFIG="specs/petstore.config.yaml")
    server = arbiter(gunicorn("-w", "2", target), env=env)
    status, body, pid = server.get("/pets/1", KEY)
    assert status == 200, body
    assert ujson.loads(body)["id"] == 1
    assert pid in server.workers()
    assert server.get("/pets/1")[0] == 401
    assert server.signal(signal.SIGTERM) == 0
    assert "Traceback" not in server.output


def test_gunicorn_refuses_preload_of_a_brrt_app() -> None:
    env = environment(BRRTR_SPEC="specs/petstore.yaml", BRRTR_HANDLERS="handlers",
                      BRRTR_CONFIG="specs/petstore.config.yaml")
    done = subprocess.run(
        [*gunicorn("--preload", "brrt_actors.entrypoints.gunicorn:app_from_env()")], cwd=ROOT,
        env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3  # gunicorn's "worker failed to boot"
    assert "drop --preload" in done.stderr


def test_gunicorn_worker_boot_error_is_one_clean_line() -> None:
    done = subprocess.run(gunicorn("brrt_actors.entrypoints.gunicorn:app_from_env()"), cwd=ROOT,
                          env=environment(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "cannot start: BRRTR_SPEC: is not set" in done.stderr
    assert "Traceback" not in done.stderr


# -- in process ---------------------------------------------------------------------------

def test_app_from_env_needs_a_spec_and_a_valid_mock_switch() -> None:
    with pytest.raises(ConfigError) as caught:
        app_from_env({"BRRTR_MOCK": "maybe"})
    assert [where for where, _ in caught.value.problems] == ["BRRTR_SPEC", "BRRTR_MOCK"]


def test_app_from_env_builds_the_app() -> None:
    app = app_from_env({"BRRTR_SPEC": str(TEST_SPECS / "slow.yaml"), "BRRTR_MOCK": "on"})
    try:
        assert [op.operation_id for op in app.spec.operations] == ["slow", "fast"]
    finally:
        app.stop(0)


def test_app_factory_check_command() -> None:
    factory = AppFactory("s.yaml", "h", "c.yaml", mock=True, dev=True)
    assert factory.check_command()[1:] == ["-m", "brrt_actors", "check", "s.yaml",
                                           "--handlers", "h", "--config", "c.yaml",
                                           "--mock", "--dev"]
    assert AppFactory("s.yaml").check_command()[1:] == ["-m", "brrt_actors", "check",
                                                        "s.yaml"]


def test_check_spec_with_mock_accepts_missing_handlers() -> None:
    spec, handlers = TEST_SPECS / "discovery.yaml", str(FIXTURES / "fx_partial.py")
    assert check_spec(spec, handlers, io.StringIO(), environ={}) == 1
    assert check_spec(spec, handlers, io.StringIO(), environ={}, mock=True) == 0


def test_spec_application_configures_gunicorn_from_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRRTR_SHUTDOWN_GRACE_S", "7.5")
    monkeypatch.setenv("BRRTR_MAX_CONNECTIONS", "321")
    application = SpecApplication(AppFactory("specs/petstore.yaml"), workers=3, host="::1",
                                  port=9999, log_level="WARNING")
    cfg = application.cfg
    assert cfg.bind == ["[::1]:9999"]
    assert cfg.workers == 3
    assert cfg.worker_class_str == "brrt_actors.entrypoints.gunicorn.Worker"
    assert cfg.graceful_timeout == 10  # the drain, plus time to exit before SIGKILL
    assert cfg.worker_connections == 321
    assert cfg.accesslog is None
    assert cfg.loglevel == "warning"
    assert not cfg.preload_app
    assert _bind("0.0.0.0", 80) == "0.0.0.0:80"


def test_spec_application_takes_the_workers_from_the_settings(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config_file = tmp_path / "brrt.yaml"
    config_file.write_text("server: {workers: 2}\n")
    factory = AppFactory("specs/petstore.yaml", config_file=str(config_file))
    monkeypatch.delenv("BRRTR_WORKERS", raising=False)
    assert SpecApplication(factory).cfg.workers == 2
    monkeypatch.setenv("BRRTR_WORKERS", "5")
    assert SpecApplication(factory).cfg.workers == 5
    assert SpecApplication(factory, workers=3).cfg.workers == 3


def test_arbiter_loads_the_worker_and_runs_again_as_the_package_on_usr2(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_SOFTWARE", "")  # the arbiter sets it; restored after the test
    monkeypatch.setattr(sys, "argv", ["/somewhere/gunicorn/__main__.py", '{"app": {}}'])
    application = SpecApplication(AppFactory("specs/petstore.yaml"), workers=1, port=0,
                                  log_level="WARNING", reexec_as_module=True)
    spec_arbiter = _SpecArbiter(application)
    assert spec_arbiter.worker_class is Worker
    assert spec_arbiter.START_CTX["args"] == [
        sys.executable, "-m", "brrt_actors.entrypoints.gunicorn", '{"app": {}}']


def test_worker_refuses_tls_and_unix_sockets() -> None:
    cfg = Config()
    cfg.set("bind", ["unix:/tmp/brrt.sock"])
    cfg.set("certfile", __file__)
    cfg.set("keyfile", __file__)
    with pytest.raises(RuntimeError, match=r"TLS.*only TCP addresses"):
        Worker.check_config(cfg, None)
    cfg = Config()
    cfg.set("bind", ["127.0.0.1:0"])
    Worker.check_config(cfg, None)


def test_child_exit_marks_the_worker_dead(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    class Dead:
        pid = 4242

    live = tmp_path / "gauge_livesum_4242.db"
    live.write_bytes(b"")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    child_exit(None, Dead())
    assert live.exists()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    child_exit(None, Dead())
    assert not live.exists()
