"""The `security:` config section (BRRTRouter's shape) and the BRRTR_* secrets, per scheme."""
from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from reference_spec import absent_reason

from brrt_actors import ConfigError, Request, create_app
from brrt_actors.config import load_settings
from brrt_actors.security.jwt import JWTSettings, mint_token
from brrt_actors.security.remote_apikey import RemoteApiKeySettings
from brrt_actors.security.resolve import (
    ASYMMETRIC_ALGORITHMS,
    RSA_ALGORITHMS,
    ApiKeySettings,
    BasicSettings,
    OIDCSettings,
    SecurityConfig,
    resolve_security,
)
from brrt_actors.spec import load_spec
from brrt_actors.testing import Client

TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"
SCHEMES = TEST_SPECS / "security_schemes.yaml"
BRRTROUTER_CONFIG = TEST_SPECS / "brrtrouter_config.yaml"
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / \
    "brrtrouter-petstore.yaml"
SECRET = "file-secret-0123456789abcdef-0123456789"
ENV_SECRET = "env-secret-0123456789abcdef-0123456789"


@pytest.fixture(scope="module")
def spec_schemes() -> Mapping[str, Any]:
    return load_spec(SCHEMES, compile_validators=False).security_schemes


@pytest.fixture()
def resolve(spec_schemes: Mapping[str, Any], tmp_path: Path) -> Callable[..., SecurityConfig]:
    def resolve(text: str = "", environ: Mapping[str, str] | None = None) -> SecurityConfig:
        path = tmp_path / "config.yaml"
        path.write_text(text or "{}\n")
        settings = load_settings({}, str(path))
        return resolve_security(spec_schemes, settings.security, environ or {},
                                config_file=str(path))

    return resolve


def problems(resolve: Callable[..., SecurityConfig], text: str,
             environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        resolve(text, environ)
    return [(where.split(": ", 1)[-1], message) for where, message in info.value.problems]


def _who(request: Request) -> dict[str, Any]:
    principal = request.principal
    return {"scheme": principal.scheme if principal else None}


def cheap_hash(password: str) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), b"salt", 1000)
    return f"pbkdf2_sha256$1000$salt${base64.b64encode(digest).decode()}"


def rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, public.decode()


def bearer(secret: Any, algorithm: str = "HS256", **claims: Any) -> dict[str, str]:
    now = int(time.time())
    token = mint_token(secret, {"sub": "alice", "exp": now + 600, **claims}, algorithm=algorithm)
    return {"Authorization": f"Bearer {token}"}


# -- BRRTRouter's config.yaml ----------------------------------------------------------------

