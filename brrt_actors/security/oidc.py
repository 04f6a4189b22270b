"""OpenID Connect: bearer JWTs verified with the keys and issuer of a discovery document.

The discovery document (the scheme's ``openIdConnectUrl``, or a configured URL) names the
provider's ``issuer`` and ``jwks_uri``. Both are fetched lazily (or on `prefetch`), cached,
refreshed in the background and kept when a refresh fails, like `JWKSKeySource`; the
issuer is required in tokens unless the settings name another one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from brrt_actors.security._redact import safe_url
from brrt_actors.security.credentials import InvalidCredentials
from brrt_actors.security.jwks import (
    JWKSKeySource,
    RemoteDocument,
    check_key_algorithms,
    check_key_url,
)
from brrt_actors.security.jwt import JWTBearerProvider, JWTSettings

__all__ = ["OIDCKeySource", "build_oidc_provider"]

_WELL_KNOWN = "/.well-known/openid-configuration"


class _Discovery(NamedTuple):
    issuer: str
    jwks_uri: str


class OIDCKeySource:
    """Keys and issuer of an OpenID Connect provider, found through its discovery document.

    Args:
        discovery_url: the discovery document (https, or http to localhost only).
        ttl_s, refresh_cooldown_s, timeout_s, negative_ttl_s, algorithms: as for
            `JWKSKeySource` (they apply to the discovery document and to the key set).

    Raises:
        ValueError: for a URL that breaks the rules or a symmetric algorithm.
    """

    def __init__(self, discovery_url: str, *, ttl_s: float = 300.0,
                 refresh_cooldown_s: float = 30.0, timeout_s: float = 3.0,
                 negative_ttl_s: float = 60.0, algorithms: Iterable[str] = ("RS256",)) -> None:
        self._options: dict[str, Any] = {
            "ttl_s": ttl_s, "refresh_cooldown_s": refresh_cooldown_s, "timeout_s": timeout_s,
            "negative_ttl_s": negative_ttl_s, "algorithms": check_key_algorithms(algorithms)}
        self._listeners: list[Callable[[], None]] = []
        self.jwks: JWKSKeySource | None = None
        self._discovery: RemoteDocument[_Discovery] = RemoteDocument(
            discovery_url, self._parse, what="OpenID Connect discovery", ttl_s=ttl_s,
            cooldown_s=refresh_cooldown_s, timeout_s=timeout_s, on_change=self._discovered)

    def __repr__(self) -> str:
        return f"OIDCKeySource({safe_url(self._discovery.url)}, fetches={self.fetches})"

    @property
    def issuer(self) -> str | None:
        """The issuer the discovery document names (None until it was fetched)."""
        found = self._discovery.value
        return found.issuer if found is not None else None

    @property
    def fetches(self) -> int:
        """Fetches of the discovery document so far."""
        return self._discovery.fetches

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever the keys may have changed."""
        self._listeners.append(callback)

    def prefetch(self) -> None:
        """Fetch the discovery document (then the key set) now, in the background."""
        self._discovery.prefetch()

    def close(self) -> None:
        """Stop background refreshes."""
        self._discovery.close()
        if self.jwks is not None:
            self.jwks.close()

    def key_for(self, kid: str | None, alg: str) -> Any:
        """Return the key for a token's kid and alg (see `JWKSKeySource.key_for`).

        Raises:
            InvalidCredentials: "keys_unavailable" while the discovery document or the
                key set cannot be fetched; "unknown_key" when no published key fits.
        """
        if self._discovery.get() is None or self.jwks is None:
            raise InvalidCredentials(
                "keys_unavailable", f"no discovery document from "
                                    f"{safe_url(self._discovery.url)} yet")
        return self.jwks.key_for(kid, alg)

    def _parse(self, document: Any) -> _Discovery:
        if not isinstance(document, dict):
            raise ValueError("the discovery document is not a JSON object")
        issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("the discovery document has no `issuer`")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no `jwks_uri`")
        check_key_url(jwks_uri, "the discovery document's jwks_uri")
        url = self._discovery.url.split("?", 1)[0]
        if url.endswith(_WELL_KNOWN) and \
                issuer.rstrip("/") != url[:-len(_WELL_KNOWN)].rstrip("/"):
            # SECURITY: OpenID Connect Discovery §4.3: a document may only speak for the
            # issuer it is published under.
            raise ValueError(f"the discovery document's issuer {issuer!r} is not the URL it "
                             f"was fetched from")
        return _Discovery(issuer, jwks_uri)

    def _discovered(self) -> None:
        found = self._discovery.value
        if found is None:  # pragma: no cover - only called after a good fetch
            return
        if self.jwks is None or self.jwks.url != found.jwks_uri:
            if self.jwks is not None:
                self.jwks.close()
            self.jwks = JWKSKeySource(found.jwks_uri, **self._options)
            self.jwks.add_listener(self._changed)
            # Off the request path: a waiting request joins this fetch (single flight).
            self.jwks.prefetch()
        self._changed()

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()


def build_oidc_provider(scheme_name: str, discovery_url: str,
                        settings: JWTSettings) -> JWTBearerProvider:
    """Build the bearer provider of an OpenID Connect scheme.

    Args:
        scheme_name: the spec's name of the scheme.
        discovery_url: the scheme's ``openIdConnectUrl`` (or a configured override).
        settings: public-key algorithms, audience, leeway...; ``issuer`` overrides the
            discovery document's; ``secret``, ``public_key`` and ``jwks_url`` do not apply.

    Raises:
        ValueError: naming the scheme, for settings that do not fit OpenID Connect or a
            discovery URL that breaks the URL rules.
    """
    if settings.uses_hmac or settings.public_key is not None or settings.jwks_url is not None:
        raise ValueError(f"security scheme {scheme_name!r}: OpenID Connect takes its keys from "
                         f"the discovery document; configure public-key algorithms only "
                         f"(no secret, public_key or jwks_url)")
    try:
        source = OIDCKeySource(
            discovery_url, ttl_s=settings.jwks_cache_ttl_s,
            refresh_cooldown_s=settings.jwks_refresh_cooldown_s,
            timeout_s=settings.jwks_timeout_s, negative_ttl_s=settings.jwks_negative_ttl_s,
            algorithms=settings.algorithms)
    except ValueError as ex:
        raise ValueError(f"security scheme {scheme_name!r}: {ex}") from None
    return JWTBearerProvider(scheme_name, settings, key_source=source)
