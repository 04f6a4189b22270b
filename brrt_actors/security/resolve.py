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
URL) wins whole: a secret from the env replaces a file's public key, and the algorithms
given beside the replaced key go with it. Values never appear in messages.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from brrt_actors.errors import ConfigError, Problem
from brrt_actors.security.basic import PasswordHash, parse_password_hash
from brrt_actors.security.remote_apikey import RemoteApiKeySettings
from brrt_actors.security.scheme_settings import (
    API_KEY_ENV,
    ASYMMETRIC_ALGORITHMS,
    DEV_API_KEY,
    DEV_JWT_SECRET,
    DEV_PASSWORD,
    DEV_USER,
    EC_ALGORITHMS,
    HMAC_ALGORITHMS,
    JWKS_URL_ENV,
    JWT_PUBLIC_KEY_ENV,
    JWT_SECRET_ENV,
    REMOTE_URL_ENV,
    RSA_ALGORITHMS,
    ApiKeySettings,
    BasicSettings,
    JWTSettings,
    OIDCSettings,
    SchemeSettings,
    SecurityConfig,
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
    "dev_settings",
    "how_to_configure",
    "resolve_security",
    "scheme_kind",
    "variable_names",
]

_SECTIONS: Final = ("api_keys", "remote_api_keys", "bearer", "oauth2", "jwks", "oidc", "basic",
                    "propelauth")
_KEY_MATERIAL: Final = ("secret", "public_key", "public_key_file", "jwks_url")
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


# -- value checks ----------------------------------------------------------------------------

class _Reader:
    """Collects problems while reading values; each message names where, never the value."""

    def __init__(self, prefix: str, base_dir: Path | None) -> None:
        self.prefix = prefix
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    def prefix_of(self, where: str) -> str:
        return where if where.startswith(("BRRTR_", "/")) else self.prefix + where

    def problem(self, where: str, message: str) -> None:
        self.problems.append((self.prefix_of(where), message))

    def note(self, where: str, message: str) -> None:
        self.notes.append(f"{self.prefix_of(where)}: {message}")

    def text(self, value: Any, where: str) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(where, "must be a non-empty string")
            return None
        return value.strip()

    def number(self, value: Any, where: str, scale: float = 1.0) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
                or not math.isfinite(value):
            self.problem(where, "must be a number >= 0")
            return None
        return float(value) * scale

    def texts(self, value: Any, where: str) -> tuple[str, ...] | None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(
                isinstance(item, str) and item.strip() for item in value):
            self.problem(where, "must be a non-empty string or a list of them")
            return None
        return tuple(item.strip() for item in value)

    def url(self, value: Any, where: str) -> str | None:
        url = self.text(value, where)
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(where, "must be an http:// or https:// URL")
            return None
        if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            self.note(where, "a plain http:// URL to another host: credentials and keys "
                             "travel unencrypted (use https://)")
        return url

    def entry(self, value: Any, where: str, allowed: frozenset[str]) -> dict[str, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(where, "must be a mapping")
            return None
        for key in value:
            if key not in allowed:
                self.problem(f"{where}.{key}", "unknown key; allowed: " + ", ".join(
                    sorted(allowed - {"signature"})))
        return value


def _env(environ: Mapping[str, str], base: str, scheme_name: str,
         reader: _Reader) -> tuple[str, str] | None:
    found = [(name, value) for name in variable_names(base, scheme_name)
             if (value := environ.get(name)) is not None and value.strip()]
    if len(found) == 2 and found[0][1].strip() != found[1][1].strip():
        reader.problem(found[0][0], f"both {found[0][0]} and {found[1][0]} are set, to "
                                    "different values; keep one")
    return found[0] if found else None


# -- the section -----------------------------------------------------------------------------

def _split_sections(section: Mapping[str, Any], schemes: Mapping[str, SecurityScheme],
                    reader: _Reader) -> tuple[dict[str, dict[str, dict[str, Any]]],
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
             environ: Mapping[str, str], reader: _Reader) -> SchemeSettings | None:
    name = scheme.name
    static = entries["api_keys"].get(name)
    remote = entries["remote_api_keys"].get(name)
    header_name: str | None = None
    env_keys = _env(environ, API_KEY_ENV, name, reader)
    env_url = _env(environ, REMOTE_URL_ENV, name, reader)
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
            reader: _Reader) -> RemoteApiKeySettings | None:
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
           reader: _Reader) -> BasicSettings | None:
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


# -- JWT schemes -----------------------------------------------------------------------------

