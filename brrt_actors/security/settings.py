"""What each security scheme is configured with: the settings types, names, dev defaults.

`brrt_actors.security.config` reads these from the config file and the environment; this
module says what they are, which variable or config key configures which kind of scheme
(for the fail-closed start message), and the documented ``--dev`` defaults.
"""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ..spec.model import SecurityScheme
from .basic import PasswordHash, parse_password_hash
from .jwt import JWTSettings
from .remote_apikey import RemoteApiKeySettings

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
    "JWT_PUBLIC_KEY_ENV",
    "JWT_SECRET_ENV",
    "REMOTE_URL_ENV",
    "RSA_ALGORITHMS",
    "ApiKeySettings",
    "BasicSettings",
    "OIDCSettings",
    "SchemeSettings",
    "SecurityConfig",
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
DEV_JWT_SECRET: Final = "brrt-dev-secret-never-use-in-production"
DEV_USER: Final = "dev"
DEV_PASSWORD: Final = "dev"

HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS: Final = ("ES256", "ES384", "ES512")
ASYMMETRIC_ALGORITHMS: Final = (*RSA_ALGORITHMS, *EC_ALGORITHMS, "EdDSA")


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
            "(brrt_actors.security.register_provider or create_app(..., "
            "security_providers=...))")


# -- development defaults --------------------------------------------------------------------

def _dev_password_hash() -> PasswordHash:
    # NOTE: a cheap PBKDF2 is enough for a password that is printed in the docs anyway.
    salt, iterations = "brrt-dev", 1000
    digest = hashlib.pbkdf2_hmac("sha256", DEV_PASSWORD.encode(), salt.encode(), iterations)
    return parse_password_hash(
        f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}")


def dev_settings(scheme: SecurityScheme) -> tuple[SchemeSettings, str] | None:
    """Return the documented ``--dev`` default of `scheme` and a description, if it has one."""
    kind = scheme_kind(scheme)
    if kind == "apiKey":
        return ApiKeySettings((DEV_API_KEY,)), f"API key {DEV_API_KEY!r}"
    if kind in ("bearer", "oauth2", "openIdConnect"):
        return (JWTSettings(algorithms=("HS256",), secret=DEV_JWT_SECRET),
                f"HS256 tokens signed with {DEV_JWT_SECRET!r} "
                f"(brrt token --dev --scheme {scheme.name})")
    if kind == "basic":
        return (BasicSettings({DEV_USER: _dev_password_hash()}),
                f"user {DEV_USER!r} with password {DEV_PASSWORD!r}")
    return None
