"""The collector's pace in a serving process: `brrt serve` sets it, building an app does not."""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import ROOT, Served, environment

from brrt_actors.entrypoints.collector import tune_collector

SPEC = """\
openapi: 3.0.3
info: {title: collector probe, version: "1"}
paths:
  /collector:
    get:
      operationId: collector
      responses:
        "200":
          description: the serving process' collector thresholds
          content:
            application/json:
              schema:
                type: object
                properties: {thresholds: {type: array, items: {type: integer}}}
                required: [thresholds]
"""
HANDLERS = """\
import gc


def collector(request):
    return {"thresholds": list(gc.get_threshold())}
"""


@pytest.fixture()
def restore_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_tune_collector_sets_the_young_threshold_only(restore_thresholds: None) -> None:
    gc.set_threshold(700, 11, 12)
    tune_collector(10_000)
    assert gc.get_threshold() == (10_000, 11, 12)
    tune_collector(0)  # 0: left as it is
    assert gc.get_threshold() == (10_000, 11, 12)


def _probe_app(tmp_path: Path) -> tuple[str, str]:
    # The spec and the handlers of an app that answers with its process' thresholds.
    spec, handlers = tmp_path / "collector.yaml", tmp_path / "collector_handlers.py"
    spec.write_text(SPEC)
    handlers.write_text(HANDLERS)
    return str(spec), str(handlers)


@pytest.mark.slow
@pytest.mark.parametrize(("env", "young"), [({}, 10_000), ({"BRRTR_GC_THRESHOLD": "2500"}, 2500),
                                            ({"BRRTR_GC_THRESHOLD": "0"}, None)])
def test_brrt_serve_paces_its_collector(tmp_path: Path, env: dict[str, str],
                                        young: int | None) -> None:
    if young is None:  # 0: Python's own threshold, as a fresh interpreter has it
        young = int(subprocess.check_output(
            [sys.executable, "-c", "import gc; print(gc.get_threshold()[0])"], text=True))
    spec, handlers = _probe_app(tmp_path)
    served = Served([spec, "--handlers", handlers, "--port", "0"], environment(**env),
                    tmp_path / "serve.log", "module")
    try:
        status, _, body = served.get("/collector")
        assert status == 200
        assert json.loads(body)["thresholds"][0] == young
    finally:
        served.kill()


def test_building_an_app_leaves_the_collector_alone(tmp_path: Path) -> None:
    spec, handlers = _probe_app(tmp_path)
    probe = textwrap.dedent(f"""
        import gc
        from brrt_actors import build_app
        before = gc.get_threshold()
        build_app({spec!r}, {handlers!r})
        assert gc.get_threshold() == before, (before, gc.get_threshold())
    """)
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
