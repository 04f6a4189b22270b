"""benchmarks/engine_inproc.py runs: a tiny run on the repository's own pet store.

Only that it serves every case and exits cleanly is checked here; the figures are the
benchmark's (never timed assertions in tests).
"""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

TIMEOUT_S = 60


def test_engine_inproc_runs_every_case_on_the_repository_pet_store() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BRRTR_")}

    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "engine_inproc.py"), "--target", "repo",
         "--requests", "50", "--rounds", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)

    output = done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode == 0, output
    printed = [line.split()[0] for line in done.stdout.splitlines() if " cpu " in line]
    assert printed == ["get_pet", "list", "post", "mix", "weighted"], output
