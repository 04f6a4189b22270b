"""What each security scheme is configured with: the settings types, names, dev defaults.

`brrt_actors.security.resolve` reads these from the config file and the environment; this
module says what they are and the rules they obey (`JWTSettings` checks itself, and
`check_key_url` says where keys may come from), which variable or config key configures
which kind of scheme (for the fail-closed start message), and the documented ``--dev``
defaults. It imports neither pyjwt nor cryptography: reading the settings is part of every
start, verifying a token is not.
"""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from brrt_actors.security._redact import safe_url
from brrt_actors.security.basic import PasswordHash, parse_password_hash
from brrt_actors.security.remote_apikey import RemoteApiKeySettings
from brrt_actors.spec.model import SecurityScheme

__all__ = [
    "API_KEY_ENV",
    "ASYMMETRIC_ALGORITHMS",
    "DEV_API_KEY",
    "DEV_JWT_SECRET",
    "DEV_PASSWORD",
    "DEV_USER",
    "EC_ALGORITHMS",
    "HMAC_ALGORITHMS",
    "JWKS_URL_ENV",
    "JWT_HMAC_ALGORITHMS",
    "JWT_PUBLIC_KEY_ALGORITHMS",
    "JWT_PUBLIC_KEY_ENV",
    "JWT_SECRET_ENV",
    "LOCAL_HOSTS",
    "REMOTE_URL_ENV",
    "RSA_ALGORITHMS",
    "ApiKeySettings",
    "BasicSettings",
    "JWTSettings",
    "OIDCSettings",
    "SchemeSettings",
    "SecurityConfig",
    "check_key_url",
    "dev_jwt_secret",
    "dev_settings",
    "how_to_configure",
    "scheme_kind",
    "variable_names",
]

API_KEY_ENV: Final = "BRRTR_API_KEY"
REMOTE_URL_ENV: Final = "BRRTR_REMOTE_API_KEY_URL"
JWT_SECRET_ENV: Final = "BRRTR_JWT_SECRET"
JWT_PUBLIC_KEY_ENV: Final = "BRRTR_JWT_PUBLIC_KEY"
JWKS_URL_ENV: Final = "BRRTR_JWKS_URL"

DEV_API_KEY: Final = "dev"
# NOTE: HS256 needs a 32-byte secret at least (RFC 7518 3.2, enforced by JWTSettings).
#: The start of every development secret (`dev_jwt_secret` adds the scheme's name).
DEV_JWT_SECRET: Final = "brrt-dev-secret-never-use-in-production"
DEV_USER: Final = "dev"
DEV_PASSWORD: Final = "dev"

HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS: Final = ("ES256", "ES384", "ES512")
ASYMMETRIC_ALGORITHMS: Final = (*RSA_ALGORITHMS, *EC_ALGORITHMS, "EdDSA")

# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
_HMAC_MIN_BYTES: Final = {"HS256": 32, "HS384": 48, "HS512": 64}
JWT_HMAC_ALGORITHMS: Final = frozenset(_HMAC_MIN_BYTES)
# Every public-key algorithm pyjwt verifies; written out so that checking settings does not
# import pyjwt (tests/security/test_jwt.py checks that pyjwt still agrees).
JWT_PUBLIC_KEY_ALGORITHMS: Final = frozenset((*ASYMMETRIC_ALGORITHMS, "ES256K", "ES521"))