@dataclass(slots=True)
class _Layer:
    """One source of a JWT scheme's settings (flat section, per-scheme entries, env)."""

    values: dict[str, tuple[Any, str]] = field(default_factory=dict)  # key: (value, where)


def _jwt_layers(scheme: SecurityScheme, entries: Mapping[str, Mapping[str, dict[str, Any]]],
                flat: Mapping[str, dict[str, Any]], environ: Mapping[str, str],
                reader: _Reader) -> tuple[list[_Layer], bool]:
    name, kind = scheme.name, scheme_kind(scheme)
    layers: list[_Layer] = []
    flat_section = {"bearer": "bearer", "oauth2": "oauth2"}.get(kind)
    if flat_section is not None and flat[flat_section]:
        layers.append(_Layer({key: (value, f"security.{flat_section}.{key}")
                              for key, value in flat[flat_section].items()}))
    per_scheme = _Layer()
    for section in ("bearer", "oauth2", "jwks"):
        for key, value in entries[section].get(name, {}).items():
            per_scheme.values[key] = (value, f"security.{section}.{name}.{key}")
    layers.append(per_scheme)
    env = _Layer()
    for base, key in ((JWT_SECRET_ENV, "secret"), (JWT_PUBLIC_KEY_ENV, "public_key"),
                      (JWKS_URL_ENV, "jwks_url")):
        found = _env(environ, base, name, reader)
        if found is not None:
            env.values[key] = (found[1], found[0])
    layers.append(env)
    return layers, bool(env.values)


def _merge(layers: list[_Layer], reader: _Reader) -> dict[str, tuple[Any, str]]:
    merged: dict[str, tuple[Any, str]] = {}
    for layer in layers:
        for key in ("signature",):
            if key in layer.values:
                reader.problem(layer.values[key][1], "BRRTRouter's dev-only `signature` is not "
                               "supported; give an HS256 key as `secret` instead")
        material = [key for key in _KEY_MATERIAL if key in layer.values]
        if len(material) > 1:
            reader.problem(layer.values[material[0]][1], "give only one of " + ", ".join(
                reader.prefix_of(layer.values[key][1]) for key in material))
            continue
        if material:
            # NOTE: a more specific key replaces the less specific one whole, and the
            # algorithms that were given for the replaced key go with it.
            for key in (*_KEY_MATERIAL, "algorithms"):
                merged.pop(key, None)
        merged.update(layer.values)
    merged.pop("signature", None)
    return merged


def _load_public_key(value: str, where: str, reader: _Reader, *, is_file: bool) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text: str | None = value
    if is_file:
        path = Path(value).expanduser()
        if not path.is_absolute() and reader.base_dir is not None:
            path = reader.base_dir / path
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeError) as ex:
            reader.problem(where, f"cannot read the public key file "
                                  f"({getattr(ex, 'strerror', None) or type(ex).__name__})")
            return None
    assert text is not None
    if "PRIVATE KEY" in text:
        reader.problem(where, "holds a private key; give the public key only")
        return None
    try:
        return text, load_pem_public_key(text.encode("ascii"))
    except (ValueError, TypeError, UnicodeError):
        reader.problem(where, "is not a PEM public key (-----BEGIN PUBLIC KEY-----)")
        return None


def _default_algorithms(key: Any) -> tuple[str, ...]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": ("ES256",), "secp384r1": ("ES384",),
                "secp521r1": ("ES512",)}.get(key.curve.name, EC_ALGORITHMS)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ("EdDSA",)
    return ASYMMETRIC_ALGORITHMS