def test_brrtrouter_config_loads(apps: list[object], caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings({}, str(BRRTROUTER_CONFIG))
    assert settings.keepalive_timeout_s == 5.0  # http.timeout_secs
    notes = dict(settings.notes)
    assert "has no effect" in notes[f"{BRRTROUTER_CONFIG}: http.max_requests"]
    # cors: applied now, not noted as without effect (tests/stages/test_cors.py)
    assert not any(where.startswith(f"{BRRTROUTER_CONFIG}: cors") for where in notes)
    assert settings.cors.origins == ("http://localhost:3000",)
    assert f"{BRRTROUTER_CONFIG}: http.keep_alive" not in notes  # true is what we do anyway
    with caplog.at_level(logging.WARNING, logger="brrt_actors"):
        app = create_app(TEST_SPECS / "security_apikeys.yaml",
                         {op: _who for op in ("header_op", "query_op", "cookie_op", "either_op",
                                              "public_op", "optional_op")},
                         environ={"BRRTR_API_KEY__HeaderKey": "h", "BRRTR_API_KEY__QueryKey": "q",
                                  "BRRTR_API_KEY__CookieKey": "c"},
                         config_file=BRRTROUTER_CONFIG)
    apps.append(app)
    assert "security.propelauth: PropelAuth is not supported" in caplog.text
    assert "security.api_keys.ApiKeyHeader: the spec has no security scheme" in caplog.text
    assert "http.max_requests" in caplog.text
    assert "test123" not in caplog.text


@pytest.mark.reference
@pytest.mark.skipif(not REFERENCE.exists(), reason=absent_reason(
    "BRRTRouter's config file serving its pet store"))
def test_brrtrouter_config_serves_its_pet_store(apps: list[object]) -> None:
    app = create_app(REFERENCE, mock=True, environ={}, config_file=BRRTROUTER_CONFIG)
    apps.append(app)
    client = Client(app)
    assert client.get("/pets", headers={"X-API-Key": "test123"}).status == 200
    assert client.get("/pets", headers={"X-API-Key": "wrong"}).status == 401
    # Its bearer/oauth2 sections are all comments: mock mode keeps /secure closed.
    assert client.get("/secure", headers=bearer(SECRET)).status == 401


def test_brrtrouter_signature_is_refused(resolve: Callable[..., SecurityConfig]) -> None:
    assert problems(resolve, "security: {bearer: {signature: sig, cookie_name: t}}") == [
        ("security.bearer.signature", "BRRTRouter's dev-only `signature` is not supported; "
                                      "give an HS256 key as `secret` instead")]
    found = problems(resolve, "security: {oauth2: {OAuth2: {signature: sig}}}")
    assert found[0][0] == "security.oauth2.OAuth2.signature"
    assert "sig" not in str(found).replace("signature", "")


@pytest.mark.parametrize(("text", "where", "message"), [
    ("http: {keep_alive: maybe}", "http.keep_alive", "'maybe' is not valid; expected true or "
                                                     "false"),
    ("http: {timeout_secs: -1}", "http.timeout_secs", "-1 is not valid; expected a number >= 0 "
                                                      "(seconds)"),
])
def test_brrtrouter_http_section_is_checked(tmp_path: Path, text: str, where: str,
                                            message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings({}, str(path))
    assert info.value.problems == [(f"{path}: {where}", message)]


def test_http_section_notes(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server: {keepalive_timeout_s: 9}\nhttp: {keep_alive: false, "
                    "timeout_secs: 3, colour: red}\n")
    settings = load_settings({"BRRTR_KEEPALIVE_TIMEOUT_S": "7"}, str(path))
    assert settings.keepalive_timeout_s == 7.0  # env > server > http
    notes = dict(settings.notes)
    assert "always kept alive" in notes[f"{path}: http.keep_alive"]
    assert "wins" in notes[f"{path}: http.timeout_secs"]
    assert "has no effect" in notes[f"{path}: http.colour"]


# -- JWT schemes -----------------------------------------------------------------------------

def test_per_scheme_bearer_entry(resolve: Callable[..., SecurityConfig]) -> None:
    found = resolve(f"""
security:
  bearer:
    Bearer: {{secret: {SECRET}, iss: https://issuer, aud: [a, b], leeway_secs: 5,
             cookie_name: auth_token, required_claims: [exp, sub]}}
""")
    settings = found.schemes["Bearer"]
    assert settings == JWTSettings(algorithms=("HS256",), secret=SECRET, issuer="https://issuer",
                                   audience=("a", "b"), leeway_s=5.0, cookie_name="auth_token",
                                   required_claims=("exp", "sub"))
    assert set(found.schemes) == {"Bearer"}
    assert SECRET not in repr(found)


def test_flat_bearer_form_applies_to_every_bearer_scheme(
        apps: list[object], tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
security:
  api_keys: {{ApiKey: {{key: k}}}}
  bearer: {{secret: {SECRET}, cookie_name: auth_token}}
  oauth2: {{secret: {ENV_SECRET}}}
  oidc: {{Oidc: {{}}}}
  basic: {{Basic: {{users: {{}}}}}}
""")
    with pytest.raises(ConfigError, match=r"security\.basic\.Basic\.users"):
        create_app(SCHEMES, mock=True, environ={}, config_file=path)
    path.write_text(path.read_text().replace("  basic: {Basic: {users: {}}}\n", ""))
    spec = load_spec(SCHEMES, compile_validators=False)
    settings = load_settings({}, str(path))
    found = resolve_security(spec.security_schemes, settings.security, {},
                             config_file=str(path))
    bearer_settings = found.schemes["Bearer"]
    assert isinstance(bearer_settings, JWTSettings)
    assert bearer_settings.secret == SECRET and bearer_settings.cookie_name == "auth_token"
    oauth2 = found.schemes["OAuth2"]
    assert isinstance(oauth2, JWTSettings) and oauth2.secret == ENV_SECRET
    oidc = found.schemes["Oidc"]
    assert isinstance(oidc, OIDCSettings)
    # The default discovery URL is the scheme's openIdConnectUrl.
    assert oidc.discovery_url == "https://idp.example.com/.well-known/openid-configuration"
    assert oidc.jwt.algorithms == ASYMMETRIC_ALGORITHMS


def test_flat_bearer_cookie_is_read(apps: list[object], tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"security: {{bearer: {{secret: {SECRET}, cookie_name: auth_token}}}}\n")
    app = create_app(SCHEMES, {op: _who for op in ("apikey_op", "bearer_op", "oauth2_op",
                                                "basic_op", "oidc_op", "both_op", "either_op",
                                                "maybe_op", "public_op")},
                     mock=True, environ={}, config_file=path)
    apps.append(app)
    client = Client(app)
    token = bearer(SECRET)["Authorization"].split()[1]
    assert client.get("/bearer", headers={"Cookie": f"auth_token={token}"}).status == 200
    assert client.get("/bearer", headers=bearer(SECRET)).status == 200


def test_oidc_entry(resolve: Callable[..., SecurityConfig]) -> None:
    # An oauth2 scheme has no openIdConnectUrl: its oidc entry must name one.
    assert problems(resolve, "security: {oidc: {OAuth2: {aud: x}}}") == [
        ("security.oidc.OAuth2.discovery_url",
         "is required (the scheme has no openIdConnectUrl)")]
    found = resolve("""
security:
  oidc:
    Oidc: {discovery_url: "https://other.example.com/.well-known/openid-configuration",
           aud: my-api, algorithms: [RS256]}
""")
    oidc = found.schemes["Oidc"]
    assert isinstance(oidc, OIDCSettings)
    assert oidc.discovery_url.startswith("https://other.example.com/")
    assert oidc.jwt.audience == "my-api" and oidc.jwt.algorithms == ("RS256",)


def test_jwks_entry(resolve: Callable[..., SecurityConfig]) -> None:
    found = resolve("""
security:
  jwks:
    Bearer: {jwks_url: "https://issuer.example/.well-known/jwks.json", iss: "https://issuer.example/",
             aud: my-audience, leeway_secs: 30, cache_ttl_secs: 120}
""")
    settings = found.schemes["Bearer"]
    assert isinstance(settings, JWTSettings)
    assert settings.jwks_url == "https://issuer.example/.well-known/jwks.json"
    assert settings.issuer == "https://issuer.example/" and settings.audience == "my-audience"
    assert settings.jwks_cache_ttl_s == 120.0 and settings.leeway_s == 30.0
    assert settings.algorithms == ASYMMETRIC_ALGORITHMS and settings.secret is None


def test_public_key_file_relative_to_the_config(apps: list[object], tmp_path: Path) -> None:
    private, public = rsa_pair()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "bearer.pem").write_text(public)
    path = tmp_path / "config.yaml"
    path.write_text("security: {bearer: {Bearer: {public_key_file: keys/bearer.pem}}}\n")
    spec = load_spec(SCHEMES, compile_validators=False)
    found = resolve_security(spec.security_schemes, load_settings({}, str(path)).security, {},
                             config_file=str(path))
    settings = found.schemes["Bearer"]
    assert isinstance(settings, JWTSettings)
    assert settings.public_key == public and settings.algorithms == RSA_ALGORITHMS
    assert "BEGIN" not in repr(settings)
    app = create_app(SCHEMES, {op: _who for op in ("apikey_op", "bearer_op", "oauth2_op",
                                                   "basic_op", "oidc_op", "both_op",
                                                   "either_op", "maybe_op", "public_op")},
                     mock=True, environ={}, config_file=path)
    apps.append(app)
    client = Client(app)
    assert client.get("/bearer", headers=bearer(private, "RS256")).status == 200
    assert client.get("/bearer", headers=bearer(private, "PS256")).status == 200
    assert client.get("/bearer", headers=bearer(SECRET)).status == 401


def test_ec_key_gets_its_algorithm(resolve: Callable[..., SecurityConfig]) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    settings = resolve("", {"BRRTR_JWT_PUBLIC_KEY__Bearer": key}).schemes["Bearer"]
    assert isinstance(settings, JWTSettings) and settings.algorithms == ("ES256",)


@pytest.mark.parametrize(("text", "where", "message"), [
    (f"security: {{bearer: {{Bearer: {{secret: {SECRET}, public_key: x}}}}}}",
     "security.bearer.Bearer.secret", "give only one of {p}security.bearer.Bearer.secret, "
                                      "{p}security.bearer.Bearer.public_key"),
    (f"security: {{bearer: {{Bearer: {{secret: {SECRET}, algorithms: [RS256]}}}}}}",
     "security.bearer.Bearer.algorithms",
     "RS256 cannot be verified with a secret; HMAC (HS*) algorithms need `secret`, the "
     "others `public_key`, `public_key_file` or `jwks_url`"),
    (f"security: {{bearer: {{Bearer: {{secret: {SECRET}, algorithms: [none]}}}}}}",
     "security.bearer.Bearer.algorithms",
     "'none' is not allowed; use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, "
     "PS512, ES256, ES384, ES512, EdDSA"),
    ("security: {bearer: {Bearer: {secret: short}}}", "security.bearer.Bearer.secret",
     "the secret is 5 bytes; ['HS256'] need at least 32 (RFC 7518 §3.2)"),
    ("security: {bearer: {Bearer: {public_key: not-a-key}}}",
     "security.bearer.Bearer.public_key", "is not a PEM public key (-----BEGIN PUBLIC KEY-----)"),
    ("security: {bearer: {Bearer: {public_key: '-----BEGIN PRIVATE KEY-----'}}}",
     "security.bearer.Bearer.public_key", "holds a private key; give the public key only"),
    ("security: {bearer: {Bearer: {secret: '-----BEGIN PUBLIC KEY----- and more than 32 b'}}}",
     "security.bearer.Bearer.secret",
     "looks like a PEM key; a PEM public key goes in public_key (HS/RS confusion is refused)"),
    ("security: {bearer: {Bearer: {public_key_file: /nonexistent/key.pem}}}",
     "security.bearer.Bearer.public_key_file",
     "cannot read the public key file (No such file or directory)"),
    ("security: {jwks: {Bearer: {jwks_url: 'ftp://x/jwks'}}}", "security.jwks.Bearer.jwks_url",
     "must be an http:// or https:// URL"),
    ("security: {jwks: {Bearer: {jwks_url: 'https://x/jwks', secret: s}}}",
     "security.jwks.Bearer.secret", "unknown key; allowed: algorithms, aud, cache_ttl_secs, "
                                    "cookie_name, iss, jwks_url, leeway_secs, required_claims"),
    ("security: {bearer: {Bearer: {secret: 12}}}", "security.bearer.Bearer.secret",
     "must be a non-empty string"),
    ("security: {bearer: {Bearer: {leeway_secs: -1}}}", "security.bearer.Bearer.leeway_secs",
     "must be a number >= 0"),
    ("security: {api_keys: {Bearer: {key: k}}}", "security.api_keys.Bearer",
     "'Bearer' is an http bearer scheme; set BRRTR_JWT_SECRET__Bearer (or "
     "BRRTR_JWT_SECRET__BEARER), or security.bearer.Bearer.secret or "
     "security.jwks.Bearer.jwks_url in the config file"),
    ("security: {api_keys: {ApiKey: {key: k}}, remote_api_keys: {ApiKey: "
     "{verify_url: 'https://v'}}}", "security.api_keys.ApiKey",
     "also configured under security.remote_api_keys.ApiKey; keep one"),
    ("security: {remote_api_keys: {ApiKey: {timeout_ms: 5}}}",
     "security.remote_api_keys.ApiKey.verify_url", "is required"),
    ("security: {basic: {Basic: {users: {alice: plain-text-password}}}}",
     "security.basic.Basic.users.alice",
     "not a password hash: expected `scrypt$...` or `pbkdf2_sha256$...` (make one with "
     "`brrt hash-password`)"),
    ("security: {basic: {Basic: {users: {'a:b': 'scrypt$1'}}}}", "security.basic.Basic.users",
     "user names must be non-empty strings without ':'"),
    ("security: {keys: {}}", "security.keys", "unknown key; allowed: api_keys, basic, bearer, "
                                              "jwks, oauth2, oidc, propelauth, remote_api_keys"),
    ("security: {bearer: {secrt: x}}", "security.bearer.secrt",
     "unknown setting (and no security scheme has this name); allowed: algorithms, aud, "
     "cache_ttl_secs, cookie_name, iss, jwks_url, leeway_secs, public_key, public_key_file, "
     "required_claims, secret"),
])
def test_malformed_settings_are_named(resolve: Callable[..., SecurityConfig], tmp_path: Path,
                                      text: str, where: str, message: str) -> None:
    prefix = f"{tmp_path / 'config.yaml'}: "
    with pytest.raises(ConfigError) as info:
        resolve(text)
    assert info.value.problems[0] == (prefix + where, message.format(p=prefix))
    # SECURITY: no value shows in the message.
    for secret in (SECRET, "plain-text-password", "short"):
        assert secret not in str(info.value).replace("{short", "")


def test_unknown_scheme_names_are_noted(resolve: Callable[..., SecurityConfig],
                                        tmp_path: Path) -> None:
    found = resolve("security: {api_keys: {Nope: {key: k}}}")
    assert found.notes == (f"{tmp_path / 'config.yaml'}: security.api_keys.Nope: the spec has "
                           "no security scheme of this name; ignored",)


# -- the environment wins --------------------------------------------------------------------

def test_env_overrides_file(resolve: Callable[..., SecurityConfig], tmp_path: Path) -> None:
    _, public = rsa_pair()
    (tmp_path / "env.pem").write_text(public)
    text = f"""
security:
  api_keys: {{ApiKey: {{key: from-file, header_name: X-Other}}}}
  bearer: {{Bearer: {{secret: {SECRET * 2}, iss: https://issuer, algorithms: [HS512]}}}}
  oauth2: {{OAuth2: {{secret: {SECRET}}}}}
"""
    found = resolve(text, {"BRRTR_API_KEY__APIKEY": "from-env, second",
                           "BRRTR_JWT_PUBLIC_KEY__Bearer": str(tmp_path / "env.pem"),
                           "BRRTR_JWT_SECRET__OAUTH2": ENV_SECRET})
    assert found.schemes["ApiKey"] == ApiKeySettings(("from-env", "second"), "X-Other")
    bearer_settings = found.schemes["Bearer"]
    assert isinstance(bearer_settings, JWTSettings)
    # The env's key replaces the file's, and the file's HS512 goes with it; iss stays.
    assert bearer_settings.public_key == public and bearer_settings.secret is None
    assert bearer_settings.algorithms == RSA_ALGORITHMS
    assert bearer_settings.issuer == "https://issuer"
    oauth2 = found.schemes["OAuth2"]
    assert isinstance(oauth2, JWTSettings) and oauth2.secret == ENV_SECRET
    # PEM text works as well as a path; a JWKS URL too.
    found = resolve(text, {"BRRTR_JWT_PUBLIC_KEY__BEARER": public})
    assert isinstance(found.schemes["Bearer"], JWTSettings)
    found = resolve(text, {"BRRTR_JWKS_URL__Bearer": "https://idp.example.com/jwks.json"})
    jwks = found.schemes["Bearer"]
    assert isinstance(jwks, JWTSettings) and jwks.jwks_url == "https://idp.example.com/jwks.json"
    # A remote verifier from the env replaces the file's static keys.
    found = resolve(text, {"BRRTR_REMOTE_API_KEY_URL__ApiKey": "http://127.0.0.1:9/verify"})
    assert found.schemes["ApiKey"] == RemoteApiKeySettings("http://127.0.0.1:9/verify")


def test_env_secret_configures_without_a_file(resolve: Callable[..., SecurityConfig]) -> None:
    found = resolve("", {"BRRTR_JWT_SECRET__Bearer": ENV_SECRET})
    assert found.schemes == {"Bearer": JWTSettings(algorithms=("HS256",), secret=ENV_SECRET)}


@pytest.mark.parametrize(("environ", "where", "message"), [
    ({"BRRTR_JWT_SECRET__Bearer": ENV_SECRET, "BRRTR_JWT_SECRET__BEARER": SECRET},
     "BRRTR_JWT_SECRET__Bearer", "both BRRTR_JWT_SECRET__Bearer and BRRTR_JWT_SECRET__BEARER "
                                 "are set, to different values; keep one"),
    ({"BRRTR_JWT_SECRET__Bearer": ENV_SECRET, "BRRTR_JWKS_URL__Bearer": "https://x/jwks"},
     "BRRTR_JWT_SECRET__Bearer", "give only one of BRRTR_JWT_SECRET__Bearer, "
                                 "BRRTR_JWKS_URL__Bearer"),
    ({"BRRTR_API_KEY__ApiKey": "k", "BRRTR_REMOTE_API_KEY_URL__ApiKey": "https://v"},
     "BRRTR_API_KEY__ApiKey", "both BRRTR_API_KEY__ApiKey and BRRTR_REMOTE_API_KEY_URL__ApiKey "
                              "are set; keep one"),
    ({"BRRTR_JWT_PUBLIC_KEY__Bearer": "/nonexistent.pem"}, "BRRTR_JWT_PUBLIC_KEY__Bearer",
     "cannot read the public key file (No such file or directory)"),
    ({"BRRTR_REMOTE_API_KEY_URL__ApiKey": "verify"}, "BRRTR_REMOTE_API_KEY_URL__ApiKey",
     "must be an http:// or https:// URL"),
])
def test_malformed_env_is_named(resolve: Callable[..., SecurityConfig],
                                environ: dict[str, str], where: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve("", environ)
    assert info.value.problems == [(where, message)]
    assert ENV_SECRET not in str(info.value) and SECRET not in str(info.value)


def test_plain_http_to_another_host_is_noted(resolve: Callable[..., SecurityConfig]) -> None:
    found = resolve("", {"BRRTR_REMOTE_API_KEY_URL__ApiKey": "http://auth.internal/verify"})
    assert found.notes == ("BRRTR_REMOTE_API_KEY_URL__ApiKey: a plain http:// URL to another "
                           "host: credentials and keys travel unencrypted (use https://)",)


# -- secrets stay secret ---------------------------------------------------------------------

def test_secrets_never_in_reprs_or_logs(apps: list[object], tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
security:
  api_keys: {{ApiKey: {{keys: [key-one-secret, key-two-secret]}}}}
  bearer: {{Bearer: {{secret: {SECRET}}}}}
  basic: {{Basic: {{users: {{alice: "{cheap_hash('alice-password')}"}}}}}}
""")
    environ = {"BRRTR_JWT_SECRET__OAuth2": ENV_SECRET, "BRRTR_JWT_SECRET__Oidc": ENV_SECRET}
    with caplog.at_level(logging.DEBUG):
        spec = load_spec(SCHEMES, compile_validators=False)
        found = resolve_security(spec.security_schemes, load_settings({}, str(path)).security,
                                 environ, config_file=str(path))
        app = create_app(SCHEMES, {op: _who for op in ("apikey_op", "bearer_op", "oauth2_op",
                                                       "basic_op", "oidc_op", "both_op",
                                                       "either_op", "maybe_op", "public_op")},
                         environ=environ, config_file=path)
        apps.append(app)
        client = Client(app)
        client.get("/apikey", headers={"X-API-Key": "key-one-secret"})
        client.get("/bearer", headers=bearer(SECRET))
        client.get("/bearer", headers=bearer(ENV_SECRET))
    text = repr(found) + repr(app.router.routes()) + caplog.text
    basic_settings = found.schemes["Basic"]
    assert isinstance(basic_settings, BasicSettings)
    assert repr(basic_settings) == "BasicSettings(users=['alice'], cache_ttl_s=60)"
    for secret in (SECRET, ENV_SECRET, "key-one-secret", "key-two-secret", "alice-password",
                   "pbkdf2_sha256$"):
        assert secret not in text


def test_token_verifies_with_pyjwt(resolve: Callable[..., SecurityConfig]) -> None:
    # The settings' secret is what tokens are checked with: a plain pyjwt decode agrees.
    found = resolve(f"security: {{bearer: {{Bearer: {{secret: {SECRET}}}}}}}")
    settings = found.schemes["Bearer"]
    assert isinstance(settings, JWTSettings) and settings.secret is not None
    token = bearer(SECRET)["Authorization"].split()[1]
    assert pyjwt.decode(token, settings.secret, algorithms=list(settings.algorithms))["sub"] == \
        "alice"


def test_oidc_scheme_builds_and_fails_closed(apps: list[object], tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("security:\n  oidc:\n    Oidc: {discovery_url: "
                    "'http://127.0.0.1:9/.well-known/openid-configuration', aud: my-api}\n")
    app = create_app(SCHEMES, {op: _who for op in ("apikey_op", "bearer_op", "oauth2_op",
                                                   "basic_op", "oidc_op", "both_op",
                                                   "either_op", "maybe_op", "public_op")},
                     mock=True, environ={}, config_file=path)
    apps.append(app)
    private, _ = rsa_pair()
    response = Client(app).get("/oidc", headers=bearer(private, "RS256", aud="my-api"))
    assert response.status == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="Oidc", error="invalid_token"'


def test_oidc_with_a_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"security: {{oidc: {{Oidc: {{algorithms: [HS256]}}}}, "
                    f"bearer: {{Bearer: {{secret: {SECRET}}}}}}}\n")
    with pytest.raises(ConfigError) as info:
        create_app(SCHEMES, mock=True, environ={}, config_file=path)
    assert info.value.problems == [(
        f"{path}: security.oidc.Oidc.algorithms",
        "HS256 cannot be verified with a public key or JWKS; HMAC (HS*) algorithms need "
        "`secret`, the others `public_key`, `public_key_file` or `jwks_url`")]


def test_key_that_cannot_verify_its_algorithms(tmp_path: Path) -> None:
    _, public = rsa_pair()
    path = tmp_path / "config.yaml"
    path.write_text("security: {bearer: {Bearer: {public_key_file: key.pem, "
                    "algorithms: [ES256]}}}\n")
    (tmp_path / "key.pem").write_text(public)
    with pytest.raises(ConfigError) as info:
        create_app(SCHEMES, mock=True, environ={}, config_file=path)
    [(where, message)] = info.value.problems
    assert where == "/components/securitySchemes/Bearer"
    assert message.startswith("security scheme 'Bearer': the public key (")
    assert message.endswith(") cannot verify ES256")
