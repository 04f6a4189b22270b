"""Per-scheme provider settings from the config file's ``security:`` section and the env.

The section has the shape of BRRTRouter's ``config.yaml``, so its users can bring theirs::

    security:
      api_keys:        {ApiKeyHeader: {key: k1}}             # or keys: [k1, k2]; header_name
      remote_api_keys: {ApiKeyHeader: {verify_url: https://auth/verify, timeout_ms: 500,
                                       cache_ttl_secs: 60, negative_cache_ttl_secs: 10}}
      bearer:          {BearerAuth: {secret: ..., algorithms: [HS256], iss: ..., aud: ...}}
      oauth2:          {OAuth2: {public_key_file: key.pem}}   # same keys as bearer
      jwks:            {BearerAuth: {jwks_url: https://idp/jwks.json, iss: ..., aud: ...}}
      oidc:            {Oidc: {aud: my-api}}                  # discovery_url: the spec's
      basic:           {BasicAuth: {users: {alice: "scrypt$..."}}}

``bearer:`` and ``oauth2:`` also take BRRTRouter's flat form (``bearer: {secret: ...,
cookie_name: ...}``), applying to every http-bearer (resp. oauth2) scheme. Environment
variables override the file, the scheme as written or upper-cased: ``BRRTR_API_KEY__<S>``,
``BRRTR_REMOTE_API_KEY_URL__<S>``, ``BRRTR_JWT_SECRET__<S>``, ``BRRTR_JWT_PUBLIC_KEY__<S>``
(PEM text or a path), ``BRRTR_JWKS_URL__<S>``.

For a JWT scheme the most specific source of *key material* (secret, public key or JWKS
URL) wins whole (`brrt_actors.security.resolve_jwt`). Values never appear in messages
(`brrt_actors.security.resolve_values` reads them).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from brrt_actors.errors import ConfigError
from brrt_actors.security.basic import PasswordHash, parse_password_hash
from brrt_actors.security.remote_apikey import RemoteApiKeySettings
from brrt_actors.security.resolve_jwt import jwt_scheme
from brrt_actors.security.resolve_values import SettingReader, scheme_variable
from brrt_actors.security.scheme_settings import (
    API_KEY_ENV,
    ASYMMETRIC_ALGORITHMS,
    DEV_API_KEY,
    DEV_JWT_SECRET,
    DEV_PASSWORD,
    DEV_USER,
    HMAC_ALGORITHMS,
    REMOTE_URL_ENV,
    RSA_ALGORITHMS,
    ApiKeySettings,
    BasicSettings,
    OIDCSettings,
    SchemeSettings,
    SecurityConfig,
    dev_jwt_secret,
    dev_settings,
    how_to_configure,
    scheme_kind,
    variable_names,
)
from brrt_actors.spec.model import SecurityScheme

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEV_API_KEY",
    "DEV_JWT_SECRET",
    "DEV_PASSWORD",
    "DEV_USER",
    "HMAC_ALGORITHMS",
    "RSA_ALGORITHMS",
    "ApiKeySettings",
    "BasicSettings",
    "OIDCSettings",
    "SchemeSettings",
    "SecurityConfig",
    "dev_jwt_secret",
    "dev_settings",
    "how_to_configure",
    "resolve_security",
    "scheme_kind",
    "variable_names",
]

_SECTIONS: Final = ("api_keys", "remote_api_keys", "bearer", "oauth2", "jwks", "oidc", "basic",
                    "propelauth")
_JWT_COMMON: Final = frozenset({"algorithms", "iss", "aud", "leeway_secs", "cookie_name",
                                "required_claims", "cache_ttl_secs"})
_ALLOWED: Final[Mapping[str, frozenset[str]]] = {
    "api_keys": frozenset({"key", "keys", "header_name"}),
    "remote_api_keys": frozenset({"verify_url", "timeout_ms", "header_name", "verify_header",
                                  "cache_ttl_secs", "negative_cache_ttl_secs"}),
    "bearer": _JWT_COMMON | {"secret", "public_key", "public_key_file", "jwks_url", "signature"},
    "oauth2": _JWT_COMMON | {"secret", "public_key", "public_key_file", "jwks_url", "signature"},
    "jwks": _JWT_COMMON | {"jwks_url"},
    "oidc": _JWT_COMMON | {"discovery_url"},
    "basic": frozenset({"users", "cache_ttl_secs"}),
}
# Which kinds of scheme each section may configure.
_SECTION_KINDS: Final[Mapping[str, frozenset[str]]] = {
    "api_keys": frozenset({"apiKey"}),
    "remote_api_keys": frozenset({"apiKey"}),
    "bearer": frozenset({"bearer", "oauth2", "openIdConnect"}),
    "oauth2": frozenset({"bearer", "oauth2", "openIdConnect"}),
    "jwks": frozenset({"bearer", "oauth2", "openIdConnect"}),
    "oidc": frozenset({"bearer", "oauth2", "openIdConnect"}),
    "basic": frozenset({"basic"}),
}


# -- the section -----------------------------------------------------------------------------

def _split_sections(section: Mapping[str, Any], schemes: Mapping[str, SecurityScheme],
                    reader: SettingReader) -> tuple[dict[str, dict[str, dict[str, Any]]],
                                              dict[str, dict[str, Any]]]:
    """Return the per-scheme entries by section, and the flat bearer/oauth2 settings."""
    entries: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in _ALLOWED}
    flat: dict[str, dict[str, Any]] = {"bearer": {}, "oauth2": {}}
    for key, value in section.items():
        if key not in _SECTIONS:
            reader.problem(f"security.{key}", "unknown key; allowed: " + ", ".join(
                sorted(_SECTIONS)))
            continue
        if key == "propelauth":
            reader.note("security.propelauth", "PropelAuth is not supported, this section is "
                        "ignored; give its JWKS under security.jwks.<Scheme> (jwks_url, iss, "
                        "aud) instead")
            continue
        if value is None:
            continue  # BRRTRouter's template: a section whose entries are all commented out
        if not isinstance(value, dict):
            reader.problem(f"security.{key}", "must be a mapping of security scheme names")
            continue
        for name, entry in value.items():
            where = f"security.{key}.{name}"
            if key in flat and name in _ALLOWED[key]:
                flat[key][name] = entry  # BRRTRouter's flat form
                continue
            scheme = schemes.get(str(name))
            if scheme is None:
                if not isinstance(entry, dict) and entry is not None:
                    reader.problem(where, "unknown setting (and no security scheme has this "
                                          "name); allowed: " + ", ".join(
                                              sorted(_ALLOWED[key] - {"signature"})))
                else:
                    reader.note(where, "the spec has no security scheme of this name; ignored")
                continue
            kind = scheme_kind(scheme)
            if kind not in _SECTION_KINDS[key]:
                reader.problem(where, f"{name!r} is {_describe_kind(scheme)} scheme; "
                                      + how_to_configure(scheme))
                continue
            checked = reader.entry(entry, where, _ALLOWED[key])
            if checked is not None:
                entries[key][str(name)] = checked
    for key, values in flat.items():
        reader.entry(values, f"security.{key}", _ALLOWED[key])
    return entries, flat


def _describe_kind(scheme: SecurityScheme) -> str:
    kind = scheme_kind(scheme)
    return {"apiKey": "an apiKey", "bearer": "an http bearer", "basic": "an http basic",
            "oauth2": "an oauth2", "openIdConnect": "an openIdConnect"}.get(kind, "another")


def _api_key(scheme: SecurityScheme, entries: Mapping[str, Mapping[str, dict[str, Any]]],
             environ: Mapping[str, str], reader: SettingReader) -> SchemeSettings | None:
    name = scheme.name
    static = entries["api_keys"].get(name)
    remote = entries["remote_api_keys"].get(name)
    header_name: str | None = None
    env_keys = scheme_variable(environ, API_KEY_ENV, name, reader)
    env_url = scheme_variable(environ, REMOTE_URL_ENV, name, reader)
    if env_keys is not None and env_url is not None:
        reader.problem(env_keys[0], f"both {env_keys[0]} and {env_url[0]} are set; keep one")
        return None
    if static is not None and remote is not None and env_keys is None and env_url is None:
        reader.problem(f"security.api_keys.{name}", f"also configured under "
                       f"security.remote_api_keys.{name}; keep one")
        return None
    if static is not None and static.get("header_name") is not None:
        header_name = reader.text(static["header_name"], f"security.api_keys.{name}.header_name")
    if env_keys is not None:
        keys = tuple(key.strip() for key in env_keys[1].split(",") if key.strip())
        return ApiKeySettings(keys, header_name) if keys else None
    if env_url is not None or remote is not None:
        return _remote(name, remote or {}, env_url, reader)
    if static is None:
        return None
    where = f"security.api_keys.{name}"
    keys_found: list[Any] = []
    if static.get("key") is not None:
        keys_found.append(static["key"])
    extra = static.get("keys")
    if extra is not None and not isinstance(extra, list):
        reader.problem(f"{where}.keys", "must be a list of keys")
        return None
    keys_found.extend(extra or [])
    if not keys_found or not all(isinstance(key, str) and key.strip() for key in keys_found):
        reader.problem(where, "keys must be non-empty strings (give `key` or `keys`)")
        return None
    return ApiKeySettings(tuple(key.strip() for key in keys_found), header_name)


def _remote(name: str, entry: Mapping[str, Any], env_url: tuple[str, str] | None,
            reader: SettingReader) -> RemoteApiKeySettings | None:
    where = f"security.remote_api_keys.{name}"
    if env_url is not None:
        url = reader.url(env_url[1], env_url[0])
    elif "verify_url" in entry:
        url = reader.url(entry["verify_url"], f"{where}.verify_url")
    else:
        reader.problem(f"{where}.verify_url", "is required")
        return None
    values: dict[str, Any] = {}
    for key, target, scale in (("timeout_ms", "timeout_s", 0.001),
                               ("cache_ttl_secs", "cache_ttl_s", 1.0),
                               ("negative_cache_ttl_secs", "negative_cache_ttl_s", 1.0)):
        if key in entry:
            values[target] = reader.number(entry[key], f"{where}.{key}", scale)
    for key in ("header_name", "verify_header"):
        if key in entry:
            values[key] = reader.text(entry[key], f"{where}.{key}")
    if url is None or any(value is None for value in values.values()):
        return None
    if values.get("timeout_s") == 0:
        reader.problem(f"{where}.timeout_ms", "must be > 0")
        return None
    return RemoteApiKeySettings(url, **values)


def _basic(scheme: SecurityScheme, entries: Mapping[str, Mapping[str, dict[str, Any]]],
           reader: SettingReader) -> BasicSettings | None:
    entry = entries["basic"].get(scheme.name)
    if entry is None:
        return None
    where = f"security.basic.{scheme.name}"
    users = entry.get("users")
    if not isinstance(users, dict) or not users:
        reader.problem(f"{where}.users", "must map user names to password hashes "
                                         "(from `brrt hash-password`)")
        return None
    parsed: dict[str, PasswordHash] = {}
    for user, hashed in users.items():
        if not isinstance(user, str) or not user or ":" in user:
            reader.problem(f"{where}.users", "user names must be non-empty strings without ':'")
            continue
        try:
            parsed[user] = parse_password_hash(hashed)
        except ValueError as ex:
            reader.problem(f"{where}.users.{user}", str(ex))
    ttl = reader.number(entry.get("cache_ttl_secs", 60), f"{where}.cache_ttl_secs")
    if len(parsed) != len(users) or ttl is None:
        return None
    return BasicSettings(parsed, ttl)


def resolve_security(schemes: Mapping[str, SecurityScheme], section: Mapping[str, Any] | None,
                     environ: Mapping[str, str], *, config_file: str | None = None
                     ) -> SecurityConfig:
    """Read the settings of every scheme of the spec from the env and the config file.

    Args:
        schemes: the spec's security schemes by name.
        section: the config file's ``security`` section (as written; None without one).
        environ: where the ``BRRTR_*__<Scheme>`` variables are read.
        config_file: the config file's path (named in messages; relative key files are
            read beside it).

    Returns:
        The settings of each configured scheme (unconfigured ones are absent), and notes
        (accepted but ignored or risky settings) to log as warnings.

    Raises:
        ConfigError: every malformed value, listed together, named by config key or
            variable (never showing a secret).
    """
    prefix = f"{config_file}: " if config_file else ""
    reader = SettingReader(prefix, Path(config_file).resolve().parent if config_file else None)
    entries, flat = _split_sections(section or {}, schemes, reader)
    found: dict[str, SchemeSettings] = {}
    readers: Mapping[str, Callable[[SecurityScheme], SchemeSettings | None]] = {
        "apiKey": lambda scheme: _api_key(scheme, entries, environ, reader),
        "basic": lambda scheme: _basic(scheme, entries, reader),
        "bearer": lambda scheme: jwt_scheme(scheme, entries, flat, environ, reader),
        "oauth2": lambda scheme: jwt_scheme(scheme, entries, flat, environ, reader),
        "openIdConnect": lambda scheme: jwt_scheme(scheme, entries, flat, environ, reader),
    }
    for name in sorted(schemes):
        scheme = schemes[name]
        read = readers.get(scheme_kind(scheme))
        settings = read(scheme) if read is not None else None
        if settings is not None:
            found[name] = settings
    if reader.problems:
        raise ConfigError(list(dict.fromkeys(reader.problems)))
    return SecurityConfig(found, tuple(dict.fromkeys(reader.notes)))
