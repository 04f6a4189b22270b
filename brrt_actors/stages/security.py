"""The security stage: who may call the operation, decided before anything else is looked at.

The operation's requirements (an OR of AND-groups of schemes, each with scopes) are compiled
at build time into one `SecurityCheck` over the app's providers (`brrt_actors.security`). The
stage puts the authenticated `Principal` and its claims on the request, or raises 401 / 403
(counted in ``brrt_auth_failures_total`` when metrics are on). When the first requirement is
one API key scheme, a request with a valid key is let in by one compare
(`SecurityCheck.acceptor`); every other request goes through the whole check.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from brrt_actors.errors import HTTPError
from brrt_actors.handler import Principal, Request
from brrt_actors.security import ApiKeyProvider, SecurityProvider
from brrt_actors.security.credentials import InvalidCredentials
from brrt_actors.spec.model import SecurityRequirements

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.spec.model import Operation
    from brrt_actors.stages import Stage

__all__ = ["SecurityCheck", "build"]

logger = logging.getLogger("brrt_actors.security")


# An AND-group, compiled: (provider, required scopes, the 403 challenge if scopes lack).
_Group = tuple[tuple[SecurityProvider, frozenset[str], str], ...]


class SecurityCheck:
    """The compiled security requirements of one operation.

    The first satisfied AND-group wins and gives the principal (its first scheme's);
    an empty group lets anonymous callers in. Otherwise: 403 when a group failed only for
    lack of scopes with valid credentials, else 401 with the challenge of every scheme
    involved (``error="invalid_token"`` on those whose presented credentials were bad).
    """

    __slots__ = ("_anonymous_ok", "_challenges", "_groups", "_plain_401")

    def __init__(self, requirements: SecurityRequirements,
                 providers: Mapping[str, SecurityProvider]) -> None:
        self._anonymous_ok = any(not group for group in requirements)
        groups: list[_Group] = []
        # PERF: every challenge string is built once, here; a 401 or 403 only joins them.
        self._challenges: dict[str, tuple[str, str]] = {}
        for requirement in requirements:
            if not requirement:
                continue
            compiled = []
            for name, scopes in requirement.items():
                provider = providers[name]
                insufficient = ""
                if scopes:
                    insufficient = (provider.challenge("insufficient_scope")
                                    + f', scope="{" ".join(sorted(set(scopes)))}"')
                compiled.append((provider, frozenset(scopes), insufficient))
                self._challenges.setdefault(
                    name, (provider.challenge(None), provider.challenge("invalid_token")))
            groups.append(tuple(compiled))
        self._groups = tuple(groups)
        self._plain_401 = ", ".join(plain for plain, _ in self._challenges.values())

    def acceptor(self) -> Callable[[dict[str, Any]], Principal | None] | None:
        """Return a quick check of the usual request, or None when there is none.

        When the first AND-group is one API key scheme without scopes, the check returns
        the principal `__call__` would return for a request that carries a valid key, and
        None for any other request: then `__call__` decides (and logs, and raises).
        """
        if not self._groups or len(self._groups[0]) != 1:
            return None
        provider, scopes, _ = self._groups[0][0]
        if scopes or not isinstance(provider, ApiKeyProvider):
            return None
        return provider.acceptor()

    def __call__(self, environ: dict[str, Any], request_id: str = "-") -> Principal | None:
        """Return the principal of the first satisfied group, else raise 401/403."""
        invalid: dict[str, InvalidCredentials] | None = None
        scope_failures: list[str] | None = None
        for group in self._groups:
            principal: Principal | None = None
            for provider, scopes, insufficient in group:
                name = provider.scheme_name
                if invalid is not None and name in invalid:
                    break
                try:
                    found = provider.authenticate(environ)
                except InvalidCredentials as ex:
                    if invalid is None:
                        invalid = {}
                    invalid[name] = ex
                    # SECURITY: the why goes to the log, never to the client.
                    logger.info("request %s: %s credentials rejected: %s", request_id, name, ex)
                    break
                if found is None:
                    break
                if scopes and not scopes <= found.scopes:
                    if scope_failures is None:
                        scope_failures = []
                    scope_failures.append(insufficient)
                    break
                if principal is None:
                    principal = found
            else:
                return principal
        if self._anonymous_ok:
            return None
        if scope_failures:
            raise HTTPError(403, "the credentials lack a required scope",
                            headers={"WWW-Authenticate": ", ".join(dict.fromkeys(
                                scope_failures))})
        challenge = self._plain_401 if not invalid else ", ".join(
            bad if name in invalid else plain
            for name, (plain, bad) in self._challenges.items())
        # SECURITY: one answer for missing and wrong credentials; the why stays out.
        raise HTTPError(401, "missing or invalid credentials",
                        headers={"WWW-Authenticate": challenge})


def _stage(check: SecurityCheck, failed: Callable[[int], None] | None) -> Stage:
    full = _full_stage(check, failed)
    accept = check.acceptor()
    if accept is None:
        return full

    # PERF: a valid API key costs one lookup and one compare, anything else the full check:
    # 0.65 -> 0.25 us per request (the pet store's stages timed alone, CPU time).
    def api_key_stage(request: Request) -> None:
        principal = accept(request.environ)
        if principal is None:
            full(request)
            return
        request.principal = principal
        request.claims = principal.claims

    return api_key_stage


def _full_stage(check: SecurityCheck, failed: Callable[[int], None] | None) -> Stage:
    if failed is None:
        # PERF: a closure, as every stage (see `brrt_actors.stages.actor`).
        def security_stage(request: Request) -> None:
            principal = check(request.environ, request.request_id)
            if principal is not None:
                request.principal = principal
                request.claims = principal.claims

        return security_stage

    def counted_security_stage(request: Request) -> None:
        try:
            principal = check(request.environ, request.request_id)
        except HTTPError as ex:
            failed(ex.status)
            raise
        if principal is not None:
            request.principal = principal
            request.claims = principal.claims

    return counted_security_stage


def build(operation: Operation, context: BuildContext) -> Stage | None:
    """Return the operation's security stage, or None when the operation is public."""
    if not operation.security:
        return None
    schemes = [name for group in operation.security for name in group]
    metrics = context.metrics
    return _stage(SecurityCheck(operation.security, context.providers),
                  metrics.auth_failure_counter(schemes) if metrics is not None else None)
