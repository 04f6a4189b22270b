"""A locust plugin of benchmarks/loadtest.py: the CSV stats end with the run's final figures.

Locust rewrites ``<prefix>_stats.csv`` and ``<prefix>_failures.csv`` once a second while it
runs, and not at the end: they miss up to the last second of the run (and what the users
finish while they stop), which its printed summary counts. Loaded beside the locustfile
(``locust -f locustfiles/petstore.py,benchmarks/_locust_final_stats.py --csv PREFIX``), this
writes both again from the final figures when locust quits, with locust's own CSV writer, so
that the CSV files, the printed summary and load_summary.json tell the same counts.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

_environments: list[Environment] = []


def _keep_environment(environment: Environment, **_: Any) -> None:
    _environments.append(environment)


def _write_final_csv(exit_code: int, **_: Any) -> None:
    # NOTE: `quit` fires after the users have stopped and the summary was printed: the
    # figures are final here.
    environment = _environments[-1]
    # NOTE: under --processes the workers have no csv_prefix (locust clears it): only the
    # master, which holds the summed figures, writes.
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    files: tuple[tuple[str, Callable[[Any], None]], ...] = (
        ("_stats.csv", writer.requests_csv), ("_failures.csv", writer.failures_csv))
    for suffix, write in files:
        final = Path(prefix + suffix)
        fresh = final.with_name(final.name + ".final")
        with fresh.open("w") as stream:  # NOTE: opened as locust opens its CSV files
            write(csv.writer(stream))
        # NOTE: a new file put in place, not the old one rewritten: locust's periodic writer
        # still holds the old one open, and whatever it writes there now goes nowhere.
        os.replace(fresh, final)


# NOTE: registered by call, not as decorators, so that the functions stay typed: locust's
# hooks are not.
events.init.add_listener(_keep_environment)  # type: ignore[no-untyped-call]
events.quit.add_listener(_write_final_csv)  # type: ignore[no-untyped-call]
