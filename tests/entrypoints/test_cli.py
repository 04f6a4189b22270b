"""The `brrt` command line, run as real processes (`python -m brrt_actors` and `brrt`)."""
from __future__ import annotations

import base64
import gc
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import jwt as pyjwt
import pytest
import ujson
import yaml

from brrt_actors.security.resolve import dev_jwt_secret

ROOT = Path(__file__).resolve().parents[2]
TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_handlers"
PETSTORE = "specs/petstore.yaml"
KEY_ENV = {"BRRTR_API_KEY__ApiKeyHeader": "test123",
           "BRRTR_JWT_SECRET__BearerAuth": "test-bearer-secret-0123456789abcdef",
           "BRRTR_JWT_SECRET__OAuth2": "test-oauth2-secret-0123456789abcdef"}
KEY = {"X-API-Key": "test123"}

COMMANDS = {
    "module": [sys.executable, "-m", "brrt_actors"],
    "script": [str(Path(sys.executable).parent / "brrt")],
}
LISTENING = re.compile(r"listening on http://(\[[^\]]+\]|[^\s:/]+):(\d+)")
START_TIMEOUT_S = 30
EXIT_TIMEOUT_S = 20

pytestmark = pytest.mark.slow


def environment(**extra: str) -> dict[str, str]:
    """The test process' environment without brrt settings, plus `extra`."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("BRRTR_") and name != "PORT"}
    env.update(extra)
    return env


def brrt(*args: str, command: str = "module", env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMANDS[command], *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=environment() if env is None else env)


class Served:
    """A `brrt serve` process, its output in a file, and a tiny HTTP client for it."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, command: str) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen([*COMMANDS[command], "serve", *args], cwd=ROOT,
                                            env=env, stdout=out, stderr=subprocess.STDOUT)
        self.host, self.port = self._wait_listening()

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _wait_listening(self) -> tuple[str, int]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = LISTENING.search(self.output)
            if found:
                return found.group(1).strip("[]"), int(found.group(2))
            if self.process.poll() is not None:
                raise AssertionError(f"brrt serve exited {self.process.returncode}:\n"
                                     f"{self.output}")
            time.sleep(0.02)
        raise AssertionError(f"brrt serve did not log 'listening on':\n{self.output}")

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while text not in self.output:
            assert time.monotonic() < deadline, f"{text!r} never logged:\n{self.output}"
            gevent.sleep(0.02)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None, timeout: float = 10,
                ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return (response.status, {k.lower(): v for k, v in response.getheaders()},
                    response.read())
        finally:
            connection.close()

    def get(self, path: str, headers: dict[str, str] | None = None,
            timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, headers=headers, timeout=timeout)

    def signal(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=EXIT_TIMEOUT_S)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=EXIT_TIMEOUT_S)


