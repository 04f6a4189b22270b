"""HTTP bearer JWTs, verified with pyjwt, and a cache of the tokens already verified.

One `JWTBearerProvider` per scheme. Its algorithm list is fixed by configuration, never by
the token: no ``alg: none``, and a scheme is either HMAC (HS*, a shared secret) or public
key (RS*/PS*/ES*/EdDSA: a PEM key or a JWKS URL), never both, so a token signed with the
public key used as an HMAC secret cannot pass (algorithm confusion).

A verified token is remembered (bounded LRU keyed by the raw token) until its ``exp`` or a
maximum age, whichever comes first; a repeated token then costs a dict look-up and two
comparisons instead of a signature check.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import jwt as pyjwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import get_default_algorithms
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidSignatureError,
    InvalidTokenError,
    PyJWTError,
)

from ..request import Principal
from ._redact import fingerprint
from .credentials import key_reader
from .errors import InvalidCredentials
from .jwks import JWKSKeySource, check_key_url

if TYPE_CHECKING:
    from jwt.algorithms import AllowedPrivateKeys

__all__ = ["HMAC_ALGORITHMS", "PUBLIC_KEY_ALGORITHMS", "JWTBearerProvider", "JWTSettings",
           "KeySource", "bearer_challenge", "mint_token"]

# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
HMAC_ALGORITHMS = frozenset(_HMAC_MIN_BYTES)
PUBLIC_KEY_ALGORITHMS = frozenset(get_default_algorithms()) - HMAC_ALGORITHMS - {"none"}
# SECURITY: a bearer token is small; a huge one is refused before any parsing.
_MAX_TOKEN_LENGTH = 16384

_SCOPES_NONE: frozenset[str] = frozenset()


def _as_tuple(value: Any, name: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(item, str) and item for item in items):
        raise ValueError(f"JWT settings: {name} must be a string or a list of non-empty strings")
    return items


@dataclass(frozen=True)
class JWTSettings:
    """How one bearer-JWT scheme verifies its tokens.

    Attributes:
        algorithms: the accepted algorithms, fixed per scheme: all HMAC (HS256/384/512)
            or all public key (RS*, PS*, ES*, EdDSA); never ``none``.
        secret: the shared secret of an HMAC scheme (at least as many bytes as the hash).
        public_key: the PEM public key of a public-key scheme (or use `jwks_url`).
        jwks_url: a JWK Set URL for a public-key scheme (https, or http to localhost).
        issuer: the required ``iss``, when set.
        audience: the accepted ``aud`` value(s), when set. A token that has an ``aud``
            is refused when no audience is configured (RFC 7519 §4.1.3).
        leeway_s: clock skew allowed on ``exp``, ``nbf`` and ``iat``.
        required_claims: claims a token must carry.
        cookie_name: also read the token from this cookie (after ``Authorization``).
        verified_cache_size: verified tokens remembered (0 disables the cache).
        verified_cache_ttl_s: longest time a verified token is remembered.
        jwks_cache_ttl_s, jwks_refresh_cooldown_s, jwks_timeout_s, jwks_negative_ttl_s:
            see `JWKSKeySource`.

    Raises:
        ValueError: for an unknown or ``none`` algorithm, HMAC mixed with public-key
            algorithms, key material that does not fit the algorithms, or bad numbers.
    """

    algorithms: tuple[str, ...]
    secret: str | None = field(default=None, repr=False)
    public_key: str | None = field(default=None, repr=False)
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | tuple[str, ...] | None = None
    leeway_s: float = 30.0
    required_claims: tuple[str, ...] = ("exp",)
    cookie_name: str | None = None
    verified_cache_size: int = 10000
    verified_cache_ttl_s: float = 300.0
    jwks_cache_ttl_s: float = 300.0
    jwks_refresh_cooldown_s: float = 30.0
    jwks_timeout_s: float = 3.0
    jwks_negative_ttl_s: float = 60.0

    def __post_init__(self) -> None:
        # Config files give lists; keep the dataclass hashable and immutable.
        object.__setattr__(self, "algorithms", _as_tuple(self.algorithms, "algorithms"))
        object.__setattr__(self, "required_claims",
                           _as_tuple(self.required_claims, "required_claims")
                           if self.required_claims else ())
        if self.audience is not None and not isinstance(self.audience, str):
            object.__setattr__(self, "audience", _as_tuple(self.audience, "audience"))
        algorithms = set(self.algorithms)
        if not algorithms:
            raise ValueError("JWT settings: algorithms must name at least one algorithm")
        if any(alg.lower() == "none" for alg in algorithms):
            # SECURITY: an unsigned token is never accepted.
            raise ValueError("JWT settings: the 'none' algorithm is never accepted")
        unknown = algorithms - HMAC_ALGORITHMS - PUBLIC_KEY_ALGORITHMS
        if unknown:
            raise ValueError(f"JWT settings: unknown algorithm(s) {sorted(unknown)}; use "
                             f"{sorted(HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS)}")
        hmac_algs = algorithms & HMAC_ALGORITHMS
        if hmac_algs and algorithms - HMAC_ALGORITHMS:
            # SECURITY: with both families, a token signed with the public key as an HMAC
            # secret could pass (algorithm confusion, RFC 8725 §2.1).
            raise ValueError(f"JWT settings: algorithms {sorted(algorithms)} mix HMAC (HS*) "
                             f"with public-key algorithms; a scheme uses one family only")
        if hmac_algs:
            if self.public_key is not None or self.jwks_url is not None:
                raise ValueError("JWT settings: HS* algorithms verify with `secret`, not "
                                 "`public_key` or `jwks_url`")
            if self.secret is not None:
                need = max(_HMAC_MIN_BYTES[alg] for alg in hmac_algs)
                if len(self.secret.encode()) < need:
                    raise ValueError(
                        f"JWT settings: the secret is {len(self.secret.encode())} bytes; "
                        f"{sorted(hmac_algs)} need at least {need} (RFC 7518 §3.2)")
        else:
            if self.secret is not None:
                raise ValueError("JWT settings: public-key algorithms verify with "
                                 "`public_key` or `jwks_url`, not `secret`")
            if self.public_key is not None and self.jwks_url is not None:
                raise ValueError("JWT settings: give `public_key` or `jwks_url`, not both")
        if self.jwks_url is not None:
            check_key_url(self.jwks_url, "jwks_url")
        for name in ("leeway_s", "verified_cache_size", "jwks_refresh_cooldown_s",
                     "jwks_negative_ttl_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"JWT settings: {name} must not be negative")
        for name in ("verified_cache_ttl_s", "jwks_cache_ttl_s", "jwks_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"JWT settings: {name} must be positive")

    @property
    def uses_hmac(self) -> bool:
        """Whether this scheme verifies with a shared secret."""
        return self.algorithms[0] in HMAC_ALGORITHMS


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


def _category(ex: PyJWTError) -> str:
    if isinstance(ex, ExpiredSignatureError):
        return "expired"
    if isinstance(ex, ImmatureSignatureError):
        return "not_yet_valid"
    if isinstance(ex, InvalidSignatureError):
        return "invalid_signature"
    if isinstance(ex, InvalidAlgorithmError):
        return "invalid_algorithm"
    if isinstance(ex, DecodeError) or type(ex) is InvalidTokenError:
        return "malformed"  # InvalidTokenError itself: a bad header (kid, crit)
    return "invalid_claims"


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
        self._algorithms = list(settings.algorithms)
        self._allowed = frozenset(settings.algorithms)
        self._leeway = settings.leeway_s
        self._audience = settings.audience
        self._cache: OrderedDict[str, tuple[float, float, Principal]] = OrderedDict()
        self._cache_size = settings.verified_cache_size
        self._cache_ttl = settings.verified_cache_ttl_s
        self._decoder = pyjwt.PyJWT({"require": list(settings.required_claims)})
        self._challenges: dict[str | None, str] = {None: bearer_challenge(scheme_name)}
        self._read_cookie = (key_reader("cookie", settings.cookie_name)
                             if settings.cookie_name else None)
        self._key: Any = None
        if key_source is None and settings.jwks_url is not None:
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
            self._key = self._load_public_key(settings)

    def _load_public_key(self, settings: JWTSettings) -> Any:
        if not settings.public_key:
            raise ValueError(f"security scheme {self.scheme_name!r}: public-key algorithms "
                             f"need a `public_key` (PEM) or a `jwks_url`")
        try:
            key = load_pem_public_key(settings.public_key.encode())
        except (ValueError, TypeError) as ex:
            raise ValueError(f"security scheme {self.scheme_name!r}: `public_key` is not a "
                             f"PEM public key ({ex})") from None
        algorithms = get_default_algorithms()
        for alg in settings.algorithms:
            try:
                algorithms[alg].prepare_key(key)
            except (PyJWTError, TypeError, ValueError):
                raise ValueError(f"security scheme {self.scheme_name!r}: the public key "
                                 f"({type(key).__name__}) cannot verify {alg}") from None
        return key

    def __repr__(self) -> str:
        # SECURITY: the secret and cached tokens never appear in reprs.
        return (f"JWTBearerProvider({self.scheme_name!r}, algorithms={self._algorithms}, "
                f"cached={len(self._cache)})")

    def challenge(self, error: str | None = None) -> str:
        """Return the WWW-Authenticate value for a 401 (or 403 with an error)."""
        found = self._challenges.get(error)
        if found is None:
            found = self._challenges[error] = bearer_challenge(self.scheme_name, error)
        return found

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
        issuer = self.settings.issuer
        try:
            if self.key_source is None:
                key = self._key
            else:
                header = pyjwt.get_unverified_header(token)
                alg, kid = header.get("alg"), header.get("kid")
                if not isinstance(alg, str) or alg not in self._allowed:
                    raise InvalidAlgorithmError(f"alg {alg!r} is not one of {self._algorithms}")
                key = self.key_source.key_for(kid, alg)
                if issuer is None:
                    issuer = getattr(self.key_source, "issuer", None)
            claims = self._decoder.decode(token, key, algorithms=self._algorithms,
                                          audience=self._audience, issuer=issuer,
                                          leeway=self._leeway)
        except PyJWTError as ex:
            raise InvalidCredentials(_category(ex), f"{type(ex).__name__}: {ex}; "
                                                    f"{fingerprint(token)}") from None
        except InvalidCredentials as ex:
            raise InvalidCredentials(ex.category, f"{ex.detail}; {fingerprint(token)}") from None
        subject = claims.get("sub")
        principal = Principal(self.scheme_name, subject if isinstance(subject, str) else None,
                              _scopes(claims), claims)
        if self._cache_size:
            self._remember(token, claims, principal)
        return principal

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
    headers = {"kid": kid} if kid is not None else None
    return pyjwt.encode(dict(claims), secret_or_private_key, algorithm=algorithm,
                        headers=headers)
