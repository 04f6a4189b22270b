"""Run every microbenchmark in this folder (the `bench` tox env).

    python benchmarks/run.py [--fast]
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYPERF_SCRIPTS = ("router.py",)
PLAIN_SCRIPTS = ("actor_hop.py", "pipeline.py", "engine_inproc.py", "auth.py", "metrics.py",
                 "decoding.py")


def main() -> int:
    extra = sys.argv[1:]
    status = 0
    for script in PYPERF_SCRIPTS:
        status |= subprocess.call([sys.executable, str(HERE / script), "--quiet", *extra])
    for script in PLAIN_SCRIPTS:
        status |= subprocess.call([sys.executable, str(HERE / script)])
    return status


if __name__ == "__main__":
    sys.exit(main())
