"""What each gunicorn worker builds, and the check, in a fresh process, that it can start.

`AppFactory` holds `brrt_actors.create_app`'s arguments as plain values (they cross the
``exec`` into the arbiter as JSON); each worker calls it after the fork. `app_from_env` is
the factory for people who run gunicorn themselves. `AppFactory.check` runs ``brrt check``
in a subprocess, so that the arbiter, which never builds an app, can refuse a reload that
would not start.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from brrt_actors.errors import ConfigError

if TYPE_CHECKING:
    from brrt_actors.app import App

__all__ = ["CONFIG_ENV", "HANDLERS_ENV", "MOCK_ENV", "SPEC_ENV", "AppFactory", "app_from_env"]

#: The environment variables `app_from_env` reads.
SPEC_ENV = "BRRTR_SPEC"
HANDLERS_ENV = "BRRTR_HANDLERS"
CONFIG_ENV = "BRRTR_CONFIG"
MOCK_ENV = "BRRTR_MOCK"

_CHECK_TIMEOUT_S = 120
_SWITCHES = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True, slots=True)
class AppFactory:
    """What each worker builds: `brrt_actors.create_app`'s arguments, as plain values.

    Calling it builds the app; `SpecApplication` calls it in each worker process.

    Attributes:
        spec: path to the OpenAPI document.
        handlers: handlers package or module name, or a path to either (None with `mock`).
        config_file: the YAML config file.
        mock: answer operations without a handler with examples.
        dev: development defaults for unconfigured security schemes (never in production).
    """

    spec: str
    handlers: str | None = None
    config_file: str | None = None
    mock: bool = False
    dev: bool = False

    def __call__(self, environ: Mapping[str, str] | None = None) -> App:
        """Build the app and start its actors."""
        return self.build(environ).start()

    def build(self, environ: Mapping[str, str] | None = None) -> App:
        """Build the app without starting anything (`brrt_actors.build_app`)."""
        from brrt_actors.build import build_app

        return build_app(self.spec, self.handlers, mock=self.mock, environ=environ,
                         config_file=self.config_file, dev=self.dev)

    def check_command(self) -> list[str]:
        """Return the ``brrt check`` command line telling whether this app can start."""
        command = [sys.executable, "-m", "brrt_actors", "check", self.spec]
        if self.handlers is not None:
            command += ["--handlers", self.handlers]
        if self.config_file is not None:
            command += ["--config", self.config_file]
        return command + ["--mock"] * self.mock + ["--dev"] * self.dev

    def check(self) -> str | None:
        """Check in a new process that the app can start; return its problems, or None."""
        try:
            done = subprocess.run(self.check_command(), capture_output=True, text=True,
                                  timeout=_CHECK_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as ex:
            return f"the check did not run: {ex}"
        return None if done.returncode == 0 else (done.stdout + done.stderr).strip()


def app_from_env(environ: Mapping[str, str] | None = None, *, dev: bool = False) -> App:
    """Build the app named by ``BRRTR_SPEC``, ``BRRTR_HANDLERS``, ``BRRTR_CONFIG``, ``BRRTR_MOCK``.

    A factory for gunicorn, which calls it in each worker::

        BRRTR_SPEC=openapi.yaml BRRTR_HANDLERS=handlers \\
            gunicorn -k brrt_actors.entrypoints.gunicorn.Worker -w 4 \\
            'brrt_actors.entrypoints.gunicorn:app_from_env()'

    Args:
        environ: where the variables (and the settings and secrets) are read; default
            ``os.environ``.
        dev: development defaults for unconfigured security schemes; never in production
            (deliberately not an environment variable).

    Raises:
        ConfigError: ``BRRTR_SPEC`` is unset, or ``BRRTR_MOCK`` is not a switch.
        SpecError: as `brrt_actors.create_app`.
    """
    env = os.environ if environ is None else environ
    problems = []
    spec = env.get(SPEC_ENV, "").strip()
    if not spec:
        problems.append((SPEC_ENV, "is not set: name the OpenAPI document to serve"))
    mock = _SWITCHES.get(env.get(MOCK_ENV, "off").strip().lower())
    if mock is None:
        problems.append((MOCK_ENV, f"{env[MOCK_ENV]!r} is not valid; expected on or off"))
    if problems:
        raise ConfigError(problems)
    factory = AppFactory(spec, env.get(HANDLERS_ENV, "").strip() or None,
                         env.get(CONFIG_ENV, "").strip() or None, bool(mock), dev)
    return factory(env)
