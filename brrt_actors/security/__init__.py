"""Security providers: one per security scheme, built with the app (the stage that uses them
is `brrt_actors.stages.security`).

A provider per security scheme is built with the app (fail closed: a scheme the spec uses
without a configured provider stops the build).

A provider (the `SecurityProvider` protocol) has a `scheme_name`, `authenticate(environ)`
returning a `Principal` (valid credentials), None (no credentials for its scheme) or
raising `InvalidCredentials` (credentials presented but bad), `challenge(error)` giving
its WWW-Authenticate value, and `close()` releasing what it holds (the background key
refreshes of JWKS and OpenID Connect schemes). An app closes the providers it built, once,
when it stops (`owned_providers` says which).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from brrt_actors.errors import ConfigError, Problem
from brrt_actors.handler import Principal
from brrt_actors.security.apikey import ApiKeyProvider, api_key_challenge
from brrt_actors.security.basic import BasicProvider, basic_challenge
from brrt_actors.security.credentials import InvalidCredentials
from brrt_actors.security.remote_apikey import RemoteApiKeyProvider, RemoteApiKeySettings
from brrt_actors.security.resolve import (
    ApiKeySettings,
    BasicSettings,
    OIDCSettings,
    SchemeSettings,
    dev_settings,
    how_to_configure,
    resolve_security,
    scheme_kind,
)
from brrt_actors.spec.model import SecurityScheme

__all__ = ["ApiKeyProvider", "BasicProvider", "InvalidCredentials", "RejectAll",
           "RemoteApiKeyProvider", "SecurityProvider", "build_providers", "owned_providers"]

logger = logging.getLogger("brrt_actors.security")


class SecurityProvider(Protocol):
    """Checks the credentials of one security scheme.

    `authenticate` returns the principal for valid credentials and None when the request
    carries no credentials for this scheme; it raises `InvalidCredentials` when it does but
    they are bad, and nothing else for bad client input. `challenge(error)` is the
    WWW-Authenticate value sent with a 401 (or 403) when this scheme was one of the options;
    `error` is ``"invalid_token"`` when the presented credentials were invalid,
    ``"insufficient_scope"`` for a 403, else None.
    """

    scheme_name: str

    def authenticate(self, environ: dict[str, Any]) -> Principal | None: ...

    def challenge(self, error: str | None) -> str: ...

    def close(self) -> None:
        """Release what the provider holds (background refreshes, connections).

        The app that built the provider calls it once, when it stops; this default
        releases nothing. A provider given from Python (``build_app(...,
        security_providers=...)``, or ``SECURITY_PROVIDERS`` in the handlers package) may
        serve several apps, so no app closes it: its owner does (and it needs no ``close``).
        """


def scheme_challenge(scheme: SecurityScheme, error: str | None = None) -> str:
    """Return the WWW-Authenticate value that fits `scheme`'s type."""
    kind = scheme_kind(scheme)
    if kind == "basic":
        return basic_challenge(scheme.name)
    if kind == "apiKey":
        return api_key_challenge(scheme.name, scheme.parameter_name or "",
                                 scheme.location or "header", error)
    if scheme.type == "http" and kind == "other" and scheme.scheme:
        return f'{scheme.scheme.capitalize()} realm="{scheme.name}"'
    return f'Bearer realm="{scheme.name}"' + (f', error="{error}"' if error else "")


class RejectAll:
    """Stands in for an unconfigured scheme in mock mode: nobody gets in through it."""

    def __init__(self, scheme: SecurityScheme) -> None:
        self.scheme_name = scheme.name
        self._scheme = scheme

    def __repr__(self) -> str:
        return f"RejectAll({self.scheme_name!r})"

    def challenge(self, error: str | None) -> str:
        """Return the WWW-Authenticate value that fits the scheme's type."""
        return scheme_challenge(self._scheme, error)

    def authenticate(self, environ: dict[str, Any]) -> Principal | None:
        """Return None: there are no valid credentials for this scheme."""
        return None

    def close(self) -> None:
        """Nothing to release."""