# The only hosts keys may come from over plain http (tests, sidecars).
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def check_key_url(url: str, what: str = "jwks_url") -> None:
    """Refuse a URL that keys must not come from.

    Keys (and documents that point to keys) come over https; plain http is allowed only to
    this machine (localhost, 127.0.0.1, ::1), for tests and sidecars.

    Raises:
        ValueError: naming `what` and the rule.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ValueError(f"{what}: {url!r} is not a valid URL") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host in LOCAL_HOSTS:
        return
    if parts.scheme == "http":
        raise ValueError(f"{what}: {safe_url(url)} uses plain http to {host!r}; keys must come "
                         f"over https (http is allowed only to localhost, 127.0.0.1 or ::1)")
    raise ValueError(f"{what}: {safe_url(url)} must be an https:// URL")


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
        unknown = algorithms - JWT_HMAC_ALGORITHMS - JWT_PUBLIC_KEY_ALGORITHMS
        if unknown:
            raise ValueError(f"JWT settings: unknown algorithm(s) {sorted(unknown)}; use "
                             f"{sorted(JWT_HMAC_ALGORITHMS | JWT_PUBLIC_KEY_ALGORITHMS)}")
        hmac_algs = algorithms & JWT_HMAC_ALGORITHMS
        if hmac_algs and algorithms - JWT_HMAC_ALGORITHMS:
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
        return self.algorithms[0] in JWT_HMAC_ALGORITHMS



@dataclass(frozen=True, slots=True)
class ApiKeySettings:
    """The static keys of one apiKey scheme (compared in constant time)."""

    keys: tuple[str, ...] = field(repr=False)
    header_name: str | None = None

    def __repr__(self) -> str:
        return (f"ApiKeySettings(keys=<{len(self.keys)} redacted>, "
                f"header_name={self.header_name!r})")


@dataclass(frozen=True, slots=True)
class BasicSettings:
    """The users of one http-basic scheme, by name, with their password hashes."""

    users: Mapping[str, PasswordHash] = field(repr=False)
    cache_ttl_s: float = 60.0

    def __repr__(self) -> str:
        return f"BasicSettings(users={sorted(self.users)!r}, cache_ttl_s={self.cache_ttl_s:g})"


@dataclass(frozen=True, slots=True)
class OIDCSettings:
    """An OpenID Connect scheme: its discovery document and how its tokens are checked."""

    discovery_url: str
    jwt: JWTSettings


SchemeSettings = ApiKeySettings | RemoteApiKeySettings | JWTSettings | OIDCSettings | BasicSettings


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """What `resolve_security` found: settings per configured scheme, and notes to log."""

    schemes: Mapping[str, SchemeSettings]
    notes: tuple[str, ...] = ()


# -- naming ----------------------------------------------------------------------------------

def scheme_kind(scheme: SecurityScheme) -> str:
    """Return ``apiKey``, ``bearer``, ``basic``, ``oauth2``, ``openIdConnect`` or ``other``."""
    if scheme.type == "http":
        kind = (scheme.scheme or "").lower()
        return kind if kind in ("bearer", "basic") else "other"
    return scheme.type if scheme.type in ("apiKey", "oauth2", "openIdConnect") else "other"


def variable_names(base: str, scheme_name: str) -> tuple[str, ...]:
    """Return the env variables of `base` for a scheme: as written, then upper-cased."""
    return tuple(dict.fromkeys((f"{base}__{scheme_name}", f"{base}__{scheme_name.upper()}")))


def _either(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]} (or {names[1]})"


def how_to_configure(scheme: SecurityScheme) -> str:
    """Say which env variable or config key would configure `scheme`."""
    name = scheme.name
    kind = scheme_kind(scheme)
    if kind == "apiKey":
        return (f"set {_either(variable_names(API_KEY_ENV, name))}, or "
                f"security.api_keys.{name}.key (or security.remote_api_keys.{name}.verify_url)"
                " in the config file")
    if kind in ("bearer", "oauth2"):
        section = "bearer" if kind == "bearer" else "oauth2"
        return (f"set {_either(variable_names(JWT_SECRET_ENV, name))}, or "
                f"security.{section}.{name}.secret or security.jwks.{name}.jwks_url in the "
                "config file")
    if kind == "openIdConnect":
        return (f"add security.oidc.{name} (with aud; discovery_url defaults to the scheme's "
                "openIdConnectUrl) to the config file")
    if kind == "basic":
        return (f"add security.basic.{name}.users (name: hash from `brrt hash-password`) to the "
                "config file")
    what = scheme.type + (f" {scheme.scheme}" if scheme.scheme else "")
    return (f"{what} schemes are not built in: register a provider for {name!r} from Python "
            "(build_app(..., security_providers=...), or SECURITY_PROVIDERS in the handlers "
            "package)")


# -- development defaults --------------------------------------------------------------------

def _dev_password_hash() -> PasswordHash:
    # NOTE: a cheap PBKDF2 is enough for a password that is printed in the docs anyway.
    salt, iterations = "brrt-dev", 1000
    digest = hashlib.pbkdf2_hmac("sha256", DEV_PASSWORD.encode(), salt.encode(), iterations)
    return parse_password_hash(
        f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}")


def dev_jwt_secret(scheme_name: str) -> str:
    """Return the ``--dev`` HS256 secret of one bearer, OAuth2 or OpenID Connect scheme.

    Each scheme has its own (``brrt-dev-secret-never-use-in-production-<scheme>``), so that a
    token minted for one scheme is not accepted by another, as with real secrets.
    """
    return f"{DEV_JWT_SECRET}-{scheme_name}"


def dev_settings(scheme: SecurityScheme) -> tuple[SchemeSettings, str] | None:
    """Return the documented ``--dev`` default of `scheme` and a description, if it has one."""
    kind = scheme_kind(scheme)
    if kind == "apiKey":
        return ApiKeySettings((DEV_API_KEY,)), f"API key {DEV_API_KEY!r}"
    if kind in ("bearer", "oauth2", "openIdConnect"):
        secret = dev_jwt_secret(scheme.name)
        return (JWTSettings(algorithms=("HS256",), secret=secret),
                f"HS256 tokens signed with its own development secret {secret!r} "
                f"(brrt token --dev --scheme {scheme.name})")
    if kind == "basic":
        return (BasicSettings({DEV_USER: _dev_password_hash()}),
                f"user {DEV_USER!r} with password {DEV_PASSWORD!r}")
    return None
