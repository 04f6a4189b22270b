"""The rate limit stage, through real sockets: limits from the spec, the config file and the
environment, the 429 answer and its fields, per-client keys, the bounded key table, a limit
shared by two server processes through a real Redis, and Redis going away mid-test."""
from __future__ import annotations

import http.client
import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from http_app import Reply, assert_socket_problem, call
from observability_handlers import HANDLERS_FILE, SPEC, handlers

from brrt_actors import build_app, create_app
from brrt_actors.errors import ConfigError, SpecError

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
SECRET = "rate-limit-test-secret-0123456789abcdef"
ENV = {"BRRTR_API_KEY__ApiKey": "key-one,key-two", "BRRTR_JWT_SECRET__Bearer": SECRET}
FIELD = re.compile(r'"(?P<name>[^"]+)";r=(?P<r>\d+);t=(?P<t>\d+)\Z')


@pytest.fixture()
def served(serve_observed: Callable[..., Any]) -> Callable[..., Any]:
    """Serve the observability spec with this module's ENV plus `env` (and a config file)."""
    def start(config: Path | None = None, **env: str) -> Any:
        return serve_observed({**ENV, **env}, config)

    return start


def _remaining(reply: Reply) -> int:
    found = FIELD.match(reply.headers["ratelimit"])
    assert found, reply.headers
    return int(found["r"])


def _token(subject: str, token_id: str = "1") -> str:
    return pyjwt.encode({"sub": subject, "jti": token_id, "exp": int(time.time()) + 600},
                        SECRET, "HS256")


def test_spec_limit_counts_down_then_answers_429(served: Callable[..., Any]) -> None:
    server = served()
    replies = [call(server, "/limited") for _ in range(3)]
    assert [reply.status for reply in replies] == [200, 200, 200]
    assert [_remaining(reply) for reply in replies] == [2, 1, 0]
    assert {reply.headers["ratelimit-policy"] for reply in replies} == {'"limited";q=3;w=60'}

    refused = call(server, "/limited")
    body = assert_socket_problem(refused, 429)
    assert body["title"] == "Too Many Requests" and "3 requests" in body["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-policy"] == '"limited";q=3;w=60'
    assert _remaining(refused) == 0
    # An operation without a limit has no stage: no fields, never 429.
    free = [call(server, "/free") for _ in range(5)]
    assert all(reply.status == 200 and "ratelimit" not in reply.headers for reply in free)


def test_api_keys_and_subjects_have_counts_of_their_own(served: Callable[..., Any]) -> None:
    server = served()
    one, two = {"X-API-Key": "key-one"}, {"X-API-Key": "key-two"}
    assert [call(server, "/keyed", headers=one).status for _ in range(2)] == [200, 200]
    refused = call(server, "/keyed", headers=one)
    body = assert_socket_problem(refused, 429)
    assert "key-one" not in refused.body.decode() and "key-one" not in str(refused.headers)
    assert call(server, "/keyed", headers=two).status == 200
    alice = {"Authorization": f"Bearer {_token('alice')}"}
    assert [call(server, "/keyed", headers=alice).status for _ in range(3)] == [200, 200, 429]
    # Another token of the same subject shares alice's count; bob has his own.
    assert call(server, "/keyed", headers={"Authorization": f"Bearer {_token('alice', '2')}"}
                ).status == 429
    assert call(server, "/keyed", headers={"Authorization": f"Bearer {_token('bob')}"}
                ).status == 200
    assert body["instance"] == "/keyed"


def test_forwarded_for_is_believed_only_from_trusted_proxies(
        served: Callable[..., Any]) -> None:
    untrusted = served()
    spoofed = [call(untrusted, "/limited", headers={"X-Forwarded-For": f"10.0.0.{i}"})
               for i in range(4)]
    assert [reply.status for reply in spoofed] == [200, 200, 200, 429]

    behind_proxy = served(BRRTR_RATE_LIMIT_TRUSTED_PROXIES="127.0.0.0/8, 192.168.0.0/16")
    for client in ("203.0.113.7", "203.0.113.8"):
        chain = {"X-Forwarded-For": f"{client}, 192.168.1.1"}  # client, then a trusted hop
        assert [call(behind_proxy, "/limited", headers=chain).status for _ in range(4)] == [
            200, 200, 200, 429]
    # Garbage in the chain: the last trusted hop counts as the client, not the garbage.
    garbage = [call(behind_proxy, "/limited", headers={"X-Forwarded-For": f"x{i}, 192.168.1.1"})
               for i in range(4)]
    assert [reply.status for reply in garbage] == [200, 200, 200, 429]


