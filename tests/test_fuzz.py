"""schemathesis, every check, a fixed seed, against servers on real sockets: zero failures.

Three specs, each served by the project's HTTPServer on 127.0.0.1 in this process while
schemathesis' command line runs in its own (and on its own CPU):

- the pet store (``specs/petstore.yaml`` with ``handlers/``), with an API key and a bearer
  token, checked against the spec FILE: it must declare every status the runtime answers;
- BRRTRouter's pet store in mock mode, checked against the effective spec the server
  serves (``/openapi.json``): we do not own that spec, and it omits statuses the runtime
  must answer;
- ``tests/specs/fuzz_styles.yaml`` (every parameter style, every body type) with
  ``tests/fuzz_handlers.py``, checked against the spec file.

The few checks switched off for single operations, each with the reason the fuzzer is wrong
there, are in ``tests/schemathesis.toml``. ``FUZZ_EXAMPLES`` (default 12 per operation and
phase), ``FUZZ_SEED`` and ``FUZZ_REPORTS`` (a folder for schemathesis' JSON reports) tune a
run; ``tox -e fuzz`` runs these with many more examples.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import PETSTORE_BEARER_SECRET, PETSTORE_ENV, REFERENCE_PETSTORE, Serve

from brrt_actors import create_app
from brrt_actors.security.jwt import mint_token

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
CONFIG = TESTS / "schemathesis.toml"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
SEED = int(os.environ.get("FUZZ_SEED", "20240909"))
REPORTS = os.environ.get("FUZZ_REPORTS")
# A guard against a hung run, far above a run's length; the examples bound the run.
TIMEOUT_S = 120 + 15 * EXAMPLES
API_KEY = PETSTORE_ENV["BRRTR_API_KEY__ApiKeyHeader"]


def _token() -> str:
    now = int(time.time())
    return mint_token(PETSTORE_BEARER_SECRET, {"sub": "fuzz", "scope": "read write",
                                               "iat": now, "exp": now + 3600})


def schemathesis(name: str, location: str, url: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``schemathesis run`` on `location` against `url`; fail with what it found.

    Returns:
        schemathesis' JSON report (operations, test cases, failures, time).
    """
    reports = Path(REPORTS) if REPORTS else tmp_path
    reports.mkdir(parents=True, exist_ok=True)
    report = reports / f"schemathesis-{name}.json"
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
               "--no-color", "run", location, "--url", url,
               "--seed", str(SEED), "--max-examples", str(EXAMPLES), "--workers", "1",
               "--request-timeout", "10", "--report", "json",
               "--report-json-path", str(report)]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("BRRTR_", "SCHEMATHESIS_"))}
    env.update(FUZZ_API_KEY=API_KEY, FUZZ_BEARER_TOKEN=_token())
    # NOTE: gevent's subprocess: this greenlet waits while the server's greenlets serve.
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    (reports / f"schemathesis-{name}.txt").write_text(done.stdout + done.stderr)
    assert report.exists(), f"schemathesis wrote no report:\n{done.stdout}\n{done.stderr}"
    summary: dict[str, Any] = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(f"schemathesis {name}: {summary['operations']['tested']} operations, "
          f"{cases['generated']} test cases, {cases['unique_failures']} unique failures, "
          f"{summary['running_time']:.1f} s, seed {SEED}, {EXAMPLES} examples")
    found = _failures_section(done.stdout)
    assert not summary["failures"] and not summary["errors"], found
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert summary["operations"]["tested"] == summary["operations"]["selected"] > 0
    return summary


def _failures_section(output: str) -> str:
    """The failures and errors schemathesis printed (the part a reader needs)."""
    start = min((index for index in (output.find("= FAILURES ="), output.find("= ERRORS ="))
                 if index >= 0), default=0)
    end = output.find("= WARNINGS =", start)
    text = output[start:end if end > 0 else None]
    return text if len(text) < 20000 else text[:20000] + "\n... (cut)"


def test_petstore_spec_file(serve: Serve, tmp_path: Path) -> None:
    app = create_app(ROOT / "specs" / "petstore.yaml", handlers=str(ROOT / "handlers"),
                     config_file=ROOT / "specs" / "petstore.config.yaml",
                     environ=PETSTORE_ENV)
    # The store is module state (imported by create_app): start from the seed data.
    importlib.import_module("handlers._store").STORE.reset()
    server = serve(app)
    schemathesis("petstore", str(ROOT / "specs" / "petstore.yaml"), server.url, tmp_path)


@pytest.mark.reference
@pytest.mark.skipif(not REFERENCE_PETSTORE.exists(),
                    reason=f"not fuzzed: BRRTRouter's pet store in mock mode; its spec "
                           f"{REFERENCE_PETSTORE} is absent (README, Development)")
def test_brrtrouter_petstore_mock_effective_spec(serve: Serve, tmp_path: Path) -> None:
    app = create_app(REFERENCE_PETSTORE, mock=True, environ=PETSTORE_ENV)
    server = serve(app)
    schemathesis("brrtrouter", server.url + "/openapi.json", server.url, tmp_path)


def test_fuzz_styles_spec_file(serve: Serve, tmp_path: Path) -> None:
    spec = TESTS / "specs" / "fuzz_styles.yaml"
    app = create_app(spec, handlers=str(TESTS / "fuzz_handlers.py"),
                     environ={})
    server = serve(app)
    schemathesis("fuzz_styles", str(spec), server.url, tmp_path)