def _provider(scheme: SecurityScheme, settings: SchemeSettings) -> SecurityProvider:
    if isinstance(settings, ApiKeySettings):
        return ApiKeyProvider(scheme, settings.keys, header_name=settings.header_name)
    if isinstance(settings, RemoteApiKeySettings):
        return RemoteApiKeyProvider(scheme, settings)
    if isinstance(settings, BasicSettings):
        return BasicProvider(scheme.name, settings.users, cache_ttl_s=settings.cache_ttl_s)
    if isinstance(settings, OIDCSettings):
        from brrt_actors.security.oidc import build_oidc_provider

        provider: SecurityProvider = build_oidc_provider(scheme.name, settings.discovery_url,
                                                         settings.jwt)
        return provider
    from brrt_actors.security.jwt import JWTBearerProvider

    return JWTBearerProvider(scheme.name, settings)


def build_providers(
    schemes: Mapping[str, SecurityScheme],
    used: set[str],
    environ: Mapping[str, str],
    config: Mapping[str, Any] | None,
    *,
    custom: Mapping[str, SecurityProvider] | None = None,
    allow_unconfigured: bool = False,
    dev: bool = False,
    config_file: str | None = None,
) -> tuple[dict[str, SecurityProvider], list[str]]:
    """Build one provider per scheme the spec uses, failing closed.

    Args:
        schemes: the spec's security schemes by name.
        used: the names the operations' requirements mention.
        environ: where the ``BRRTR_*__<SCHEME>`` secrets are read.
        config: the config file's ``security`` section.
        custom: providers by scheme name, from Python (they win over everything).
        allow_unconfigured: mock mode: an unconfigured scheme rejects every request
            instead of stopping the start (and a warning says so).
        dev: an unconfigured scheme gets its documented development default (and a loud
            warning says so).
        config_file: the config file's path, for messages.

    Returns:
        The providers by scheme name, and warnings to log once.

    Raises:
        ConfigError: listing every used scheme that has no provider, with the setting
            that would configure it, and every malformed security setting.
    """
    resolved = resolve_security(schemes, config, environ, config_file=config_file)
    providers: dict[str, SecurityProvider] = {}
    warnings: list[str] = list(resolved.notes)
    problems: list[Problem] = []
    custom = dict(custom or {})
    for name in sorted(used):
        scheme = schemes[name]
        if name in custom:
            providers[name] = custom[name]
            continue
        settings = resolved.schemes.get(name)
        if settings is None and dev:
            default = dev_settings(scheme)
            if default is not None:
                settings, description = default
                warnings.append(f"DEVELOPMENT DEFAULT (--dev): security scheme {name!r} "
                                f"accepts {description}; never use --dev in production")
        if settings is not None:
            try:
                providers[name] = _provider(scheme, settings)
            except ValueError as ex:
                message = str(ex)
                if not message.startswith("security scheme"):
                    message = f"security scheme {name!r}: {message}"
                problems.append((scheme.pointer, message))
            continue
        how = how_to_configure(scheme)
        if allow_unconfigured:
            providers[name] = RejectAll(scheme)
            warnings.append(f"security scheme {name!r} is not configured, so every request "
                            f"that needs it gets 401; to configure it: {how}")
        else:
            problems.append((scheme.pointer, f"security scheme {name!r} is used but not "
                                              f"configured: {how}"))
    if problems:
        raise ConfigError(problems)
    return providers, warnings


def owned_providers(providers: Mapping[str, SecurityProvider],
                    custom: Mapping[str, SecurityProvider] | None = None
                    ) -> tuple[SecurityProvider, ...]:
    """Return the providers `build_providers` built itself: the ones an app closes.

    Args:
        providers: what `build_providers` returned.
        custom: the `custom` providers it was given: they belong to whoever made them.
    """
    given = dict(custom or {})
    return tuple(provider for name, provider in providers.items()
                 if given.get(name) is not provider)
