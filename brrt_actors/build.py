"""Building an app: the spec, settings and handlers compiled into an `App` that runs nothing yet.

`build_app` loads and compiles everything once: the settings, the handlers, the security
providers, the metrics, then for each operation its pipeline (`brrt_actors.stages`), its
actor and the shapes of its problem answers (`brrt_actors.problem_shapes`), the router, the
built-ins, the app's CORS (`brrt_actors.stages.cors`), the static files and the effective
spec. It starts nothing: no greenlet, no
background refresh, no socket (``brrt routes`` and ``brrt check`` only build). `App.start`
starts it; `create_app` builds and starts in one call.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from brrt_actors.actor_system import ActorSystem
from brrt_actors.actors import Actor, Handler
from brrt_actors.app import App
from brrt_actors.config import (
    ActorPlan,
    ActorSettings,
    Settings,
    load_settings,
    resolve_actor_settings,
)
from brrt_actors.config.rate_limit import unknown_operations
from brrt_actors.context import BuildContext
from brrt_actors.discovery import (
    HandlersArg,
    declared_providers,
    missing_handlers_error,
    resolve_handlers,
)
from brrt_actors.errors import ConfigError, Problem, SpecError, StartError
from brrt_actors.metrics.figures import MULTIPROC_ENV, build_metrics
from brrt_actors.mock import build_mock_handler
from brrt_actors.mock.credentials import client_credentials
from brrt_actors.problem_shapes import problem_shapes, shaped_serve
from brrt_actors.router import Router
from brrt_actors.security import SecurityProvider, build_providers, owned_providers
from brrt_actors.security.resolve import resolve_security
from brrt_actors.spec import Spec, load_spec
from brrt_actors.spec.effective import effective_document
from brrt_actors.spec.problems import Problems
from brrt_actors.stages import OperationPipeline, build_pipeline
from brrt_actors.stages.cors import compile_app_cors
from brrt_actors.stages.tracing import instrument_handlers
from brrt_actors.static_files import StaticFiles, build_static_files
from brrt_actors.validation import ValidatorCache

__all__ = ["SpecAndConfigError", "build_app", "create_app"]

T = TypeVar("T")

logger = logging.getLogger("brrt_actors")
security_logger = logging.getLogger("brrt_actors.security")


def _implicit_methods(declared: frozenset[str]) -> Iterable[str]:
    extra = ["OPTIONS"]
    if "GET" in declared:
        extra.append("HEAD")
    return extra


class SpecAndConfigError(SpecError, ConfigError):
    """Start problems of both families found by one build: caught as either."""


class _StartProblems:
    """Every start problem of one build, by family, raised together at the end."""

    def __init__(self) -> None:
        self.spec: list[Problem] = []
        self.config: list[Problem] = []

    def __bool__(self) -> bool:
        return bool(self.spec or self.config)

    def attempt(self, make: Callable[[], T]) -> T | None:
        """Return what `make` returns, or None after recording the problems it raised."""
        try:
            return make()
        except SpecError as ex:
            self.spec.extend(ex.problems)
        except ConfigError as ex:
            self.config.extend(ex.problems)
        return None

    def raise_if_any(self) -> None:
        problems = list(dict.fromkeys([*self.spec, *self.config]))
        if self.spec and self.config:
            raise SpecAndConfigError(problems)
        if self.spec:
            raise SpecError(problems)
        if self.config:
            raise ConfigError(problems)


def _raise(error: StartError) -> None:
    raise error


def _actor_plan(loaded: Spec, settings: Settings) -> ActorPlan:
    problems = list(unknown_operations(settings.rate_limit,
                                       {op.operation_id for op in loaded.operations}))
    try:
        plan = resolve_actor_settings(settings, loaded.operations)
    except ConfigError as ex:
        problems.extend(ex.problems)
    if problems:
        raise ConfigError(problems)
    for where, message in plan.notes:
        logger.warning("%s: %s", where, message)
    for where, message in plan.overrides:
        logger.info("%s: %s", where, message)
    return plan


def _providers(loaded: Spec, env: Mapping[str, str], settings: Settings,
               custom: Mapping[str, SecurityProvider], *, mock: bool, dev: bool,
               quiet: bool = False) -> dict[str, SecurityProvider]:
    used = {name for op in loaded.operations for group in op.security for name in group}
    providers, warnings = build_providers(
        loaded.security_schemes, used, env, settings.security, custom=custom,
        allow_unconfigured=mock, dev=dev, config_file=settings.config_file)
    for warning in () if quiet else warnings:
        security_logger.warning("%s", warning)
    return providers


def _log_mock_credentials(loaded: Spec, env: Mapping[str, str], settings: Settings,
                          providers: Mapping[str, SecurityProvider],
                          custom: Mapping[str, SecurityProvider], *, dev: bool) -> None:
    """Say at start what a client of a mock server must send for each scheme."""
    configured = set(custom) | set(resolve_security(
        loaded.security_schemes, settings.security, env,
        config_file=settings.config_file).schemes)
    for usable, line in client_credentials(loaded.security_schemes, providers, configured,
                                           dev=dev):
        security_logger.log(logging.INFO if usable else logging.WARNING, "mock: %s", line)


def _path_methods(loaded: Spec) -> dict[str, str]:
    """The ``Allow`` value of each path: its methods, HEAD with GET, OPTIONS."""
    declared: dict[str, set[str]] = {}
    for operation in loaded.operations:
        declared.setdefault(operation.path, set()).add(operation.method)
    return {path: ", ".join(sorted(methods | set(_implicit_methods(frozenset(methods)))))
            for path, methods in declared.items()}


def _kept_actors(previous: App, handlers: Mapping[str, Handler],
                 actor_settings: Mapping[str, ActorSettings], settings: Settings
                 ) -> dict[str, Actor]:
    """The actors of `previous` a reload keeps: same handler, same actor settings."""
    if previous.settings.otel != settings.otel:
        return {}  # NOTE: the handlers run inside spans of another exporter
    kept: dict[str, Actor] = {}
    for actor in previous.actors:
        name = actor.name
        if (name in handlers and previous.handlers.get(name) is handlers[name]
                and actor_settings.get(name) == actor.settings):
            kept[name] = actor
    return kept


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
    previous: App | None = None,
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
            (API key ``dev``, for each bearer/OAuth2 scheme its own HS256 secret
            ``brrt-dev-secret-never-use-in-production-<Scheme>``, user ``dev``/``dev``),
            with a warning per scheme. Never in production.
        environ: where settings and secrets are read (default: ``os.environ``).
        config_file: YAML config file (settings and secrets; env vars win).
        settings: ready-made settings (then `environ`/`config_file` only supply secrets).
        security_providers: custom providers by security scheme name (they win over the
            handlers package's ``SECURITY_PROVIDERS`` and over configured ones).
        previous: the app this build is to replace (a hot reload, `brrt_actors.reload`):
            operations whose handler and actor settings did not change keep its actors
            (started, with their mailboxes), and its metrics go on counting.

    Raises:
        SpecError: the spec cannot be served, or handlers are missing or clash.
        ConfigError: a setting or secret is missing or malformed.
        SpecAndConfigError: both (a `SpecError` and a `ConfigError`). Every problem of every
            family is listed in one error: spec, handlers, settings, security.
    """
    env = os.environ if environ is None else environ
    validators = ValidatorCache()
    found_problems = _StartProblems()
    loaded = spec if isinstance(spec, Spec) else found_problems.attempt(
        lambda: load_spec(spec, validators=validators))
    if settings is None:
        settings = found_problems.attempt(
            lambda: load_settings(env, str(config_file) if config_file else None))
    if loaded is None:
        found_problems.raise_if_any()  # NOTE: nothing more can be checked without the spec
    assert loaded is not None
    for pointer, message in loaded.warnings:
        logger.warning("%s: %s", pointer, message)
    plan = None if settings is None else found_problems.attempt(
        lambda: _actor_plan(loaded, settings))

    resolved = found_problems.attempt(lambda: resolve_handlers(loaded.operations, handlers))
    found, missing = resolved if resolved is not None else ({}, [])
    if missing and not mock:
        found_problems.attempt(lambda: _raise(missing_handlers_error(missing)))
    if plan is not None and settings is not None and previous is not None:
        kept = _kept_actors(previous, found, plan.per_operation, settings)
    else:
        kept = {}
    handled = dict(found)  # NOTE: what a reload compares: the user's, not the stand-ins
    allow = _path_methods(loaded)
    for operation in missing:
        # NOTE: without --mock, stand-ins: the rest of the app is still checked.
        found[operation.operation_id], notes = build_mock_handler(
            operation, validators, allow=allow[operation.path])
        for note in notes if mock else ():
            logger.warning("mock: %s", note)

    custom = found_problems.attempt(lambda: {**declared_providers(handlers),
                                             **(security_providers or {})}) or {}
    providers = None if settings is None else found_problems.attempt(
        lambda: _providers(loaded, env, settings, custom, mock=mock, dev=dev))
    if providers is None and settings is not None and not mock:
        try:  # NOTE: stand-ins for unconfigured schemes: the operations are still checked
            providers = _providers(loaded, env, settings, custom, mock=True, dev=dev,
                                   quiet=True)
        except StartError:
            providers = None
    if mock and settings is not None and providers is not None:
        _log_mock_credentials(loaded, env, settings, providers, custom, dev=dev)
    if settings is None or plan is None or providers is None or resolved is None:
        found_problems.raise_if_any()  # NOTE: the operations cannot be built without them
    assert settings is not None and plan is not None and providers is not None

    # NOTE: prometheus_client itself reads PROMETHEUS_MULTIPROC_DIR from the process
    # environment (once, at import), so that is where it is looked up, not in `environ`.
    context = BuildContext(settings, found, plan.per_operation, providers, validators=validators,
                           cors=compile_app_cors(settings.cors),
                           actors=ActorSystem(kept.values()))
    if missing and mock:
        # NOTE: a mock answers 406 when the request's Accept allows none of its media types.
        context.runtime_statuses = context.runtime_statuses | {406}
    if settings.metrics:
        context.metrics = (previous.metrics if previous is not None and previous.metrics
                           is not None else build_metrics(context.actors,
                                                          os.environ.get(MULTIPROC_ENV)))
    instrument_handlers(context)  # NOTE: before the actors are built around the handlers
    router: Router[OperationPipeline] = Router()
    problems = Problems()
    for operation in loaded.operations:
        try:
            pipeline = build_pipeline(operation, context)
        except SpecError as ex:
            problems.extend(ex)
            continue
        shapes = problem_shapes(operation, context)
        if shapes:  # NOTE: only operations whose declared error schemas differ pay for it
            pipeline.serve = shaped_serve(pipeline.serve, shapes)
        router.add(operation.method, operation.path, pipeline)
    found_problems.spec.extend(problems.errors)
    if found_problems:
        for release in context.on_stop:  # what the stages built for an app that won't be
            release()
        for provider in owned_providers(providers, custom):
            provider.close()
    found_problems.raise_if_any()
    router.finish(_implicit_methods)
    return App(loaded, settings, router, context.actors, effective_document(loaded),
               context.metrics, owned_providers(providers, custom), cors=context.cors,
               static=_static_files(settings), on_stop=context.on_stop, handlers=handled)


def _static_files(settings: Settings) -> StaticFiles | None:
    if settings.static_dir is None:
        return None
    return build_static_files(settings.static_dir, settings.static_prefix,
                              settings.static_chunk_bytes,
                              where="--static-dir (BRRTR_STATIC_DIR, server.static_dir)")


def create_app(spec: str | Path | Spec, handlers: HandlersArg = None, **options: Any) -> App:
    """Build the app for `spec` (see `build_app`, which takes the same arguments) and start it.

    Call ``app.stop()`` when done: it drains the actors.
    """
    return build_app(spec, handlers, **options).start()
