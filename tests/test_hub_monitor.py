"""CPU-bound handlers: the watch of the event loop names the operation and counts it."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import greenlet
import pytest
from http_app import ACTORS_SPEC, AUTH

from brrt_actors.handler import Request
from brrt_actors.testing import Client

MakeApp = Callable[..., Any]
SPIN_S = 0.3


def _spin(request: Request) -> dict[str, Any]:
    # CPU-bound: never yields to the hub for SPIN_S seconds.
    end = time.perf_counter() + SPIN_S
    while time.perf_counter() < end:
        pass
    return {}


def _pause(request: Request) -> dict[str, Any]:
    gevent.sleep(SPIN_S)  # waits as long, but yields: not a block
    return {}


def _blocked_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "brrt_actors.hub_monitor"]


def test_a_cpu_bound_handler_is_logged_with_its_operation_and_counted(
        make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(ACTORS_SPEC, {"ping": _spin})  # default BRRTR_MAX_BLOCKING_MS: 100
    client = Client(app)

    with caplog.at_level(logging.WARNING, logger="brrt_actors.hub_monitor"):
        assert client.get("/ping").status == 200

    lines = _blocked_lines(caplog)
    assert len(lines) == 1, lines  # one block, one line, however many periods it lasted
    assert lines[0].startswith("operation ping: its handler kept the event loop busy for over")
    assert "ping-worker-0" in lines[0] and "in _spin" in lines[0]
    assert "threadpool" in lines[0]
    assert app.actors["ping"].hub_blocked == 1
    assert app.actors["slow"].hub_blocked == 0
    page = client.get("/metrics", headers=AUTH).text
    assert 'brrt_hub_blocked_total{operation_id="ping"} 1.0' in page
    assert 'brrt_hub_blocked_total{operation_id="slow"} 0.0' in page


def test_a_handler_that_waits_as_long_is_not_a_block(
        make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(ACTORS_SPEC, {"ping": _pause})

    with caplog.at_level(logging.WARNING, logger="brrt_actors.hub_monitor"):
        assert Client(app).get("/ping").status == 200

    assert _blocked_lines(caplog) == []
    assert app.actors["ping"].hub_blocked == 0


def test_the_watch_is_off_with_zero(make_app: MakeApp,
                                    caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(ACTORS_SPEC, {"ping": _spin}, BRRTR_MAX_BLOCKING_MS="0")

    with caplog.at_level(logging.WARNING, logger="brrt_actors.hub_monitor"):
        assert Client(app).get("/ping").status == 200

    assert not app.hub_monitor.watching
    assert _blocked_lines(caplog) == [] and app.actors["ping"].hub_blocked == 0


def test_apps_share_the_watch_and_no_switch_tracer_is_installed(
        make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    first = make_app(ACTORS_SPEC, {"ping": _spin})
    second = make_app(ACTORS_SPEC, {"ping": _spin})
    shared = first.hub_monitor._watch
    assert shared is not None and second.hub_monitor._watch is shared
    first.stop(0)  # not the last one: the second app is still watched

    with caplog.at_level(logging.WARNING, logger="brrt_actors.hub_monitor"):
        assert Client(second).get("/ping").status == 200

    assert second.actors["ping"].hub_blocked == 1 and first.actors["ping"].hub_blocked == 0
    assert len(_blocked_lines(caplog)) == 1
    # NOTE: the watch counts the loop's turns; a tracer would cost every greenlet switch.
    assert greenlet.gettrace() is None
    second.stop(0)
    assert not second.hub_monitor.watching and not shared.running


def test_the_warm_up_imports_after_listening_are_not_reported(
        make_app: MakeApp, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from brrt_actors import validation

    app = make_app(ACTORS_SPEC, {})
    # The first import of jsonschema and pyjwt blocks the loop for a while, once, on purpose.
    monkeypatch.setattr(validation, "warm_up", lambda: _spin(None))  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG, logger="brrt_actors.hub_monitor"):
        gevent.spawn(app.warm_up).join()
        gevent.sleep(0.25)  # NOTE: the watch reports from its own thread, after the block
        assert Client(app).get("/ping").status == 200
    warnings = [record for record in caplog.records
                if record.name == "brrt_actors.hub_monitor" and record.levelno >= logging.WARNING]
    assert warnings == []
    assert any("App.warm_up" in line for line in _blocked_lines(caplog))


def test_a_block_outside_the_actors_is_logged_with_its_function(
        make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(ACTORS_SPEC, {})
    with caplog.at_level(logging.WARNING, logger="brrt_actors.hub_monitor"):
        gevent.spawn(_spin, None).join()
        gevent.sleep(0.25)  # NOTE: the watch reports from its own thread, after the block

    lines = _blocked_lines(caplog)
    assert len(lines) == 1, lines
    assert lines[0].startswith("the greenlet running _spin kept the event loop busy for over")
    assert "in _spin" in lines[0]
    assert all(actor.hub_blocked == 0 for actor in app.actors)