def _jwt(scheme: SecurityScheme, merged: Mapping[str, tuple[Any, str]],
         reader: _Reader, *, oidc: bool = False) -> JWTSettings | None:
    values: dict[str, Any] = {}
    before = len(reader.problems)
    algorithms_given: tuple[str, ...] | None = None
    if "algorithms" in merged:
        raw, where = merged["algorithms"]
        algorithms_given = reader.texts(raw, where)
        for algorithm in algorithms_given or ():
            if algorithm not in (*HMAC_ALGORITHMS, *ASYMMETRIC_ALGORITHMS):
                reader.problem(where, f"{algorithm!r} is not allowed; use "
                               + ", ".join((*HMAC_ALGORITHMS, *ASYMMETRIC_ALGORITHMS)))
                algorithms_given = None
                break
    defaults: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    kind_where = ""
    symmetric = False
    if "secret" in merged:
        secret, kind_where = merged["secret"]
        if (text := reader.text(secret, kind_where)) is not None:
            if "-----BEGIN" in text:
                reader.problem(kind_where, "looks like a PEM key; a PEM public key goes in "
                               "public_key (HS/RS confusion is refused)")
            values["secret"] = text
        defaults, symmetric = ("HS256",), True
    elif "public_key" in merged or "public_key_file" in merged:
        key_name = "public_key" if "public_key" in merged else "public_key_file"
        raw, kind_where = merged[key_name]
        if (text := reader.text(raw, kind_where)) is not None:
            is_file = key_name == "public_key_file" or (
                kind_where.startswith("BRRTR_") and not text.startswith("-----BEGIN"))
            loaded = _load_public_key(text, kind_where, reader, is_file=is_file)
            if loaded is not None:
                values["public_key"], key = loaded
                defaults = _default_algorithms(key)
    elif "jwks_url" in merged:
        raw, kind_where = merged["jwks_url"]
        values["jwks_url"] = reader.url(raw, kind_where)
    if algorithms_given is not None:
        wrong = [a for a in algorithms_given if (a in HMAC_ALGORITHMS) != symmetric]
        if wrong:
            reader.problem(merged["algorithms"][1],
                           f"{', '.join(wrong)} cannot be verified with "
                           f"{'a secret' if symmetric else 'a public key or JWKS'}; HMAC (HS*) "
                           "algorithms need `secret`, the others `public_key`, "
                           "`public_key_file` or `jwks_url`")
        values["algorithms"] = algorithms_given
    else:
        values["algorithms"] = defaults
    for key, target in (("iss", "issuer"), ("cookie_name", "cookie_name")):
        if key in merged:
            values[target] = reader.text(*merged[key])
    if "aud" in merged:
        audience = reader.texts(*merged["aud"])
        values["audience"] = audience[0] if audience and len(audience) == 1 else audience
    if "leeway_secs" in merged:
        values["leeway_s"] = reader.number(*merged["leeway_secs"])
    if "cache_ttl_secs" in merged:
        values["jwks_cache_ttl_s"] = reader.number(*merged["cache_ttl_secs"])
    if "required_claims" in merged:
        raw, where = merged["required_claims"]
        values["required_claims"] = () if raw == [] else reader.texts(raw, where)
    if len(reader.problems) != before or not (kind_where or oidc):
        return None  # NOTE: no key material: the scheme is not configured (yet)
    try:
        return JWTSettings(**values)
    except ValueError as ex:
        # NOTE: JWTSettings' own checks (secret length, key/algorithm fit, URL scheme).
        reader.problem(kind_where or f"security.oidc.{scheme.name}",
                       str(ex).removeprefix("JWT settings: "))
        return None


def _jwt_scheme(scheme: SecurityScheme, entries: Mapping[str, Mapping[str, dict[str, Any]]],
                flat: Mapping[str, dict[str, Any]], environ: Mapping[str, str],
                reader: _Reader) -> SchemeSettings | None:
    layers, from_env = _jwt_layers(scheme, entries, flat, environ, reader)
    oidc_entry = entries["oidc"].get(scheme.name)
    if oidc_entry is not None and not from_env:
        where = f"security.oidc.{scheme.name}"
        if "discovery_url" in oidc_entry:
            url = reader.url(oidc_entry["discovery_url"], f"{where}.discovery_url")
        elif isinstance(scheme.raw.get("openIdConnectUrl"), str):
            url = reader.url(scheme.raw["openIdConnectUrl"], f"{scheme.pointer}/openIdConnectUrl")
        else:
            reader.problem(f"{where}.discovery_url", "is required (the scheme has no "
                                                     "openIdConnectUrl)")
            return None
        merged = {key: (value, f"{where}.{key}") for key, value in oidc_entry.items()
                  if key != "discovery_url"}
        settings = _jwt(scheme, merged, reader, oidc=True)
        return OIDCSettings(url, settings) if settings is not None and url else None
    return _jwt(scheme, _merge(layers, reader), reader)


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
    reader = _Reader(prefix, Path(config_file).resolve().parent if config_file else None)
    entries, flat = _split_sections(section or {}, schemes, reader)
    found: dict[str, SchemeSettings] = {}
    readers: Mapping[str, Callable[[SecurityScheme], SchemeSettings | None]] = {
        "apiKey": lambda scheme: _api_key(scheme, entries, environ, reader),
        "basic": lambda scheme: _basic(scheme, entries, reader),
        "bearer": lambda scheme: _jwt_scheme(scheme, entries, flat, environ, reader),
        "oauth2": lambda scheme: _jwt_scheme(scheme, entries, flat, environ, reader),
        "openIdConnect": lambda scheme: _jwt_scheme(scheme, entries, flat, environ, reader),
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
