"""HTTP bearer JWTs, verified with pyjwt, and a cache of the tokens already verified.

One `JWTBearerProvider` per scheme. Its algorithm list is fixed by configuration, never by
the token: no ``alg: none``, and a scheme is either HMAC (HS*, a shared secret) or public
key (RS*/PS*/ES*/EdDSA: a PEM key or a JWKS URL), never both, so a token signed with the
public key used as an HMAC secret cannot pass (algorithm confusion).

A verified token is remembered (bounded LRU keyed by the raw token) until its ``exp`` or a
maximum age, whichever comes first; a repeated token then costs a dict look-up and two
comparisons instead of a signature check.

pyjwt and cryptography do the checks (`brrt_actors.security._verify`); they load on a
scheme's first token (at build for a PEM key or a JWK Set URL), not with this module.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from brrt_actors.handler import Principal
from brrt_actors.security._redact import fingerprint
from brrt_actors.security.credentials import InvalidCredentials, key_reader
from brrt_actors.security.scheme_settings import (
    JWT_HMAC_ALGORITHMS,
    JWT_PUBLIC_KEY_ALGORITHMS,
    JWTSettings,
)

if TYPE_CHECKING:
    from jwt.algorithms import AllowedPrivateKeys

    from brrt_actors.security._verify import Decoder

__all__ = ["HMAC_ALGORITHMS", "PUBLIC_KEY_ALGORITHMS", "JWTBearerProvider", "JWTSettings",
           "KeySource", "bearer_challenge", "mint_token"]

HMAC_ALGORITHMS = JWT_HMAC_ALGORITHMS
PUBLIC_KEY_ALGORITHMS = JWT_PUBLIC_KEY_ALGORITHMS
# SECURITY: a bearer token is small; a huge one is refused before any parsing.
_MAX_TOKEN_LENGTH = 16384

_SCOPES_NONE: frozenset[str] = frozenset()


class KeySource(Protocol):
    """Where a public-key scheme finds the key for a token (JWKS, OpenID Connect)."""

    def key_for(self, kid: str | None, alg: str) -> Any:
        """Return the key for this kid and alg, or raise `InvalidCredentials`."""


def bearer_challenge(scheme_name: str, error: str | None = None) -> str:
    """Return the WWW-Authenticate value of a bearer scheme (RFC 6750 §3)."""
    realm = scheme_name.replace("\\", "\\\\").replace('"', '\\"')
    if error is None:
        return f'Bearer realm="{realm}"'
    return f'Bearer realm="{realm}", error="{error}"'


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return frozenset(found) if found else _SCOPES_NONE


class JWTBearerProvider:
    """Authenticate `Authorization: Bearer <JWT>` (or a cookie) for one security scheme.

    Args:
        scheme_name: the spec's name of the scheme.
        settings: how tokens are verified.
        key_source: where public keys come from (JWKS, OpenID Connect); built from
            ``settings.jwks_url`` when that is set and no source is given.

    Attributes:
        key_source: the key source in use (None for a secret or a PEM key).
        cache_hits: tokens accepted from the verified-token cache.
        verifications: tokens whose signature and claims were checked (cache misses).

    Raises:
        ValueError: when the settings give no key (or a key that does not fit the
            algorithms); the message names the scheme.
    """

    def __init__(self, scheme_name: str, settings: JWTSettings,
                 key_source: KeySource | None = None) -> None:
        self.scheme_name = scheme_name
        self.settings = settings
        self.cache_hits = 0
        self.verifications = 0
        self._leeway = settings.leeway_s
        self._cache: OrderedDict[str, tuple[float, float, Principal]] = OrderedDict()
        self._cache_size = settings.verified_cache_size
        self._cache_ttl = settings.verified_cache_ttl_s
        self._decoder: Decoder | None = None  # built on the first token: see `_verify`
        self._challenges: dict[str | None, str] = {None: bearer_challenge(scheme_name)}
        self._read_cookie = (key_reader("cookie", settings.cookie_name)
                             if settings.cookie_name else None)
        self._key: Any = None
        if key_source is None and settings.jwks_url is not None:
            # PERF: jwks imports pyjwt (~45 ms of the start, benchmarks/start_time.py); only
            # a scheme with a JWK Set URL loads it here.
            from brrt_actors.security.jwks import JWKSKeySource

            key_source = JWKSKeySource(
                settings.jwks_url, ttl_s=settings.jwks_cache_ttl_s,
                refresh_cooldown_s=settings.jwks_refresh_cooldown_s,
                timeout_s=settings.jwks_timeout_s, negative_ttl_s=settings.jwks_negative_ttl_s,
                algorithms=settings.algorithms)
        self.key_source = key_source
        if key_source is not None:
            if settings.uses_hmac:
                raise ValueError(f"security scheme {scheme_name!r}: keys from a key source "
                                 f"(JWKS, OpenID Connect) need public-key algorithms")
            add_listener = getattr(key_source, "add_listener", None)
            if add_listener is not None:
                # SECURITY: a key removed from the set stops verifying cached tokens too.
                add_listener(self._cache.clear)
        elif settings.uses_hmac:
            if not settings.secret:
                raise ValueError(f"security scheme {scheme_name!r}: HS* algorithms need "
                                 f"a `secret`")
            self._key = settings.secret.encode()
        else:
            # NOTE: a PEM key is checked now (a bad one stops the start), so pyjwt and
            # cryptography load at build for such a scheme.
            from brrt_actors.security._verify import load_public_key

            self._key = load_public_key(scheme_name, settings)

    def __repr__(self) -> str:
        # SECURITY: the secret and cached tokens never appear in reprs.
        return (f"JWTBearerProvider({self.scheme_name!r}, "
                f"algorithms={list(self.settings.algorithms)}, cached={len(self._cache)})")

    def challenge(self, error: str | None = None) -> str:
        """Return the WWW-Authenticate value for a 401 (or 403 with an error)."""
        found = self._challenges.get(error)
        if found is None:
            found = self._challenges[error] = bearer_challenge(self.scheme_name, error)
        return found

    def warm_up(self) -> None:
        """Load pyjwt and build the token checker now rather than on the first token."""
        if self._decoder is None:
            self._decoder = self._new_decoder()

    def close(self) -> None:
        """Stop the key source's background refreshes, if it has any."""
        close = getattr(self.key_source, "close", None)
        if close is not None:
            close()

    def authenticate(self, environ: dict[str, Any]) -> Principal | None:
        """Return the token's principal; None when the request carries no bearer token.

        Raises:
            InvalidCredentials: the token is malformed, expired, not yet valid, badly
                signed, or has the wrong issuer or audience.
        """
        token: str | None = None
        auth = environ.get("HTTP_AUTHORIZATION")
        if auth is not None and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
            if not token:
                raise InvalidCredentials("invalid_token", "empty bearer token")
        elif self._read_cookie is not None:
            token = self._read_cookie(environ)
        if not token:
            return None
        # PERF: a verified token is a dict hit and two float comparisons (see
        # benchmarks/auth.py); the signature is not checked again.
        entry = self._cache.get(token)
        if entry is not None:
            now = time.time()
            if entry[1] <= now < entry[0]:
                self._cache.move_to_end(token)
                self.cache_hits += 1
                return entry[2]
            del self._cache[token]
        return self._verify(token)

    def _verify(self, token: str) -> Principal:
        self.verifications += 1
        if len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidCredentials("malformed", f"token of {len(token)} characters refused")
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = self._new_decoder()
        issuer = self.settings.issuer
        try:
            if self.key_source is None:
                key = self._key
            else:
                alg, kid = decoder.header(token)
                key = self.key_source.key_for(kid, alg)
                if issuer is None:
                    issuer = getattr(self.key_source, "issuer", None)
            claims = decoder.decode(token, key, issuer)
        except InvalidCredentials as ex:
            raise InvalidCredentials(ex.category, f"{ex.detail}; {fingerprint(token)}") from None
        subject = claims.get("sub")
        principal = Principal(self.scheme_name, subject if isinstance(subject, str) else None,
                              _scopes(claims), claims)
        if self._cache_size:
            self._remember(token, claims, principal)
        return principal

    def _new_decoder(self) -> Decoder:
        # PERF: pyjwt and cryptography load on the scheme's first token, not at start:
        # ~45 ms of the pet store's start (benchmarks/start_time.py). That first token
        # pays them once per process.
        from brrt_actors.security._verify import Decoder

        return Decoder(self.settings)

    def _remember(self, token: str, claims: dict[str, Any], principal: Principal) -> None:
        # The entry is valid in [not_before, until): the checks pyjwt made on exp, nbf and
        # iat, with the same leeway, so a hit accepts exactly what a fresh check would.
        now = time.time()
        until = now + self._cache_ttl
        not_before = -float("inf")
        # NOTE: pyjwt has checked that these convert with int().
        if "exp" in claims:
            until = min(until, int(claims["exp"]) + self._leeway)
        for name in ("nbf", "iat"):
            if name in claims:
                not_before = max(not_before, int(claims[name]) - self._leeway)
        cache = self._cache
        if len(cache) >= self._cache_size:
            cache.popitem(last=False)
        cache[token] = (until, not_before, principal)


def mint_token(secret_or_private_key: str | bytes | AllowedPrivateKeys,
               claims: Mapping[str, Any], algorithm: str = "HS256",
               kid: str | None = None) -> str:
    """Sign `claims` into a JWT (the ``brrt token`` command, tests).

    Args:
        secret_or_private_key: the HMAC secret, or a private key (PEM text or object).
        claims: the payload; add ``exp`` yourself (the providers require it by default).
        algorithm: any algorithm but ``none``.
        kid: the key id to put in the header (JWKS).

    Raises:
        ValueError: for the ``none`` algorithm or an unknown one.
    """
    if algorithm not in HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS:
        raise ValueError(f"cannot sign with algorithm {algorithm!r}")
    # PERF: pyjwt loads only when a token is signed (see `JWTBearerProvider._new_decoder`).
    import jwt as pyjwt

    headers = {"kid": kid} if kid is not None else None
    return pyjwt.encode(dict(claims), secret_or_private_key, algorithm=algorithm,
                        headers=headers)
