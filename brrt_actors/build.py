"""Building an app: the spec, settings and handlers compiled into an `App` that runs nothing yet.

`build_app` loads and compiles everything once: the settings, the handlers, the security
providers, the metrics, then for each operation its pipeline (`brrt_actors.stages`) and its
actor, the router, the built-ins and the effective spec. It starts nothing: no greenlet, no
background refresh, no socket (``brrt routes`` and ``brrt check`` only build). `App.start`
starts it; `create_app` builds and starts in one call.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from brrt_actors.app import App
from brrt_actors.config import Settings, load_settings, resolve_actor_settings
from brrt_actors.context import BuildContext
from brrt_actors.discovery import (
    HandlersArg,
    declared_providers,
    missing_handlers_error,
    resolve_handlers,
)
from brrt_actors.errors import SpecError
from brrt_actors.metrics.figures import MULTIPROC_ENV, build_metrics
from brrt_actors.mock import build_mock_handler
from brrt_actors.router import Router
from brrt_actors.security import SecurityProvider, build_providers, owned_providers
from brrt_actors.spec import Spec, load_spec
from brrt_actors.spec.effective import effective_document
from brrt_actors.spec.problems import Problems
from brrt_actors.stages import OperationPipeline, build_pipeline
from brrt_actors.validation import ValidatorCache

__all__ = ["build_app", "create_app"]

logger = logging.getLogger("brrt_actors")
security_logger = logging.getLogger("brrt_actors.security")


def _implicit_methods(declared: frozenset[str]) -> Iterable[str]:
    extra = ["OPTIONS"]
    if "GET" in declared:
        extra.append("HEAD")
    return extra


def build_app(
    spec: str | Path | Spec,
    handlers: HandlersArg = None,
    *,
    mock: bool = False,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    settings: Settings | None = None,
    security_providers: Mapping[str, SecurityProvider] | None = None,
    dev: bool = False,
) -> App:
    """Build the WSGI app for `spec`: compile everything, start nothing (see `App.start`).

    Args:
        spec: path to the OpenAPI document (YAML or JSON), or a loaded `Spec`.
        handlers: package or module (name, object or path) holding one function per
            operationId, or a mapping of operationId to function. A package or module may
            also give security providers by scheme name in ``SECURITY_PROVIDERS``.
        mock: answer operations that have no handler with their declared example (or a
            generated value), and let unconfigured security schemes reject everything.
        dev: give unconfigured security schemes their documented development defaults
            (API key ``dev``, HS256 secret ``brrt-dev-secret-never-use-in-production``,
            user ``dev``/``dev``),
            with a warning per scheme. Never in production.
        environ: where settings and secrets are read (default: ``os.environ``).
        config_file: YAML config file (settings and secrets; env vars win).
        settings: ready-made settings (then `environ`/`config_file` only supply secrets).
        security_providers: custom providers by security scheme name (they win over the
            handlers package's ``SECURITY_PROVIDERS`` and over configured ones).

    Raises:
        SpecError: the spec cannot be served, or handlers are missing (all listed).
        ConfigError: a setting or secret is missing or malformed (all listed).
    """
    env = os.environ if environ is None else environ
    validators = ValidatorCache()
    loaded = spec if isinstance(spec, Spec) else load_spec(spec, validators=validators)
    if settings is None:
        settings = load_settings(env, str(config_file) if config_file else None)
    for pointer, message in loaded.warnings:
        logger.warning("%s: %s", pointer, message)
    plan = resolve_actor_settings(settings, loaded.operations)
    for where, message in plan.notes:
        logger.warning("%s: %s", where, message)

    found, missing = resolve_handlers(loaded.operations, handlers)
    if missing and not mock:
        raise missing_handlers_error(missing)
    for operation in missing:
        found[operation.operation_id], notes = build_mock_handler(operation, validators)
        for note in notes:
            logger.warning("mock: %s", note)

    custom = {**declared_providers(handlers), **(security_providers or {})}
    used = {name for op in loaded.operations for group in op.security for name in group}
    providers, warnings = build_providers(
        loaded.security_schemes, used, env, settings.security, custom=custom,
        allow_unconfigured=mock, dev=dev, config_file=settings.config_file)
    for warning in warnings:
        security_logger.warning("%s", warning)

    # NOTE: prometheus_client itself reads PROMETHEUS_MULTIPROC_DIR from the process
    # environment (once, at import), so that is where it is looked up, not in `environ`.
    context = BuildContext(settings, found, plan.per_operation, providers, validators=validators)
    if settings.metrics:
        context.metrics = build_metrics(context.actors, os.environ.get(MULTIPROC_ENV))
    router: Router[OperationPipeline] = Router()
    problems = Problems()
    for operation in loaded.operations:
        try:
            pipeline = build_pipeline(operation, context)
        except SpecError as ex:
            problems.extend(ex)
            continue
        router.add(operation.method, operation.path, pipeline)
    problems.raise_if_any()
    router.finish(_implicit_methods)
    return App(loaded, settings, router, context.actors, effective_document(loaded),
               context.metrics, owned_providers(providers, custom))


def create_app(spec: str | Path | Spec, handlers: HandlersArg = None, **options: Any) -> App:
    """Build the app for `spec` (see `build_app`, which takes the same arguments) and start it.

    Call ``app.stop()`` when done: it drains the actors.
    """
    return build_app(spec, handlers, **options).start()