def test_memory_key_table_is_bounded_by_max_keys(served: Callable[..., Any]) -> None:
    server = served(BRRTR_RATE_LIMIT_TRUSTED_PROXIES="127.0.0.1", BRRTR_RATE_LIMIT_MAX_KEYS="2",
                    BRRTR_RATE_LIMIT__limited="1/minute")

    def status(client: str) -> int:
        return call(server, "/limited", headers={"X-Forwarded-For": client}).status

    assert [status("203.0.113.1"), status("203.0.113.1")] == [200, 429]
    assert [status("203.0.113.2"), status("203.0.113.3")] == [200, 200]
    # The table holds two counters: the oldest (203.0.113.1's) went, its count starts again.
    assert status("203.0.113.1") == 200
    assert status("203.0.113.3") == 429


def test_config_file_and_environment(served: Callable[..., Any], tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('rate_limit:\n  limit: "2/minute"\n'
                      '  operations: {free: off, keyed: "1/minute"}\n')
    server = served(config, BRRTR_RATE_LIMIT__limited="1/minute")
    # The per-operation variable beats the spec's x-rate-limit (3/minute).
    assert [call(server, "/limited").status for _ in range(2)] == [200, 429]
    # The file's default applies to operations without a limit of their own ...
    assert [call(server, "/items/1").status for _ in range(3)] == [200, 200, 429]
    # ... and `off` takes one out.
    assert all(call(server, "/free").status == 200 for _ in range(5))


def test_brrtrouter_rate_limit_section_loads_as_it_is(served: Callable[..., Any],
                                                       tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("rate_limit:\n  enabled: true\n  requests: 2\n  window_secs: 30\n"
                      "  max_keys: 100\n  key: ip\n  skip_options: true\n"
                      "  routes: {getItem: 1}\n")
    server = served(config)
    replies = [call(server, "/free") for _ in range(3)]
    assert [reply.status for reply in replies] == [200, 200, 429]
    assert replies[0].headers["ratelimit-policy"] == '"free";q=2;w=30'
    assert [call(server, "/items/1").status for _ in range(2)] == [200, 429]

    # As in BRRTRouter, its keys without `enabled: true` limit nothing (the log says so).
    config.write_text("rate_limit:\n  requests: 1\n")
    caplog.set_level(logging.WARNING)
    quiet = served(config)
    assert all(call(quiet, "/free").status == 200 for _ in range(3))
    assert "apply only with enabled: true" in caplog.text


def test_bad_limits_stop_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"BRRTR_RATE_LIMIT: 'lots' is not valid"):
        build_app(SPEC, handlers(), environ={**ENV, "BRRTR_RATE_LIMIT": "lots"})
    with pytest.raises(ConfigError, match=r"BRRTR_RATE_LIMIT__nosuch: no operation"):
        build_app(SPEC, handlers(), environ={**ENV, "BRRTR_RATE_LIMIT__nosuch": "1/second"})
    with pytest.raises(ConfigError, match=r"BRRTR_RATE_LIMIT_STORAGE: 'mongodb://u:\*\*\*@db"):
        build_app(SPEC, handlers(), environ={**ENV,
                                              "BRRTR_RATE_LIMIT_STORAGE": "mongodb://u:pw@db/"})
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.read_text().replace('x-rate-limit: "3/minute"', "x-rate-limit: 3"))
    with pytest.raises(SpecError, match=r"/paths/~1limited/get/x-rate-limit: 3 is not valid"):
        build_app(spec, handlers(), environ=ENV)
    config = tmp_path / "config.yaml"
    config.write_text("rate_limit:\n  operations: {nosuch: 1/second}\n  burst: 3\n")
    with pytest.raises(ConfigError) as raised:
        build_app(SPEC, handlers(), environ=ENV, config_file=config)
    assert "rate_limit.burst: unknown key" in str(raised.value)


