"""Building an app compiles everything and starts nothing; starting and stopping are apart."""
from __future__ import annotations

import gc
import io
from pathlib import Path
from typing import Any

import gevent
import greenlet
import pytest
from conftest import PETSTORE_ENV, ROOT

from brrt_actors import build_app, create_app
from brrt_actors.entrypoints import commands
from brrt_actors.testing import Client

PETSTORE = ROOT / "specs" / "petstore.yaml"
HANDLERS = str(ROOT / "handlers")


def _greenlets() -> int:
    """Count the live greenlets (those of earlier tests may still be ending, never starting)."""
    gevent.get_hub()  # NOTE: the hub itself is a greenlet, made on first use
    gevent.sleep(0)
    gc.collect()
    return sum(1 for thing in gc.get_objects()
               if isinstance(thing, greenlet.greenlet) and not thing.dead)


def _many_workers_spec(tmp_path: Path, operations: int = 10, workers: int = 1000) -> Path:
    paths = "".join(
        f"  /op{index}:\n    get:\n      operationId: op{index}\n"
        f"      x-brrt-actor: {{workers: {workers}}}\n"
        f"      responses: {{'200': {{description: ok}}}}\n"
        for index in range(operations))
    spec = tmp_path / "many.yaml"
    spec.write_text(f"openapi: 3.0.3\ninfo: {{title: Many, version: '1'}}\npaths:\n{paths}")
    return spec


def test_building_starts_no_greenlet() -> None:
    before = _greenlets()
    app = build_app(PETSTORE, HANDLERS, environ=PETSTORE_ENV)
    assert not app.started and not app.ready
    assert all(not actor.workers for actor in app.actors)
    assert _greenlets() <= before
    app.stop(0)


def test_a_built_app_is_not_ready_and_refuses_operations_until_started() -> None:
    app = build_app(PETSTORE, HANDLERS, environ=PETSTORE_ENV)
    client = Client(app)
    assert client.get("/ready").status == 503
    refused = client.get("/pets/1", headers={"X-API-Key": "test123"})
    assert refused.status == 503 and refused.headers["retry-after"]
    app.start()
    try:
        assert client.get("/ready").status == 200
        assert client.get("/pets/1", headers={"X-API-Key": "test123"}).status == 200
        with pytest.raises(RuntimeError, match="started once"):
            app.start()
    finally:
        app.stop(0.5)
    assert not app.ready


def test_routes_of_ten_thousand_workers_start_no_greenlet(tmp_path: Path) -> None:
    spec = _many_workers_spec(tmp_path)
    before = _greenlets()
    out = io.StringIO()
    assert commands.print_routes(spec, None, out) == 0
    rows = out.getvalue().split("\n\n", 1)[0].splitlines()[1:]  # the table, not its sources
    assert len(rows) == 10
    assert all(" 1000 " in row for row in rows)
    assert _greenlets() <= before


def test_check_starts_no_greenlet(tmp_path: Path) -> None:
    spec = _many_workers_spec(tmp_path)
    before = _greenlets()
    out = io.StringIO()
    assert commands.check_spec(spec, None, out) == 0
    assert "OK (10 operations)" in out.getvalue()
    assert _greenlets() <= before


def test_two_apps_in_one_process_share_no_compiled_state(apps: list[Any]) -> None:
    first = create_app(PETSTORE, HANDLERS, environ=PETSTORE_ENV)
    second = create_app(PETSTORE, HANDLERS, environ=PETSTORE_ENV)
    apps.extend([first, second])
    pipelines = [dict(((m, t), p) for m, t, p in app.router.routes()) for app in (first, second)]
    key = ("GET", "/pets/{id}")
    assert pipelines[0][key].actor is not pipelines[1][key].actor
    first.stop(0.5)
    # The second app goes on serving after the first one stopped.
    answer = Client(second).get("/pets/1", headers={"X-API-Key": "test123"})
    assert answer.status == 200
