"""The security stage: who may call an operation, decided from the spec before anything else.

A provider per security scheme is built at start (fail closed: a scheme the spec uses
without a configured provider stops the start). Per operation, `build_security_check`
compiles the operation's requirements (an OR of AND-groups) into one callable that
returns the authenticated `Principal` or raises 401/403.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..errors import ConfigError, HTTPError
from ..request import Principal
from ..spec.model import SecurityRequirements, SecurityScheme
from .apikey import ApiKeyProvider, api_keys_for, key_variable_names

__all__ = ["ApiKeyProvider", "RejectAll", "SecurityCheck", "SecurityProvider",
           "build_providers", "build_security_check"]


class SecurityProvider(Protocol):
    """Checks the credentials of one security scheme.

    `authenticate` returns the principal for valid credentials and None for missing or
    invalid ones; it must not raise for bad client input. `challenge` is the
    WWW-Authenticate value sent with a 401 when this scheme was one of the options.
    """

    scheme_name: str
    challenge: str

    def authenticate(self, environ: dict[str, Any]) -> Principal | None: ...


class RejectAll:
    """Stands in for an unconfigured scheme in mock mode: nobody gets in through it."""

    def __init__(self, scheme_name: str, challenge: str) -> None:
        self.scheme_name = scheme_name
        self.challenge = challenge

    def authenticate(self, environ: dict[str, Any]) -> Principal | None:
        return None


def _challenge(scheme: SecurityScheme) -> str:
    if scheme.type == "http" and (scheme.scheme or "").lower() == "basic":
        return f'Basic realm="{scheme.name}"'
    if scheme.type in ("http", "oauth2", "openIdConnect"):
        return f'Bearer realm="{scheme.name}"'
    return f'ApiKey realm="{scheme.name}", name="{scheme.parameter_name}", in="{scheme.location}"'


def build_providers(
    schemes: Mapping[str, SecurityScheme],
    used: set[str],
    environ: Mapping[str, str],
    config: Mapping[str, Any],
    *,
    custom: Mapping[str, SecurityProvider] | None = None,
    allow_unconfigured: bool = False,
) -> tuple[dict[str, SecurityProvider], list[str]]:
    """Build one provider per scheme the spec uses, failing closed.

    Args:
        schemes: the spec's security schemes by name.
        used: the names the operations' requirements mention.
        environ: where ``BRRTR_API_KEY__<SCHEME>`` variables are read.
        config: the config file's ``security`` section.
        custom: providers registered from Python, by scheme name (they win).
        allow_unconfigured: mock mode: an unconfigured scheme rejects every request
            instead of stopping the start (and a warning says so).

    Returns:
        The providers by scheme name, and warnings to log once.

    Raises:
        ConfigError: listing every used scheme that has no provider, with the setting
            that would configure it.
    """
    providers: dict[str, SecurityProvider] = {}
    warnings: list[str] = []
    problems: list[tuple[str, str]] = []
    custom = custom or {}
    for name in sorted(used):
        scheme = schemes[name]
        if name in custom:
            providers[name] = custom[name]
            continue
        if scheme.type == "apiKey":
            keys = api_keys_for(name, environ, config)
            if keys:
                providers[name] = ApiKeyProvider(scheme, keys, _challenge(scheme))
                continue
            how = (f"set {key_variable_names(name)[0]} (or {key_variable_names(name)[1]}) or "
                   f"security.api_keys.{name}.key in the config file")
        else:
            how = (f"{scheme.type} schemes are not supported yet: register a provider for "
                   f"{name!r} from Python (create_app(..., security_providers=...))")
        if allow_unconfigured:
            providers[name] = RejectAll(name, _challenge(scheme))
            warnings.append(f"security scheme {name!r} is not configured, so every request "
                            f"that needs it gets 401; to configure it: {how}")
        else:
            problems.append((scheme.pointer, f"security scheme {name!r} is used but not "
                                              f"configured: {how}"))
    if problems:
        raise ConfigError(problems)
    return providers, warnings


class SecurityCheck:
    """The compiled security requirements of one operation."""

    __slots__ = ("_anonymous_ok", "_challenge", "_groups")

    def __init__(self, requirements: SecurityRequirements,
                 providers: Mapping[str, SecurityProvider]) -> None:
        self._anonymous_ok = any(not group for group in requirements)
        self._groups: list[list[tuple[SecurityProvider, frozenset[str]]]] = [
            [(providers[name], frozenset(scopes)) for name, scopes in group.items()]
            for group in requirements if group
        ]
        seen: dict[str, None] = {}
        for group in self._groups:
            for provider, _ in group:
                seen.setdefault(provider.challenge, None)
        self._challenge = ", ".join(seen)

    def __call__(self, environ: dict[str, Any]) -> Principal | None:
        """Return the principal of the first satisfied group, else raise 401/403."""
        scope_failure = False
        for group in self._groups:
            principal: Principal | None = None
            for provider, scopes in group:
                found = provider.authenticate(environ)
                if found is None:
                    principal = None
                    break
                if scopes and not scopes <= found.scopes:
                    scope_failure = True
                    principal = None
                    break
                principal = principal or found
            else:
                return principal
        if self._anonymous_ok:
            return None
        if scope_failure:
            raise HTTPError(403, "the credentials lack a required scope",
                            headers={"WWW-Authenticate": self._challenge})
        # SECURITY: one answer for missing and wrong credentials; the why stays out.
        raise HTTPError(401, "missing or invalid credentials",
                        headers={"WWW-Authenticate": self._challenge})


def build_security_check(requirements: SecurityRequirements,
                         providers: Mapping[str, SecurityProvider]
                         ) -> Callable[[dict[str, Any]], Principal | None] | None:
    """Return the operation's security stage, or None when the operation is public."""
    if not requirements:
        return None
    return SecurityCheck(requirements, providers)