# -- Redis: one limit for several processes, and Redis going away ---------------------------

class _Process:
    """A `brrt serve` process of the observability spec on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "brrt_actors", "serve", str(SPEC), "--handlers",
                 str(HANDLERS_FILE), "--port", "0"], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not (found := re.search(r"listening on http://127\.0\.0\.1:(\d+)",
                                      log.read_text(errors="replace"))):
            assert self.process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)  # NOTE: polling another process' start-up, bounded
        self.port = int(found.group(1))

    def get(self, path: str) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path)
            return Reply(connection.getresponse())
        finally:
            connection.close()


@pytest.fixture()
def processes(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], _Process]]:
    import os

    started: list[_Process] = []

    def start(env: dict[str, str]) -> _Process:
        base = {name: value for name, value in os.environ.items()
                if not name.startswith("BRRTR_") and name != "PORT"}
        process = _Process({**base, **ENV, **env}, tmp_path / f"serve-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(10)


@pytest.mark.slow
def test_two_processes_share_one_limit_through_redis(redis_server: Any,
                                                     processes: Callable[..., _Process]) -> None:
    env = {"BRRTR_RATE_LIMIT_STORAGE": redis_server.url, "BRRTR_RATE_LIMIT__limited": "4/minute"}
    first, second = processes(env), processes(env)
    statuses = [process.get("/limited").status for process in (first, second, first, second)]
    assert statuses == [200, 200, 200, 200]
    # The fifth request overall is over the limit, whichever process gets it.
    assert first.get("/limited").status == 429
    assert second.get("/limited").status == 429
    assert "ratelimit" not in second.get("/free").headers


def test_redis_down_fails_open_logged_and_counted(redis_server: Any, apps: list[object],
                                                  serve: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(SPEC, handlers(), environ={
        **ENV, "BRRTR_RATE_LIMIT_STORAGE": redis_server.url, "BRRTR_RATE_LIMIT__limited":
        "100/minute", "BRRTR_RATE_LIMIT_STORAGE_TIMEOUT_MS": "500"})
    apps.append(app)
    server = serve(app)
    assert _remaining(call(server, "/limited")) == 99
    caplog.set_level(logging.WARNING, logger="brrt_actors.rate_limit")
    redis_server.stop()
    # Open: served without the fields, one error logged for the whole outage, each counted.
    outage = [call(server, "/limited") for _ in range(3)]
    assert [reply.status for reply in outage] == [200, 200, 200]
    assert all("ratelimit" not in reply.headers for reply in outage)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot be reached" in errors[0].getMessage()
    assert redis_server.url.split("@")[-1].split("/")[2] in errors[0].getMessage()
    metrics = call(server, "/metrics").body.decode()
    assert "brrt_rate_limit_storage_errors_total 3.0" in metrics
    # Back: counting again from a fresh Redis (no persistence), and the log says so.
    redis_server.start()
    assert _remaining(call(server, "/limited")) == 99
    assert "answers again" in caplog.text


def test_redis_down_fails_closed_when_asked(redis_server: Any, apps: list[object],
                                            serve: Any) -> None:
    app = create_app(SPEC, handlers(), environ={
        **ENV, "BRRTR_RATE_LIMIT_STORAGE": redis_server.url,
        "BRRTR_RATE_LIMIT_ON_STORAGE_ERROR": "closed"})
    apps.append(app)
    server = serve(app)
    assert call(server, "/limited").status == 200
    redis_server.stop()
    refused = call(server, "/limited")
    body = assert_socket_problem(refused, 503)
    assert refused.headers["retry-after"] == "1" and "rate limit" in body["detail"]
    assert call(server, "/free").status == 200  # operations without a limit never ask Redis


def test_a_reload_with_redis_storage_keeps_its_error_counter(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('rate_limit:\n  limit: "2/minute"\n  storage: "redis://127.0.0.1:9"\n')
    first = build_app(SPEC, handlers(), environ=ENV, config_file=config)
    try:
        # NOTE: a reload builds the stages again with the first app's figures: the storage
        # error counter must not be registered twice (prometheus_client refuses that).
        second = build_app(SPEC, handlers(), environ=ENV, config_file=config, previous=first)
        second.stop(0)
    finally:
        first.stop(0)
