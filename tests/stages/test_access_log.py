"""The access log and the JSON runtime log format, through real sockets (and a real `brrt
serve` process for what the command line writes)."""
from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import ujson
from http_app import call
from observability_handlers import HANDLERS_FILE, SPEC

from brrt_actors.stages import access_log

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
SECRET = "access-log-test-secret-0123456789abcdef"
API_KEY = "key-that-must-never-be-logged"
ENV = {"BRRTR_API_KEY__ApiKey": API_KEY, "BRRTR_JWT_SECRET__Bearer": SECRET}
FIELDS = {"time", "request_id", "method", "route", "operation_id", "status", "duration_ms",
          "mailbox_wait_ms", "bytes", "principal", "scheme", "client", "trace_id"}


@pytest.fixture()
def served(serve_observed: Callable[..., Any]) -> Callable[..., Any]:
    """Serve the observability spec with this module's ENV plus `env` (and a config file)."""
    def start(config: Path | None = None, **env: str) -> Any:
        return serve_observed({**ENV, **env}, config)

    return start


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [ujson.loads(record.getMessage()) for record in caplog.records
            if record.name == access_log.ACCESS_LOGGER]


def test_off_by_default(served: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=access_log.ACCESS_LOGGER)
    assert call(served(), "/free").status == 200
    assert _lines(caplog) == []


def test_one_json_line_per_request_without_credentials(
        served: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=access_log.ACCESS_LOGGER)
    server = served(BRRTR_ACCESS_LOG="1", BRRTR_TRACING="1")
    token = pyjwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, SECRET, "HS256")
    secrets = {"Authorization": f"Bearer {token}", "Cookie": "session=cookie-secret-value"}
    ok = call(server, "/keyed", headers=secrets)
    by_key = call(server, "/keyed", headers={"X-API-Key": API_KEY})
    missing = call(server, "/items/0")
    assert (ok.status, by_key.status, missing.status) == (200, 200, 404)

    lines = _lines(caplog)
    assert len(lines) == 3 and all(set(line) == FIELDS for line in lines)
    first, second, third = lines
    assert first["request_id"] == ok.headers["x-request-id"]
    assert (first["method"], first["route"], first["operation_id"], first["status"]) == (
        "GET", "/keyed", "keyed", 200)
    assert (first["principal"], first["scheme"]) == ("alice", "Bearer")
    assert first["bytes"] == int(ok.headers["content-length"])
    assert first["duration_ms"] >= first["mailbox_wait_ms"] >= 0
    assert first["trace_id"] == ok.headers["traceparent"].split("-")[1]
    assert first["client"] == "127.0.0.1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert (second["principal"], second["scheme"]) == (None, "ApiKey")
    assert (third["route"], third["status"]) == ("/items/{id}", 404)
    assert third["bytes"] == int(missing.headers["content-length"])
    text = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (token, "cookie-secret-value", API_KEY):
        assert secret not in text


def test_refused_before_the_actor_has_no_mailbox_wait(
        served: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=access_log.ACCESS_LOGGER)
    server = served(BRRTR_ACCESS_LOG="1")
    assert call(server, "/keyed").status == 401
    (line,) = _lines(caplog)
    assert (line["status"], line["mailbox_wait_ms"], line["principal"]) == (401, None, None)


def test_sample_rate_logs_a_share(served: Callable[..., Any],
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=access_log.ACCESS_LOGGER)
    server = served(BRRTR_ACCESS_LOG="1", BRRTR_ACCESS_LOG_SAMPLE="0.25")
    random.seed(10)
    for _ in range(80):
        assert call(server, "/free").status == 200
    assert 0 < len(_lines(caplog)) < 80


def test_no_line_is_built_when_the_logger_is_off(served: Callable[..., Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    monkeypatch.setattr(access_log, "_line", lambda *args: built.append(args) or "{}")
    monkeypatch.setattr(logging.getLogger(access_log.ACCESS_LOGGER), "level", logging.WARNING)
    server = served(BRRTR_ACCESS_LOG="1")
    assert call(server, "/free").status == 200
    assert built == []


@pytest.mark.slow
def test_brrt_serve_writes_json_logs_and_access_lines(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("BRRTR_") and name != "PORT"}
    env.update(ENV, BRRTR_LOG_FORMAT="json", BRRTR_ACCESS_LOG="1")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "brrt_actors", "serve", str(SPEC), "--handlers",
             str(HANDLERS_FILE), "--port", "0"], cwd=ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"listening on http://127\.0\.0\.1:(\d+)",
                                      log.read_text(errors="replace"))):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)  # NOTE: polling another process' start-up, bounded
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=5)
        connection.request("GET", "/free", headers={"X-API-Key": API_KEY})
        assert connection.getresponse().status == 200
        connection.close()
        deadline = time.monotonic() + 10
        while '"operation_id":"free"' not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)  # NOTE: the line is written by another process
    finally:
        process.kill()
        process.wait(10)
    records = [ujson.loads(line) for line in log.read_text().splitlines() if line.strip()]
    listening = next(r for r in records if "listening on" in r.get("message", ""))
    assert {"level", "logger", "message", "time"} <= set(listening)
    access = next(r for r in records if r.get("operation_id") == "free")
    assert set(access) == FIELDS and access["status"] == 200
    assert API_KEY not in log.read_text()
