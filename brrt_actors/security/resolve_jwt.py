"""The settings of a JWT scheme (http bearer, oauth2, openIdConnect), for `resolve_security`.

The sources, least specific first: BRRTRouter's flat ``bearer:`` / ``oauth2:`` section, the
scheme's entries under ``bearer``, ``oauth2`` and ``jwks``, then the env. An ``oidc`` entry is
read on its own, unless a ``BRRTR_JWT_*`` / ``BRRTR_JWKS_URL`` variable names the scheme.

The most specific source of *key material* (secret, public key or JWKS URL) wins whole: a
secret from the env replaces a file's public key, and the algorithms given beside the
replaced key go with it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from brrt_actors.security.resolve_values import SettingReader, scheme_variable
from brrt_actors.security.scheme_settings import (
    ASYMMETRIC_ALGORITHMS,
    EC_ALGORITHMS,
    HMAC_ALGORITHMS,
    JWKS_URL_ENV,
    JWT_PUBLIC_KEY_ENV,
    JWT_SECRET_ENV,
    RSA_ALGORITHMS,
    JWTSettings,
    OIDCSettings,
    SchemeSettings,
    scheme_kind,
)
from brrt_actors.spec.model import SecurityScheme

__all__ = ["jwt_scheme"]

_KEY_MATERIAL: Final = ("secret", "public_key", "public_key_file", "jwks_url")


@dataclass(slots=True)
class _Layer:
    """One source of a JWT scheme's settings (flat section, per-scheme entries, env)."""

    values: dict[str, tuple[Any, str]] = field(default_factory=dict)  # key: (value, where)


def _jwt_layers(scheme: SecurityScheme, entries: Mapping[str, Mapping[str, dict[str, Any]]],
                flat: Mapping[str, dict[str, Any]], environ: Mapping[str, str],
                reader: SettingReader) -> tuple[list[_Layer], bool]:
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
        found = scheme_variable(environ, base, name, reader)
        if found is not None:
            env.values[key] = (found[1], found[0])
    layers.append(env)
    return layers, bool(env.values)


def _merge(layers: list[_Layer], reader: SettingReader) -> dict[str, tuple[Any, str]]:
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


def _load_public_key(value: str, where: str, reader: SettingReader, *, is_file: bool) -> Any:
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
         reader: SettingReader, *, oidc: bool = False) -> JWTSettings | None:
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


def jwt_scheme(scheme: SecurityScheme, entries: Mapping[str, Mapping[str, dict[str, Any]]],
               flat: Mapping[str, dict[str, Any]], environ: Mapping[str, str],
               reader: SettingReader) -> SchemeSettings | None:
    """Return the settings of one JWT scheme, or None when it is not configured (yet).

    Args:
        scheme: the security scheme (http bearer, oauth2 or openIdConnect).
        entries: the section's per-scheme entries, by section name then scheme name.
        flat: BRRTRouter's flat ``bearer`` and ``oauth2`` settings.
        environ: where the ``BRRTR_*__<Scheme>`` variables are read.
        reader: collects the problems (and notes) found.
    """
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
