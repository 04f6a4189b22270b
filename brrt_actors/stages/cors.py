"""CORS: which browser origins may call the operation and read its answers, preflight included.

The policy comes from the config file's ``cors:`` section and ``BRRTR_CORS_*``
(`brrt_actors.config.cors`); an operation may narrow or widen what it allows with
``x-cors: inherit | false | {allowedHeaders, allowedMethods, allowCredentials,
exposeHeaders, maxAge}`` (BRRTRouter's extension; origins always come from the config).
Everything is compiled at build time: each allowed origin's headers are a tuple looked up by
the request's ``Origin``, so a request pays one dict lookup and a list extend.

Three places use the compiled policy:

- the operation's wrapper (`build`, outermost but measurement): adds the headers to the
  answer and to every problem raised inside (401, 400, 429, 503, 504 ...), and answers a
  preflight to an operation that declares ``OPTIONS`` itself, before security;
- the app (`AppCors`): the preflight of every path the router knows, answered before any
  authentication (`AppCors.preflight`), and the headers of the answers given outside any
  operation (404, 405, built-ins);
- the engine: `AppCors.header_block` gives the header lines of its own answers (413, 431 ...)
  when the request carried an ``Origin``.

A request whose origin is not allowed is served as any other, without
``Access-Control-Allow-*`` headers (the browser then keeps the answer from the page); a
preflight that asks for an origin, method or header the policy does not allow gets a 403.
``Vary: Origin`` is on every answer of an operation CORS applies to.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from brrt_actors.config.cors import parse_header_names, parse_methods, wildcard_with_credentials
from brrt_actors.config.settings import CorsSettings
from brrt_actors.errors import HTTPError, SpecError

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation
    from brrt_actors.stages import Run
    from brrt_actors.stages.response import Encoded

__all__ = ["CORS_DONE", "X_CORS", "AppCors", "CorsRules", "build", "compile_app_cors"]

logger = logging.getLogger("brrt_actors")

X_CORS: Final = "x-cors"
#: Set in the environ by an operation's CORS wrapper (or a refused preflight) on the way of
#: an error: its answer has the CORS headers it should have, the app adds none.
CORS_DONE: Final = "brrt.cors_done"

Headers = tuple[tuple[str, str], ...]

_VARY: Final = ("Vary", "Origin")
_PREFLIGHT_VARY: Final = ("Vary", "Origin, Access-Control-Request-Method, "
                                  "Access-Control-Request-Headers")
# x-cors keys (BRRTRouter's camelCase) -> CorsSettings fields.
_EXTENSION_KEYS: Final = {"allowedHeaders": "allowed_headers",
                          "allowedMethods": "allowed_methods",
                          "allowCredentials": "allow_credentials",
                          "exposeHeaders": "expose_headers", "maxAge": "max_age"}
_MAX_NAMED = 80  # SECURITY: the most of a client's method or header names a 403 repeats


class CorsRules:
    """One compiled CORS policy: the app's, or an operation's ``x-cors`` one.

    Attributes:
        by_origin: the headers of an answer to each allowed origin.
        fallback: the headers of an answer to any other origin (``Vary: Origin`` alone, or
            ``Access-Control-Allow-Origin: *`` when any origin is allowed).
    """

    __slots__ = ("_any_header", "_any_method", "_blocks", "_header_names", "_methods",
                 "_other_block", "_preflight", "by_origin", "fallback")

    def __init__(self, settings: CorsSettings) -> None:
        any_origin = "*" in settings.origins
        common: list[tuple[str, str]] = []
        if settings.allow_credentials:
            common.append(("Access-Control-Allow-Credentials", "true"))
        if settings.expose_headers:
            common.append(("Access-Control-Expose-Headers", ", ".join(settings.expose_headers)))
        # PERF: one dict lookup per request; the tuples are built here, once.
        self.by_origin: dict[str, Headers] = {
            origin: (("Access-Control-Allow-Origin", origin), *common, _VARY)
            for origin in settings.origins if origin != "*"}
        self.fallback: Headers = ((("Access-Control-Allow-Origin", "*"), *common, _VARY)
                                  if any_origin else (_VARY,))
        self._blocks = {origin: _block(headers) for origin, headers in self.by_origin.items()}
        self._other_block = _block(self.fallback)
        self._methods = frozenset(settings.allowed_methods)
        self._any_method = "*" in self._methods
        self._header_names = frozenset(name.lower() for name in settings.allowed_headers)
        self._any_header = "*" in self._header_names
        preflight = [("Access-Control-Allow-Methods", ", ".join(settings.allowed_methods))]
        if settings.allowed_headers:
            preflight.append(("Access-Control-Allow-Headers",
                              ", ".join(settings.allowed_headers)))
        if settings.max_age is not None:
            preflight.append(("Access-Control-Max-Age", str(settings.max_age)))
        self._preflight = tuple(preflight)

    def headers_for(self, origin: str) -> Headers:
        """Return the headers of an answer to `origin`."""
        return self.by_origin.get(origin, self.fallback)

    def block_for(self, origin: str) -> bytes:
        """Return `headers_for(origin)` as header lines (for the engine's own answers)."""
        return self._blocks.get(origin, self._other_block)

    def allows(self, origin: str) -> bool:
        """Tell whether answers to `origin` carry ``Access-Control-Allow-Origin``."""
        return len(self.headers_for(origin)) > 1

    def preflight(self, origin: str, method: str, requested: str) -> Headers | str:
        """Return the headers of a preflight's 204, or why it is refused.

        Args:
            origin: the ``Origin`` header.
            method: the ``Access-Control-Request-Method`` header.
            requested: the ``Access-Control-Request-Headers`` header ("" when absent).
        """
        if not self.allows(origin):
            return "the origin is not allowed"
        if not (self._any_method or method in self._methods
                or (method == "HEAD" and "GET" in self._methods)):
            return f"the method {_named(method)} is not allowed"
        if requested and not self._any_header:
            refused = [name for name in (part.strip().lower() for part in requested.split(","))
                       if name and name not in self._header_names]
            if refused:
                return f"request headers not allowed: {_named(', '.join(refused))}"
        return (*self.headers_for(origin)[:-1], *self._preflight, _PREFLIGHT_VARY)


def _block(headers: Headers) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode("latin-1")


def _named(text: str) -> str:
    return repr(text if len(text) <= _MAX_NAMED else text[:_MAX_NAMED] + "...")


_OFF: Final = object()  # an operation with `x-cors: false`, in AppCors' table


class AppCors:
    """The app's CORS: its default policy and each operation's, for what the app answers.

    Built by `compile_app_cors`; each operation's builder records its policy here
    (`set_operation`), so that a preflight, which the router does not route to an
    operation, is answered with the policy of the operation it asks about.
    """

    __slots__ = ("_by_route", "default")

    def __init__(self, default: CorsRules) -> None:
        self.default = default
        self._by_route: dict[tuple[str, str], Any] = {}

    def set_operation(self, template: str, method: str, rules: CorsRules | None) -> None:
        """Record the policy of the operation `method template` (None: CORS is off there)."""
        self._by_route[(template, method)] = _OFF if rules is None else rules

    def _rules(self, template: str, method: str) -> CorsRules | None:
        found = self._by_route.get((template, method))
        if found is None and method == "HEAD":
            found = self._by_route.get((template, "GET"))
        if found is None:
            return self.default  # NOTE: a method the path does not serve: its 405 follows
        return None if found is _OFF else found

    def preflight(self, environ: dict[str, Any], template: str, allow: str = "") -> Encoded:
        """Answer the preflight (an OPTIONS with Origin and Access-Control-Request-Method).

        Raises:
            HTTPError: 403 when the policy of the operation asked about refuses the origin,
                the method or a header; the answer has no ``Access-Control-Allow-*``.
        """
        method = environ["HTTP_ACCESS_CONTROL_REQUEST_METHOD"].strip()
        rules = self._rules(template, method)
        found: Headers | str = (f"CORS is off for {_named(method)} {template}" if rules is None
                                else rules.preflight(
                                    environ["HTTP_ORIGIN"], method,
                                    environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")))
        if isinstance(found, str):
            environ[CORS_DONE] = True
            raise HTTPError(403, f"CORS preflight refused: {found}",
                            headers=dict((_PREFLIGHT_VARY,)))
        headers = list(found)
        if allow:
            headers.append(("Allow", allow))
        return 204, headers, ()

    def add_headers(self, environ: dict[str, Any], headers: list[tuple[str, str]]) -> None:
        """Add the default policy's headers to an answer given outside any operation."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and CORS_DONE not in environ:
            headers.extend(self.default.headers_for(origin))

    def header_block(self, origin: str) -> bytes:
        """Return the default policy's header lines for `origin` (the engine's answers)."""
        return self.default.block_for(origin)


def compile_app_cors(settings: CorsSettings) -> AppCors | None:
    """Return the app's compiled CORS, or None when no origin is allowed (CORS is off)."""
    return AppCors(CorsRules(settings)) if settings.enabled else None


def _with_headers(error: HTTPError, extra: Headers) -> HTTPError:
    # NOTE: a new error: a handler may raise one shared instance, whose headers must not
    # keep one request's origin for the next.
    headers = dict(error.headers)
    for name, value in extra:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return HTTPError(error.status, error.detail, title=error.title, headers=headers,
                     errors=error.errors, type=error.type)


class CorsWrapper:
    """Wrap an operation's run: CORS headers on its answers and problems, and its preflight.

    Args:
        rules: the operation's compiled policy; None for an ``x-cors: false`` operation (no
            CORS headers, not even the app's on its problems).
        app_cors: the app's, when the operation is an ``OPTIONS`` one (it answers preflights
            before security, with the policy of the operation asked about), else None.
        template: the operation's path template.
    """

    __slots__ = ("_app_cors", "_rules", "_template")

    def __init__(self, rules: CorsRules | None, app_cors: AppCors | None, template: str) -> None:
        self._rules = rules
        self._app_cors = app_cors
        self._template = template

    def __call__(self, serve: Run) -> Run:
        app_cors, template = self._app_cors, self._template
        if self._rules is None:
            return self._uncors(serve)
        lookup, fallback = self._rules.by_origin.get, self._rules.fallback

        def run(request: Request) -> Encoded:
            environ = request.environ
            origin = environ.get("HTTP_ORIGIN")
            if origin is None:
                answer = serve(request)
                answer[1].append(_VARY)  # NOTE: caches keep answers apart by Origin
                return answer
            if app_cors is not None and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
                return app_cors.preflight(environ, template)
            extra = lookup(origin, fallback)
            try:
                answer = serve(request)
            except HTTPError as ex:
                environ[CORS_DONE] = True
                raise _with_headers(ex, extra) from ex
            answer[1].extend(extra)
            return answer

        return run

    def _uncors(self, serve: Run) -> Run:
        app_cors, template = self._app_cors, self._template

        def run(request: Request) -> Encoded:
            environ = request.environ
            if (app_cors is not None and "HTTP_ORIGIN" in environ
                    and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ):
                return app_cors.preflight(environ, template)
            try:
                return serve(request)
            except HTTPError:
                environ[CORS_DONE] = True
                raise

        return run


def _operation_settings(operation: Operation, app: CorsSettings) -> CorsSettings | None:
    """The operation's CORS settings from its ``x-cors`` (None: ``false``).

    Raises:
        SpecError: an ``x-cors`` value of the wrong shape, or credentials with a wildcard.
    """
    where = f"{operation.pointer}/{X_CORS}"
    value = operation.extensions.get(X_CORS, "inherit")
    if value is False:
        return None
    if value == "inherit" or value is True:
        return app
    if not isinstance(value, Mapping):
        raise SpecError([(where, f"{value!r} is not valid; expected inherit, false, or a "
                                 "mapping of " + ", ".join(_EXTENSION_KEYS))])
    problems = []
    overrides: dict[str, Any] = {}
    parsers = {"allowed_headers": parse_header_names, "allowed_methods": parse_methods,
               "expose_headers": parse_header_names}
    for key, raw in value.items():
        field = _EXTENSION_KEYS.get(key)
        if field is None:
            hint = ("; origins come from the config (cors.origins, BRRTR_CORS_ORIGINS)"
                    if key == "origins" else "")
            logger.warning("%s/%s: unknown key, ignored (known: %s)%s", where, key,
                           ", ".join(_EXTENSION_KEYS), hint)
            continue
        if field in parsers:
            if not isinstance(raw, list):
                problems.append((f"{where}/{key}", "must be a list"))
                continue
            try:
                overrides[field] = parsers[field](raw)
            except ValueError as ex:
                problems.append((f"{where}/{key}", f"must be a list of {ex}"))
        elif field == "allow_credentials":
            if not isinstance(raw, bool):
                problems.append((f"{where}/{key}", "must be true or false"))
            overrides[field] = raw is True
        elif raw is not None and (not isinstance(raw, int) or isinstance(raw, bool) or raw < 0):
            problems.append((f"{where}/{key}", "must be a number of seconds >= 0, or null"))
        else:
            overrides[field] = raw
    settings = replace(app, **overrides)
    if settings.allow_credentials and "*" in settings.origins:
        problems.append((f"{where}/allowCredentials", wildcard_with_credentials(
            app.where.get("origins", "cors.origins"))))
    if problems:
        raise SpecError(problems)
    return settings


def build(operation: Operation, context: BuildContext) -> CorsWrapper | None:
    """Return the operation's CORS wrapper, or None when the app has no CORS (costs nothing).

    Raises:
        SpecError: the operation's ``x-cors`` is malformed.
    """
    app_settings = context.settings.cors
    settings = _operation_settings(operation, app_settings)
    app_cors = context.cors
    if app_cors is None:
        if isinstance(operation.extensions.get(X_CORS), Mapping):
            logger.warning("%s/%s: no effect: no origin is allowed (cors.origins, "
                           "BRRTR_CORS_ORIGINS)", operation.pointer, X_CORS)
        return None
    rules = (None if settings is None else
             app_cors.default if settings is app_settings else CorsRules(settings))
    app_cors.set_operation(operation.path, operation.method, rules)
    return CorsWrapper(rules, app_cors if operation.method == "OPTIONS" else None,
                       operation.path)