@pytest.fixture()
def serve_cli(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start `brrt serve ARGS` processes (port 0 unless given); all are killed at teardown."""
    started: list[Served] = []

    def _serve_cli(*args: str, env: dict[str, str] | None = None, command: str = "module",
                   port: str | None = "0") -> Served:
        argv = [*args, *(["--port", port] if port is not None else [])]
        served = Served(argv, environment(**KEY_ENV) if env is None else env,
                        tmp_path / f"serve-{len(started)}.log", command)
        started.append(served)
        return served

    yield _serve_cli
    for served in started:
        served.kill()


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


# -- serve ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_serve_petstore_then_sigterm(serve_cli: Callable[..., Served], command: str) -> None:
    server = serve_cli(PETSTORE, "--handlers", "handlers", command=command)
    assert server.port != 0
    assert f"listening on http://127.0.0.1:{server.port}" in server.output
    status, headers, body = server.get("/pets/1", headers=KEY)
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert ujson.loads(body)["id"] == 1
    status, _, _ = server.get("/pets/1")
    assert status == 401
    assert server.get("/health")[0] == 200
    assert server.signal(signal.SIGTERM) == 0
    assert "SIGTERM received" in server.output
    assert "Traceback" not in server.output


def test_sigterm_lets_inflight_request_finish(serve_cli: Callable[..., Served]) -> None:
    env = environment(BRRTR_SHUTDOWN_GRACE_S="30")
    server = serve_cli(str(TEST_SPECS / "slow.yaml"), "--handlers", str(FIXTURES / "fx_slow.py"),
                       env=env)
    assert server.get("/fast")[0] == 200
    slow = gevent.spawn(server.get, "/slow?seconds=1.5")
    server.wait_for("slow request")  # the request is in the handler now
    assert not slow.ready()
    server.process.send_signal(signal.SIGTERM)
    gevent.sleep(0.3)
    assert refused(server.host, server.port)  # no new connections once stopping
    status, headers, body = slow.get(timeout=EXIT_TIMEOUT_S)
    assert status == 200, body
    assert ujson.loads(body) == {"slept": 1.5}
    assert headers["connection"] == "close"
    assert server.process.wait(timeout=EXIT_TIMEOUT_S) == 0
    assert "stopped" in server.output


def test_sigterm_does_not_wait_for_idle_keepalive(serve_cli: Callable[..., Served]) -> None:
    server = serve_cli(str(TEST_SPECS / "slow.yaml"), "--handlers", str(FIXTURES / "fx_slow.py"),
                       env=environment(BRRTR_SHUTDOWN_GRACE_S="60", BRRTR_KEEPALIVE_TIMEOUT_S="60"))
    idle = http.client.HTTPConnection(server.host, server.port, timeout=10)
    idle.request("GET", "/fast")
    assert idle.getresponse().read() == b'{"ok":true}'
    started = time.monotonic()
    try:
        assert server.signal(signal.SIGTERM) == 0
    finally:
        idle.close()
    assert time.monotonic() - started < EXIT_TIMEOUT_S  # well under the 60 s grace


@pytest.mark.parametrize("command", COMMANDS)
def test_sigint_exits_zero(serve_cli: Callable[..., Served], command: str) -> None:
    server = serve_cli(PETSTORE, "--handlers", "handlers", command=command)
    assert server.get("/pets", headers=KEY)[0] == 200
    assert server.signal(signal.SIGINT) == 0
    assert "SIGINT received" in server.output
    assert "KeyboardInterrupt" not in server.output


def test_config_file_supplies_the_key(serve_cli: Callable[..., Served]) -> None:
    server = serve_cli(PETSTORE, "--handlers", "handlers", "--config", "specs/petstore.config.yaml",
                       env=environment())
    assert server.get("/pets/1", headers=KEY)[0] == 200
    assert server.get("/pets/1", headers={"X-API-Key": "wrong"})[0] == 401
    assert server.signal(signal.SIGTERM) == 0


def test_port_from_env(serve_cli: Callable[..., Served]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    server = serve_cli(PETSTORE, "--handlers", "handlers", port=None,
                       env=environment(**KEY_ENV, PORT=str(free)))
    assert server.port == free
    assert server.get("/health")[0] == 200


def test_mock_serves_without_handlers(serve_cli: Callable[..., Served]) -> None:
    server = serve_cli(str(TEST_SPECS / "discovery.yaml"), "--mock", env=environment())
    status, _, body = server.get("/things/3")
    assert status == 200 and ujson.loads(body) == {"id": 7, "from": "example"}
    assert "mock mode" in server.output
    assert server.signal(signal.SIGTERM) == 0


# -- serve refuses to start ----------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_missing_handlers_listed(command: str) -> None:
    result = brrt("serve", str(TEST_SPECS / "discovery.yaml"),
                  "--handlers", str(FIXTURES / "fx_partial.py"), "--port", "0", command=command)
    assert result.returncode == 1
    for pointer in ("/paths/~1things/get", "/paths/~1things/post", "/paths/~1things~1{id}/get"):
        assert pointer in result.stderr
    assert "3 problems" in result.stderr
    assert "listening" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ("serve", PETSTORE, "--handlers", "handlers", "--port", "0"),
    ("check", PETSTORE, "--handlers", "handlers"),
    ("routes", PETSTORE),
])
def test_bad_env_var_names_the_variable(args: tuple[str, ...]) -> None:
    result = brrt(*args, env=environment(**KEY_ENV, BRRTR_HANDLER_WORKERS="abc"))
    assert result.returncode == 1
    assert "BRRTR_HANDLER_WORKERS" in result.stdout + result.stderr
    assert "'abc'" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_unconfigured_key_names_the_variable() -> None:
    result = brrt("serve", PETSTORE, "--handlers", "handlers", "--port", "0")
    assert result.returncode == 1
    assert "ApiKeyHeader" in result.stderr and "BRRTR_API_KEY__ApiKeyHeader" in result.stderr


def test_unconfigured_schemes_are_all_named() -> None:
    result = brrt("serve", PETSTORE, "--handlers", "handlers", "--port", "0")
    assert result.returncode == 1
    assert result.stderr.startswith("brrt: cannot start: 3 problems:")
    for variable in ("BRRTR_API_KEY__ApiKeyHeader", "BRRTR_JWT_SECRET__BearerAuth",
                     "BRRTR_JWT_SECRET__OAuth2"):
        assert variable in result.stderr


def test_dev_serves_unconfigured_schemes_loudly(serve_cli: Callable[..., Served]) -> None:
    server = serve_cli(str(TEST_SPECS / "security_schemes.yaml"), "--mock", "--dev",
                       env=environment())
    assert server.output.count("WARNING brrt_actors.security: DEVELOPMENT DEFAULT") == 5
    assert "DEV MODE" in server.output
    assert server.get("/apikey", headers={"X-API-Key": "dev"})[0] == 200
    assert server.get("/apikey", headers={"X-API-Key": "test123"})[0] == 401
    basic = base64.b64encode(b"dev:dev").decode()
    assert server.get("/basic", headers={"Authorization": f"Basic {basic}"})[0] == 200
    token = brrt("token", "--scheme", "Bearer", "--dev").stdout.strip()
    assert server.get("/bearer", headers={"Authorization": f"Bearer {token}"})[0] == 200
    assert server.signal(signal.SIGTERM) == 0


def test_check_with_dev() -> None:
    spec = str(TEST_SPECS / "security_schemes.yaml")
    assert brrt("check", spec, "--handlers", str(FIXTURES / "fx_partial.py")).returncode == 1
    result = brrt("check", spec, "--dev")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DEVELOPMENT DEFAULT" in result.stderr


# -- token and hash-password -----------------------------------------------------------------

PETSTORE_CONFIG = "specs/petstore.config.yaml"


def config_secret(section: str, scheme: str) -> str:
    config = yaml.safe_load((ROOT / PETSTORE_CONFIG).read_text())
    secret: str = config["security"][section][scheme]["secret"]
    return secret


def test_token_verifies_and_opens_secure(serve_cli: Callable[..., Served]) -> None:
    result = brrt("token", "--scheme", "BearerAuth", "--config", PETSTORE_CONFIG,
                  "--sub", "alice", "--ttl", "120")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = pyjwt.decode(token, config_secret("bearer", "BearerAuth"), algorithms=["HS256"])
    assert claims["sub"] == "alice" and 110 <= claims["exp"] - time.time() <= 121
    assert "scope" not in claims
    server = serve_cli(PETSTORE, "--handlers", "handlers", "--config", PETSTORE_CONFIG,
                       env=environment())
    status, _, body = server.get("/secure", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    assert ujson.loads(body) == {"status": "ok", "scheme": "BearerAuth", "subject": "alice",
                                 "scopes": []}
    read = brrt("token", "--scheme", "OAuth2", "--scope", "read write",
                "--config", PETSTORE_CONFIG).stdout.strip()
    assert pyjwt.decode(read, config_secret("oauth2", "OAuth2"),
                        algorithms=["HS256"])["scope"] == "read write"
    status, _, body = server.get("/secure", headers={"Authorization": f"Bearer {read}"})
    assert status == 200 and ujson.loads(body)["scheme"] == "OAuth2"
    write = brrt("token", "--scheme", "OAuth2", "--scope", "write",
                 "--config", PETSTORE_CONFIG).stdout.strip()
    status, headers, _ = server.get("/secure", headers={"Authorization": f"Bearer {write}"})
    assert status == 403
    assert headers["www-authenticate"] == (
        'Bearer realm="OAuth2", error="insufficient_scope", scope="read"')
    assert server.signal(signal.SIGTERM) == 0


def test_token_env_secret_wins() -> None:
    secret = "env-secret-for-the-token-0123456789"
    result = brrt("token", "--scheme", "BearerAuth", "--config", PETSTORE_CONFIG,
                  env=environment(BRRTR_JWT_SECRET__BEARERAUTH=secret))
    assert pyjwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "user"


def test_token_for_unconfigured_scheme() -> None:
    result = brrt("token", "--scheme", "BearerAuth")
    assert result.returncode == 1
    assert result.stderr == (
        "brrt: cannot start: --scheme BearerAuth: 'BearerAuth' is not configured; brrt token "
        "signs with a shared secret: set BRRTR_JWT_SECRET__BearerAuth or "
        "security.bearer.BearerAuth.secret (or use --dev)\n")
    dev = brrt("token", "--scheme", "BearerAuth", "--dev")
    assert dev.returncode == 0 and "DEVELOPMENT DEFAULT" in dev.stderr
    assert pyjwt.decode(dev.stdout.strip(), dev_jwt_secret("BearerAuth"),
                        algorithms=["HS256"])["sub"] == "user"
    # Each scheme has its own development secret: this token is no OAuth2 token.
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(dev.stdout.strip(), dev_jwt_secret("OAuth2"), algorithms=["HS256"])


def test_token_refuses_public_key_schemes(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("security: {jwks: {BearerAuth: {jwks_url: 'https://idp.example/jwks'}}}\n")
    result = brrt("token", "--scheme", "BearerAuth", "--config", str(config))
    assert result.returncode == 1
    assert "verifies tokens with a public key, JWKS or OIDC" in result.stderr


def test_token_with_spec_picks_the_flat_section(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("security:\n  bearer: {secret: bearer-flat-secret-0123456789abcdef}\n"
                      "  oauth2: {secret: oauth2-flat-secret-0123456789abcdef}\n")
    ambiguous = brrt("token", "--scheme", "OAuth2", "--config", str(config))
    assert ambiguous.returncode == 1 and "--spec" in ambiguous.stderr
    result = brrt("token", "--scheme", "OAuth2", "--config", str(config), "--spec", PETSTORE)
    assert result.returncode == 0, result.stderr
    pyjwt.decode(result.stdout.strip(), "oauth2-flat-secret-0123456789abcdef",
                 algorithms=["HS256"])


def test_hash_password_from_stdin() -> None:
    from brrt_actors.security.basic import parse_password_hash

    result = subprocess.run([*COMMANDS["module"], "hash-password"], cwd=ROOT, input="s3cret\n",
                            capture_output=True, text=True, timeout=60, env=environment())
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("scrypt$16384$") and "s3cret" not in line
    parsed = parse_password_hash(line)
    assert parsed.matches(parsed.derive(b"s3cret"))
    empty = subprocess.run([*COMMANDS["module"], "hash-password"], cwd=ROOT, input="",
                           capture_output=True, text=True, timeout=60, env=environment())
    assert empty.returncode == 1 and "the password is empty" in empty.stderr


def test_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = brrt("serve", PETSTORE, "--handlers", "handlers", "--port", str(port),
                      env=environment(**KEY_ENV))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("serve",), ("serve", PETSTORE, "--port", "x"), ("nope",)])
def test_bad_arguments(args: tuple[str, ...]) -> None:
    result = brrt(*args)
    assert result.returncode == 2
    assert "usage: brrt" in result.stderr


# -- routes --------------------------------------------------------------------------------

def route_table(output: str) -> list[dict[str, str]]:
    header, *lines = output.split("\n\n", 1)[0].splitlines()  # the table, not its sources
    names = header.lower().split()
    rows = []
    for line in lines:
        method, path, operation, *middle, workers, mailbox, policy, deadline = line.split()
        rows.append(dict(zip(names, [method, path, operation, " ".join(middle), workers,
                                     mailbox, policy, deadline], strict=True)))
    return rows


def test_routes_lists_every_operation() -> None:
    result = brrt("routes", PETSTORE)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["METHOD", "PATH", "OPERATION", "SECURITY", "WORKERS", "MAILBOX",
                      "POLICY", "DEADLINE_MS"]
    rows = route_table(result.stdout)
    document = yaml.safe_load((ROOT / PETSTORE).read_text())
    declared = {(method.upper(), path, op["operationId"])
                for path, item in document["paths"].items()
                for method, op in item.items() if isinstance(op, dict) and "operationId" in op}
    assert len(declared) == 22
    assert {(r["method"], r["path"], r["operation"]) for r in rows} == declared
    by_id = {r["operation"]: r for r in rows}
    assert by_id.pop("secure_endpoint")["security"] == "BearerAuth | OAuth2[read]"
    assert all(r["security"] == "ApiKeyHeader" for r in by_id.values())
    # Tuning from the spec's x-brrt-actor shows through.
    assert by_id["list_pets"]["workers"] == "8" and by_id["list_pets"]["deadline_ms"] == "2000"
    assert by_id["get_pet"] == {**by_id["get_pet"], "workers": "4", "mailbox": "1024",
                                "policy": "block", "deadline_ms": "30000"}


def test_routes_shows_security_and_env_tuning() -> None:
    result = brrt("routes", str(TEST_SPECS / "security_apikeys.yaml"),
                  env=environment(BRRTR_HANDLER_WORKERS="2", BRRTR_BACKPRESSURE_MODE="shed",
                                  BRRTR_HANDLER_WORKERS__PUBLIC_OP="7"))
    assert result.returncode == 0, result.stderr
    by_id = {r["operation"]: r for r in route_table(result.stdout)}
    assert by_id["header_op"]["security"] == "HeaderKey"
    assert by_id["either_op"]["security"] == "HeaderKey + QueryKey | CookieKey"
    assert by_id["public_op"]["security"] == "public"
    assert by_id["optional_op"]["security"] == "HeaderKey | anonymous"
    assert by_id["header_op"]["workers"] == "2" and by_id["header_op"]["policy"] == "shed"
    assert by_id["public_op"]["workers"] == "7"


# -- check ---------------------------------------------------------------------------------

def test_check_petstore_ok() -> None:
    result = brrt("check", PETSTORE, "--handlers", "handlers", env=environment(**KEY_ENV))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"{PETSTORE}: OK (22 operations)\n"


def test_check_without_handlers_says_they_were_not_checked() -> None:
    result = brrt("check", PETSTORE, env=environment(**KEY_ENV))
    assert result.returncode == 0, result.stdout + result.stderr
    first, *rest = result.stdout.splitlines()
    assert first == f"{PETSTORE}: OK (22 operations)"
    note = " ".join(line.strip() for line in rest)
    assert note.startswith("handlers: NOT checked (no --handlers). `brrt serve` still needs a "
                           "handlers package or module (--handlers) with a function for each "
                           "operation: add_pet, admin_settings, ")
    assert note.endswith(", upload_file; or --mock to answer them from the spec.")


def test_check_lists_every_problem() -> None:
    spec = str(TEST_SPECS / "broken_three.yaml")
    result = brrt("check", spec)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{spec}: 3 problem(s)"
    pointers = [line.strip().split(": ", 1)[0] for line in lines[1:]]
    assert pointers == [
        "/paths/~1no-id/get",
        "/paths/~1ok/get/security/0/Nope",
        "/paths/~1ok/get/responses/200/content/application~1json/schema/$ref",
    ]
    assert "operationId is missing" in lines[1]
    assert "'Nope'" in lines[2]
    assert "'#/components/schemas/Missing'" in lines[3]


def test_check_missing_handlers() -> None:
    result = brrt("check", str(TEST_SPECS / "discovery.yaml"),
                  "--handlers", str(FIXTURES / "fx_partial.py"))
    assert result.returncode == 1
    assert "3 problem(s)" in result.stdout
    for operation_id in ("list_things", "create_thing", "get_thing"):
        assert f"operation {operation_id!r}" in result.stdout


def test_check_missing_file() -> None:
    result = brrt("check", "specs/does-not-exist.yaml")
    assert result.returncode == 1
    assert "not found" in result.stdout


# -- both entry points are the same program ------------------------------------------------

@pytest.mark.parametrize("args", [
    ("routes", PETSTORE),
    ("check", PETSTORE),
    ("check", str(TEST_SPECS / "broken_three.yaml")),
    ("serve", str(TEST_SPECS / "discovery.yaml"), "--handlers", "fx_does_not_exist"),
    ("--help",),
])
def test_module_and_script_agree(args: tuple[str, ...]) -> None:
    results: list[Any] = [brrt(*args, command=command, env=environment(**KEY_ENV))
                          for command in COMMANDS]
    module, script = results
    assert module.returncode == script.returncode
    assert module.stdout == script.stdout
    assert module.stderr == script.stderr


# -- the entry point -----------------------------------------------------------------------

def test_entry_point_runs_gevent_plugins_like_gevent(tmp_path: Path) -> None:
    # __main__ speeds up patch_all's plugin look-ups; plugins must see the same events.
    (tmp_path / "fx_gevent_plugin.py").write_text(
        "import os\n\n\ndef seen(event):\n"
        "    with open(os.environ['FX_PLUGIN_LOG'], 'a') as out:\n"
        "        out.write(f'{type(event).__name__} {getattr(event, \"module_name\", \"\")}\\n')\n")
    info = tmp_path / "fx_gevent_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fx-gevent-plugin\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[gevent.plugins.monkey.{group}]\nfx = fx_gevent_plugin:seen\n"
        for group in ("will_patch_all", "did_patch_all", "will_patch_module",
                      "did_patch_module", "did_patch_builtins")))
    logs = {}
    for name, code in (("gevent", "from gevent import monkey; monkey.patch_all()"),
                       ("brrt", "import brrt_actors.__main__")):
        log = tmp_path / f"{name}.log"
        env = environment(PYTHONPATH=str(tmp_path), FX_PLUGIN_LOG=str(log))
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
        logs[name] = log.read_text().splitlines()
    assert "GeventWillPatchAllEvent " in logs["gevent"]
    assert "GeventDidPatchModuleEvent socket" in logs["gevent"]
    assert logs["brrt"] == logs["gevent"]


# -- the same library functions, in process ------------------------------------------------

def test_run_check_and_routes_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    from brrt_actors.entrypoints import cli

    spec = str(ROOT / PETSTORE)
    assert cli.run(["check", spec]) == 0
    assert capsys.readouterr().out.startswith(
        f"{spec}: OK (22 operations)\nhandlers: NOT checked (no --handlers).")
    assert cli.run(["check", str(TEST_SPECS / "broken_three.yaml")]) == 1
    assert "3 problem(s)" in capsys.readouterr().out
    assert cli.run(["routes", spec]) == 0
    assert len(route_table(capsys.readouterr().out)) == 22


def test_run_serve_refuses_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    from brrt_actors.entrypoints import cli

    assert cli.run(["serve", str(TEST_SPECS / "discovery.yaml"), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("brrt: cannot start: 4 problems:")


# NOTE: gevent's _tcp_listener does not close its socket when bind() fails; the socket goes
# with the exception, as a ResourceWarning (harmless in `brrt serve`, which exits).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_serve_spec_port_in_use_stops_the_actors(monkeypatch: pytest.MonkeyPatch) -> None:
    from brrt_actors import ConfigError
    from brrt_actors.entrypoints import commands

    built: list[Any] = []
    real = commands.build_app

    def build_app(*args: Any, **kwargs: Any) -> Any:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(commands, "build_app", build_app)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}") as info:
            commands.serve_spec(ROOT / PETSTORE, str(ROOT / "handlers"), port=port,
                                environ=KEY_ENV)
    assert len(built) == 1 and not built[0].started  # no actor was left running
    del info
    gc.collect()  # the leaked socket goes here, while the warning filters apply


# -- token and hash-password, in process -----------------------------------------------------

def test_make_token_carries_iss_and_aud(tmp_path: Path) -> None:
    from brrt_actors.entrypoints import commands

    config = tmp_path / "config.yaml"
    config.write_text("security:\n  bearer:\n    BearerAuth: {secret: in-process-secret-"
                      "0123456789abcdef, iss: 'https://issuer', aud: [a, b]}\n")
    token = commands.make_token("BearerAuth", config_file=str(config), subject="bob",
                                scopes=["read", "write"], ttl_s=60, environ={})
    claims = pyjwt.decode(token, "in-process-secret-0123456789abcdef", algorithms=["HS256"],
                          audience="a", issuer="https://issuer")
    assert claims["sub"] == "bob" and claims["scope"] == "read write"
    assert claims["aud"] == ["a", "b"]


def test_make_token_unknown_scheme_in_spec() -> None:
    from brrt_actors import ConfigError
    from brrt_actors.entrypoints import commands

    with pytest.raises(ConfigError, match="the spec has no security scheme 'Nope'"):
        commands.make_token("Nope", spec=ROOT / PETSTORE, environ={})


def test_hash_password_prompts_twice_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass
    import io

    from brrt_actors import ConfigError
    from brrt_actors.entrypoints import commands
    from brrt_actors.security.basic import parse_password_hash

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["typed", "typed", "one", "two"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    out = io.StringIO()
    assert commands.print_password_hash(out, Terminal()) == 0
    parsed = parse_password_hash(out.getvalue().strip())
    assert parsed.matches(parsed.derive(b"typed"))
    with pytest.raises(ConfigError, match="the passwords differ"):
        commands.print_password_hash(io.StringIO(), Terminal())


# -- output into a pipe whose reader went away (`brrt routes SPEC | head -1`) -----------------

READER_GONE_EXIT = 128 + signal.SIGPIPE


@pytest.mark.parametrize("buffering", ["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [
    ("routes", PETSTORE), ("check", PETSTORE), ("token", "--scheme", "BearerAuth"), ("--help",),
], ids=["routes", "check", "token", "help"])
def test_output_into_a_pipe_nobody_reads_exits_quietly(args: tuple[str, ...],
                                                      buffering: str) -> None:
    # The reader is gone before the first line: every write fails (deterministically, where
    # `| head -1` races the writer). Buffered output fails only at the last flush.
    reader, writer = os.pipe()
    # NOTE: gevent's os.close of a pipe waits for the loop's next turn; the reader must be
    # gone before the child starts, so close it now, unpatched.
    from gevent.monkey import get_original

    get_original("os", "close")(reader)
    env = environment(**KEY_ENV)
    env.pop("PYTHONUNBUFFERED", None)
    if buffering == "unbuffered":
        env["PYTHONUNBUFFERED"] = "1"
    try:
        done = subprocess.run([*COMMANDS["module"], *args], cwd=ROOT, stdout=writer,
                              stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    finally:
        os.close(writer)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    # NOTE: argparse itself ignores a failed write of its help, so unbuffered it exits 0.
    quiet = {0, READER_GONE_EXIT} if args == ("--help",) else {READER_GONE_EXIT}
    assert done.returncode in quiet, done.stderr


# -- issue 11: everything at once, where values come from, --version ----------------------

def test_version() -> None:
    result = brrt("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"brrt \d+\.\d+\.\d+\S* \(Python 3\.\d+\.\d+\S*\)\n", result.stdout)


def test_check_lists_every_family_of_problem_at_once(tmp_path: Path) -> None:
    config = tmp_path / "brrt.yaml"
    config.write_text("server: {colour: blue}\n")
    result = brrt("check", str(TEST_SPECS / "security_schemes.yaml"), "--handlers",
                  str(FIXTURES / "fx_partial.py"), "--config", str(config),
                  env=environment(BRRTR_HANDLER_WORKERS="lots"))
    assert result.returncode == 1
    listed = result.stdout.splitlines()[1:]
    wheres = [line.strip().split(": ", 1)[0] for line in listed]
    # Handlers (spec family) first, then the settings: both in one run.
    assert any("no handler for operation" in line for line in listed), listed
    assert f"{config}" in wheres and "BRRTR_HANDLER_WORKERS" in wheres, listed


def test_check_lists_handlers_settings_and_security_together(tmp_path: Path) -> None:
    result = brrt("check", str(TEST_SPECS / "security_schemes.yaml"), "--handlers",
                  str(FIXTURES / "fx_partial.py"),
                  env=environment(BRRTR_HANDLER_WORKERS__no_such_op="2"))
    assert result.returncode == 1
    listed = result.stdout
    assert "no handler for operation" in listed
    assert "BRRTR_HANDLER_WORKERS__no_such_op: no operation has the operationId" in listed
    assert "security scheme 'Bearer' is used but not configured" in listed


def test_serve_refused_lists_every_problem(tmp_path: Path) -> None:
    result = brrt("serve", str(TEST_SPECS / "discovery.yaml"), "--handlers",
                  str(FIXTURES / "fx_partial.py"), "--port", "0",
                  env=environment(BRRTR_HANDLER_QUEUE_BOUND="none"))
    assert result.returncode == 1
    assert "BRRTR_HANDLER_QUEUE_BOUND" in result.stderr
    for operation_id in ("list_things", "create_thing", "get_thing"):
        assert f"operation {operation_id!r}" in result.stderr


def test_routes_shows_where_each_value_came_from() -> None:
    result = brrt("routes", PETSTORE, env=environment(BRRTR_HANDLER_WORKERS__list_pets="3",
                                                      BRRTR_HANDLER_QUEUE_BOUND="64"))
    assert result.returncode == 0, result.stderr
    by_id = {r["operation"]: r for r in route_table(result.stdout)}
    assert by_id["list_pets"]["workers"] == "3"  # the operator's variable beats x-brrt-actor
    sources = result.stdout.split("\n\n", 1)[1].splitlines()
    assert sources[0] == "where the values come from (the others are built-in defaults):"
    assert "  list_pets: workers from env BRRTR_HANDLER_WORKERS__list_pets" in sources
    assert "  list_pets: deadline_ms from spec /paths/~1pets/get/x-brrt-actor" in sources
    assert "  get_pet: mailbox from env BRRTR_HANDLER_QUEUE_BOUND" in sources


def test_start_log_says_when_an_env_value_overrides_the_spec(
        serve_cli: Callable[..., Served]) -> None:
    server = serve_cli(PETSTORE, "--handlers", "handlers", env=environment(
        **KEY_ENV, BRRTR_HANDLER_DEADLINE_MS__LIST_PETS="1500"))
    server.wait_for("operations ready")
    assert ("BRRTR_HANDLER_DEADLINE_MS__LIST_PETS: 1500 overrides the spec's 2000 for "
            "deadline_ms of 'list_pets' (the operator's variable wins over x-brrt-actor)"
            ) in server.output
    assert server.signal(signal.SIGTERM) == 0


def test_serve_reload_without_watchfiles_says_how_to_get_it(tmp_path: Path) -> None:
    blocker = tmp_path / "watchfiles.py"
    blocker.write_text("raise ImportError('watchfiles is not installed')\n")
    result = brrt("serve", PETSTORE, "--mock", "--reload", "--port", "0",
                  env=environment(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "--reload: needs the watchfiles package: pip install 'brrt_actors[reload]' (or pip "
        "install watchfiles)")
