"""The security stage: API keys in a header, a query parameter or a cookie, fail closed."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import PETSTORE_ENV, ROOT

from brrt_actors import ConfigError, Principal, Request, SpecError, create_app
from brrt_actors.security import ApiKeyProvider, build_providers
from brrt_actors.security.jwt import mint_token
from brrt_actors.security.resolve import (
    DEV_API_KEY,
    DEV_JWT_SECRET,
    DEV_PASSWORD,
    DEV_USER,
    dev_jwt_secret,
)
from brrt_actors.spec import load_spec
from brrt_actors.testing import Client, TestResponse

TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"
SPEC = TEST_SPECS / "security_apikeys.yaml"
UNSUPPORTED = TEST_SPECS / "security_unsupported.yaml"
CUSTOM = TEST_SPECS / "security_custom.yaml"
OPERATIONS = ("header_op", "query_op", "cookie_op", "either_op", "public_op", "optional_op")
SECRET = "s3cr3t-header"
ALL_KEYS = {
    "BRRTR_API_KEY__HeaderKey": SECRET,
    "BRRTR_API_KEY__QueryKey": "s3cr3t-query",
    "BRRTR_API_KEY__CookieKey": "s3cr3t-cookie",
}


def _who(request: Request) -> dict[str, Any]:
    return {"scheme": request.principal.scheme if request.principal else None}


HANDLERS: dict[str, Callable[[Request], Any]] = {name: _who for name in OPERATIONS}


@pytest.fixture()
def build(apps: list[object]) -> Callable[..., Client]:
    def build(environ: Mapping[str, str] = ALL_KEYS, spec: Path = SPEC, **kwargs: Any) -> Client:
        handlers = HANDLERS if spec == SPEC else {
            "secure_op": _who, "open_op": _who, "scoped_op": _who, "basic_op": _who}
        app = create_app(spec, handlers, environ=dict(environ), **kwargs)
        apps.append(app)
        return Client(app)

    return build


@pytest.fixture()
def client(build: Callable[..., Client]) -> Client:
    return build()


def unauthorized(response: TestResponse) -> dict[str, Any]:
    assert response.status == 401, response
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"]
    body: dict[str, Any] = response.json()
    assert body["status"] == 401
    # SECURITY: the same answer whether the key was missing or wrong.
    assert body["detail"] == "missing or invalid credentials"
    assert "errors" not in body
    return body


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


# -- one key, three places -----------------------------------------------------------------

def test_header_key_accepted(client: Client) -> None:
    response = client.get("/header", headers={"X-API-Key": SECRET})
    assert response.status == 200, response
    assert response.json() == {"scheme": "HeaderKey"}


def test_query_key_accepted(client: Client) -> None:
    response = client.get("/query?api_key=s3cr3t-query")
    assert response.status == 200, response
    assert response.json() == {"scheme": "QueryKey"}


@pytest.mark.parametrize("cookie", [
    "theme=dark; session=s3cr3t-cookie",
    'session="s3cr3t-cookie"',
    # A malformed cookie beside the key does not hide it (http.cookies would drop them all).
    'prefs={"a": "b c"}; session=s3cr3t-cookie; broken',
    "session=s3cr3t-cookie; session=other",  # the first of two (RFC 6265 5.4: most specific)
])
def test_cookie_key_accepted(client: Client, cookie: str) -> None:
    response = client.get("/cookie", headers={"Cookie": cookie})
    assert response.status == 200, response
    assert response.json() == {"scheme": "CookieKey"}


@pytest.mark.parametrize(("path", "challenge"), [
    ("/header", 'ApiKey realm="HeaderKey", name="X-API-Key", in="header"'),
    ("/query", 'ApiKey realm="QueryKey", name="api_key", in="query"'),
    ("/cookie", 'ApiKey realm="CookieKey", name="session", in="cookie"'),
])
def test_missing_key_rejected(client: Client, path: str, challenge: str) -> None:
    response = client.get(path)
    unauthorized(response)
    assert response.headers["www-authenticate"] == challenge


@pytest.mark.parametrize(("path", "kwargs"), [
    ("/header", {"headers": {"X-API-Key": "wrong"}}),
    ("/header", {"headers": {"X-API-Key": ""}}),
    ("/header", {"headers": {"X-API-Key": SECRET + "x"}}),
    ("/header", {"query": {"api_key": SECRET}}),  # right key, wrong place
    ("/query", {"query": {"api_key": "wrong"}}),
    ("/query", {"headers": {"X-API-Key": "s3cr3t-query"}}),
    ("/cookie", {"headers": {"Cookie": "session=wrong"}}),
    ("/cookie", {"headers": {"Cookie": "session"}}),  # not a cookie at all
    ("/cookie", {"headers": {"Cookie": 'session="unterminated'}}),
])
def test_wrong_key_rejected(client: Client, path: str, kwargs: dict[str, Any]) -> None:
    response = client.get(path, **kwargs)
    body = unauthorized(response)
    assert "wrong" not in response.text and SECRET not in response.text
    assert body["instance"] == path


def test_missing_and_wrong_look_the_same(client: Client) -> None:
    missing = client.get("/header").json()
    wrong = client.get("/header", headers={"X-API-Key": "nope"}).json()
    for body in (missing, wrong):
        del body["request_id"]
    assert missing == wrong


def test_security_runs_before_parameters_are_checked(client: Client) -> None:
    # An unauthenticated caller learns nothing about the operation's parameters.
    unauthorized(client.get("/cookie?n=abc"))
    unauthorized(client.get("/cookie?n=abc", headers={"Cookie": "session=wrong"}))
    response = client.get("/cookie?n=abc", headers={"Cookie": "session=s3cr3t-cookie"})
    assert response.status == 400, response


# -- several keys, env and config file -----------------------------------------------------

def test_comma_separated_keys_in_env(build: Callable[..., Client]) -> None:
    client = build({**ALL_KEYS, "BRRTR_API_KEY__HeaderKey": "old-key, new-key,,"})
    assert client.get("/header", headers={"X-API-Key": "old-key"}).status == 200
    assert client.get("/header", headers={"X-API-Key": "new-key"}).status == 200
    unauthorized(client.get("/header", headers={"X-API-Key": "old-key, new-key"}))
    unauthorized(client.get("/header", headers={"X-API-Key": SECRET}))


def test_upper_cased_variable_name(build: Callable[..., Client]) -> None:
    client = build({"BRRTR_API_KEY__HEADERKEY": "upper", "BRRTR_API_KEY__QUERYKEY": "q",
                    "BRRTR_API_KEY__COOKIEKEY": "c"})
    assert client.get("/header", headers={"X-API-Key": "upper"}).status == 200
    assert client.get("/query?api_key=q").status == 200
    assert client.get("/cookie", headers={"Cookie": "session=c"}).status == 200


def test_keys_from_config_file(build: Callable[..., Client], tmp_path: Path) -> None:
    path = config_file(tmp_path, """
security:
  api_keys:
    HeaderKey: {key: from-file}
    QueryKey: {keys: [first, second]}
    CookieKey: {key: main, keys: [spare]}
""")
    client = build({}, config_file=path)
    assert client.get("/header", headers={"X-API-Key": "from-file"}).status == 200
    assert client.get("/query?api_key=first").status == 200
    assert client.get("/query?api_key=second").status == 200
    unauthorized(client.get("/query?api_key=third"))
    assert client.get("/cookie", headers={"Cookie": "session=main"}).status == 200
    assert client.get("/cookie", headers={"Cookie": "session=spare"}).status == 200


def test_env_overrides_config_file(build: Callable[..., Client], tmp_path: Path) -> None:
    path = config_file(tmp_path, """
security:
  api_keys:
    HeaderKey: {key: from-file}
    QueryKey: {key: q}
    CookieKey: {key: c}
""")
    client = build({"BRRTR_API_KEY__HeaderKey": "from-env"}, config_file=path)
    assert client.get("/header", headers={"X-API-Key": "from-env"}).status == 200
    unauthorized(client.get("/header", headers={"X-API-Key": "from-file"}))
    assert client.get("/query?api_key=q").status == 200  # not overridden: the file's key


@pytest.mark.parametrize("entry", ["HeaderKey: just-a-string", "HeaderKey: {keys: [1, 2]}",
                                   "HeaderKey: {keys: ['']}"])
def test_malformed_config_entry(build: Callable[..., Client], tmp_path: Path,
                                entry: str) -> None:
    path = config_file(tmp_path, f"security:\n  api_keys:\n    {entry}\n")
    with pytest.raises(ConfigError, match=r"security\.api_keys\.HeaderKey"):
        build({k: v for k, v in ALL_KEYS.items() if "Header" not in k}, config_file=path)


# -- requirements: OR of AND-groups, public, anonymous, operation level --------------------

def test_or_of_and_groups(client: Client) -> None:
    header = {"X-API-Key": SECRET}
    # First group (header AND query) satisfied.
    response = client.get("/either?api_key=s3cr3t-query", headers=header)
    assert response.status == 200 and response.json() == {"scheme": "HeaderKey"}
    # Second group (cookie) satisfied.
    response = client.get("/either", headers={"Cookie": "session=s3cr3t-cookie"})
    assert response.status == 200 and response.json() == {"scheme": "CookieKey"}
    # Both satisfied: the first group wins.
    assert client.get("/either?api_key=s3cr3t-query", headers={
        **header, "Cookie": "session=s3cr3t-cookie"}).json() == {"scheme": "HeaderKey"}


def test_and_group_needs_every_key(client: Client) -> None:
    response = client.get("/either", headers={"X-API-Key": SECRET})  # query key missing
    unauthorized(response)
    unauthorized(client.get("/either?api_key=s3cr3t-query"))  # header key missing
    unauthorized(client.get("/either?api_key=wrong", headers={"X-API-Key": SECRET}))
    # The challenge offers every scheme the operation accepts, each once.
    challenge = response.headers["www-authenticate"]
    assert challenge.count("ApiKey realm=") == 3
    for name in ("HeaderKey", "QueryKey", "CookieKey"):
        assert f'realm="{name}"' in challenge


def test_empty_security_is_public(client: Client) -> None:
    response = client.get("/public")
    assert response.status == 200 and response.json() == {"scheme": None}
    # A key sent anyway changes nothing.
    assert client.get("/public", headers={"X-API-Key": "wrong"}).status == 200


def test_empty_requirement_allows_anonymous(client: Client) -> None:
    # NOTE: BRRTRouter rejects this; OpenAPI says `{}` in the list makes auth optional.
    anonymous = client.get("/optional")
    assert anonymous.status == 200, anonymous
    assert anonymous.json() == {"scheme": None}
    keyed = client.get("/optional", headers={"X-API-Key": SECRET})
    assert keyed.json() == {"scheme": "HeaderKey"}
    # A wrong key falls back to anonymous rather than failing.
    assert client.get("/optional", headers={"X-API-Key": "wrong"}).json() == {"scheme": None}


def test_operation_security_replaces_global(client: Client) -> None:
    # /query declares QueryKey only: the global HeaderKey is neither needed nor enough.
    assert client.get("/query?api_key=s3cr3t-query").status == 200
    unauthorized(client.get("/query", headers={"X-API-Key": SECRET}))


def test_only_used_schemes_need_keys(build: Callable[..., Client]) -> None:
    # security_unsupported.yaml's public operation works with nothing configured in mock.
    client = build({}, spec=UNSUPPORTED, mock=True)
    assert client.get("/open").status == 200


# -- unconfigured schemes ------------------------------------------------------------------

def test_unconfigured_scheme_stops_the_start(build: Callable[..., Client]) -> None:
    env = {k: v for k, v in ALL_KEYS.items() if "Query" not in k}
    with pytest.raises(ConfigError) as info:
        build(env)
    message = str(info.value)
    assert "'QueryKey'" in message
    assert "BRRTR_API_KEY__QueryKey" in message and "BRRTR_API_KEY__QUERYKEY" in message
    assert "security.api_keys.QueryKey" in message
    assert info.value.problems[0][0] == "/components/securitySchemes/QueryKey"
    assert "HeaderKey" not in message and SECRET not in message


def test_every_unconfigured_scheme_is_listed(build: Callable[..., Client]) -> None:
    with pytest.raises(ConfigError) as info:
        build({})
    assert [where for where, _ in info.value.problems] == [
        f"/components/securitySchemes/{name}" for name in ("CookieKey", "HeaderKey", "QueryKey")]


def test_empty_variable_counts_as_unset(build: Callable[..., Client]) -> None:
    with pytest.raises(ConfigError, match="BRRTR_API_KEY__HeaderKey"):
        build({**ALL_KEYS, "BRRTR_API_KEY__HeaderKey": " , "})


def test_unsupported_scheme_type_stops_the_start(build: Callable[..., Client]) -> None:
    with pytest.raises(ConfigError) as info:
        build({}, spec=UNSUPPORTED)
    assert str(info.value) == (
        "/components/securitySchemes/DigestAuth: security scheme 'DigestAuth' is used but not "
        "configured: http digest schemes are not built in: register a provider for "
        "'DigestAuth' from Python (build_app(..., security_providers=...), or "
        "SECURITY_PROVIDERS in the handlers package)")


def test_mock_mode_rejects_unconfigured_scheme(build: Callable[..., Client],
                                               caplog: pytest.LogCaptureFixture) -> None:
    env = {k: v for k, v in ALL_KEYS.items() if "Query" not in k}
    with caplog.at_level(logging.WARNING, logger="brrt_actors"):
        client = build(env, mock=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'QueryKey'" in w and "401" in w and "BRRTR_API_KEY__QueryKey" in w
               for w in warnings), warnings
    # Nothing gets in through the unconfigured scheme, whatever it is sent.
    unauthorized(client.get("/query"))
    unauthorized(client.get("/query?api_key=anything"))
    unauthorized(client.get("/query?api_key="))
    # The configured ones still work.
    assert client.get("/header", headers={"X-API-Key": SECRET}).status == 200
    # An OR with a configured group still lets that group in.
    assert client.get("/either", headers={"Cookie": "session=s3cr3t-cookie"}).status == 200


def test_mock_mode_rejects_unsupported_scheme(build: Callable[..., Client],
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="brrt_actors"):
        client = build({}, spec=UNSUPPORTED, mock=True)
    assert "'DigestAuth'" in caplog.text
    response = client.get("/secure", headers={"Authorization": "Digest abc"})
    unauthorized(response)
    assert response.headers["www-authenticate"] == 'Digest realm="DigestAuth"'


class Everyone:
    """A custom provider: every request is `someone`."""

    scheme_name = "DigestAuth"

    def challenge(self, error: str | None) -> str:
        return 'Digest realm="custom"'

    def authenticate(self, environ: dict[str, Any]) -> Principal | None:
        return Principal("DigestAuth", subject="someone")


def test_custom_provider_wins(build: Callable[..., Client]) -> None:
    client = build({}, spec=UNSUPPORTED, security_providers={"DigestAuth": Everyone()})
    response = client.get("/secure")
    assert response.status == 200 and response.json() == {"scheme": "DigestAuth"}


def _handlers_package(**providers: Any) -> ModuleType:
    """A handlers module serving the unsupported-scheme spec, giving `providers`."""
    module = ModuleType("fx_digest_handlers")
    for name in ("secure_op", "open_op", "scoped_op", "basic_op"):
        setattr(module, name, _who)
    module.SECURITY_PROVIDERS = providers  # type: ignore[attr-defined]
    return module


def test_handlers_package_gives_its_providers(build: Callable[..., Client],
                                             apps: list[object]) -> None:
    app = create_app(UNSUPPORTED, _handlers_package(DigestAuth=Everyone()), environ={})
    apps.append(app)
    assert Client(app).get("/secure").json() == {"scheme": "DigestAuth"}
    # Nothing global: the next app, built without that package, has no provider.
    with pytest.raises(ConfigError, match="'DigestAuth' is used but not configured"):
        build({}, spec=UNSUPPORTED)


def test_handlers_providers_must_be_a_mapping(apps: list[object]) -> None:
    module = _handlers_package()
    module.SECURITY_PROVIDERS = ["DigestAuth"]  # type: ignore[attr-defined]
    with pytest.raises(SpecError, match=re.escape(
            "fx_digest_handlers.SECURITY_PROVIDERS: must be a mapping of security scheme "
            "names to providers")):
        create_app(UNSUPPORTED, module, environ={})


def test_create_app_providers_win_over_the_handlers_package(
        build: Callable[..., Client], apps: list[object]) -> None:
    class Nobody(Everyone):
        def authenticate(self, environ: dict[str, Any]) -> Principal | None:
            return None

    package = _handlers_package(DigestAuth=Nobody())
    app = create_app(UNSUPPORTED, package, environ={},
                     security_providers={"DigestAuth": Everyone()})
    apps.append(app)
    assert Client(app).get("/secure").status == 200
    app = create_app(UNSUPPORTED, package, environ={})
    apps.append(app)
    unauthorized(Client(app).get("/secure"))


class Scoped:
    """A custom provider: every request is `someone` with the scopes given."""

    def challenge(self, error: str | None) -> str:
        return f'Bearer realm="{self.scheme_name}"' + (f', error="{error}"' if error else "")

    def __init__(self, scheme_name: str, *scopes: str) -> None:
        self.scheme_name = scheme_name
        self.scopes = frozenset(scopes)

    def authenticate(self, environ: dict[str, Any]) -> Principal | None:
        if environ.get("HTTP_AUTHORIZATION") != "Bearer token":
            return None
        return Principal(self.scheme_name, subject="someone", scopes=self.scopes)


def test_required_scope_present(build: Callable[..., Client]) -> None:
    client = build({}, spec=CUSTOM, mock=True,
                   security_providers={"OAuth2": Scoped("OAuth2", "read", "write")})
    response = client.get("/scoped", headers={"Authorization": "Bearer token"})
    assert response.status == 200 and response.json() == {"scheme": "OAuth2"}
    unauthorized(client.get("/scoped"))


def test_missing_scope_is_403(build: Callable[..., Client]) -> None:
    client = build({}, spec=CUSTOM, mock=True,
                   security_providers={"OAuth2": Scoped("OAuth2", "read")})
    response = client.get("/scoped", headers={"Authorization": "Bearer token"})
    assert response.status == 403, response
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == (
        'Bearer realm="OAuth2", error="insufficient_scope", scope="write"')
    assert response.json()["detail"] == "the credentials lack a required scope"
    unauthorized(client.get("/scoped"))  # no credentials at all: still 401


def test_basic_scheme_challenge_in_mock(build: Callable[..., Client]) -> None:
    client = build({}, spec=CUSTOM, mock=True,
                   security_providers={"OAuth2": Scoped("OAuth2")})
    response = client.get("/basic", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    unauthorized(response)
    assert response.headers["www-authenticate"] == 'Basic realm="BasicAuth", charset="UTF-8"'


# -- lifecycle ------------------------------------------------------------------------------

class Closing(Everyone):
    """A custom provider that counts its `close` calls."""

    def __init__(self, scheme_name: str) -> None:
        self.scheme_name = scheme_name
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_stop_closes_the_providers_the_app_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []
    monkeypatch.setattr(ApiKeyProvider, "close", lambda self: closed.append(self.scheme_name))
    given, registered = Closing("QueryKey"), Closing("CookieKey")
    package = ModuleType("fx_key_handlers")
    package.__dict__.update(HANDLERS, SECURITY_PROVIDERS={"CookieKey": registered})
    app = create_app(SPEC, package, environ=ALL_KEYS, security_providers={"QueryKey": given})
    app.stop(0.5)
    app.stop(0.5)
    assert closed == ["HeaderKey"]
    # Providers given from Python may serve other apps too: their owner closes them.
    assert given.closed == registered.closed == 0


_START = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, sys, time
    from brrt_actors import create_app
    from brrt_actors.testing import Client

    env = json.loads(sys.argv[1])
    app = create_app("specs/petstore.yaml", "handlers", environ=env)
    assert Client(app).get("/health").status == 200
    print(json.dumps(sorted({"jwt", "cryptography"} & set(sys.modules))))
    app.warm_up()  # what the server does once it listens
    print(json.dumps(sorted({"jwt", "cryptography"} & set(sys.modules))))
    from brrt_actors.security.jwt import mint_token
    token = mint_token(env["BRRTR_JWT_SECRET__BearerAuth"], {"sub": "a", "exp": time.time() + 60})
    response = Client(app).get("/secure", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200, response
    app.stop(1)
""")


def test_jwt_schemes_load_pyjwt_once_listening_not_at_start() -> None:
    # NOTE: a fresh process: this one imported pyjwt long ago. benchmarks/start_time.py
    # measures what this saves.
    done = subprocess.run([sys.executable, "-c", _START, json.dumps(PETSTORE_ENV)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    at_start, warmed_up = (json.loads(line) for line in done.stdout.splitlines())
    assert at_start == []
    assert warmed_up == ["cryptography", "jwt"]


# -- secrets stay secret -------------------------------------------------------------------

def test_provider_repr_hides_keys() -> None:
    spec = load_spec(SPEC)
    providers, warnings = build_providers(spec.security_schemes, {"HeaderKey", "QueryKey"},
                                          {**ALL_KEYS, "BRRTR_API_KEY__QueryKey": "a,b"}, {})
    assert warnings == []
    header = providers["HeaderKey"]
    assert isinstance(header, ApiKeyProvider)
    assert SECRET not in repr(header) and SECRET not in str(header)
    assert repr(header) == "ApiKeyProvider('HeaderKey', keys=<1 redacted>)"
    assert repr(providers["QueryKey"]) == "ApiKeyProvider('QueryKey', keys=<2 redacted>)"
    assert SECRET not in repr(providers)


def test_keys_never_logged(build: Callable[..., Client], caplog: pytest.LogCaptureFixture,
                           tmp_path: Path) -> None:
    path = config_file(tmp_path, "security:\n  api_keys:\n    QueryKey: {key: file-secret}\n")
    env = {"BRRTR_API_KEY__HeaderKey": SECRET, "BRRTR_API_KEY__CookieKey": "s3cr3t-cookie"}
    with caplog.at_level(logging.DEBUG):
        client = build(env, config_file=path)
        client.get("/header", headers={"X-API-Key": SECRET})
        client.get("/header", headers={"X-API-Key": "presented-wrong"})
        client.get("/query?api_key=file-secret")
        client.get("/cookie", headers={"Cookie": "session=s3cr3t-cookie"})
        client.get("/either", headers={"X-API-Key": SECRET})
    for secret in (SECRET, "file-secret", "s3cr3t-cookie", "presented-wrong"):
        assert secret not in caplog.text


# -- every scheme kind: fail closed, --dev, requirement shapes, challenges ------------------

SCHEMES = TEST_SPECS / "security_schemes.yaml"
SCHEME_OPERATIONS = ("apikey_op", "bearer_op", "oauth2_op", "basic_op", "oidc_op", "both_op",
                     "either_op", "maybe_op", "public_op")
BEARER_SECRET = "bearer-secret-for-tests-0123456789"
OAUTH2_SECRET = "oauth2-secret-for-tests-0123456789"
SCHEME_ENV = {
    "BRRTR_API_KEY__ApiKey": "k-123",
    "BRRTR_JWT_SECRET__Bearer": BEARER_SECRET,
    "BRRTR_JWT_SECRET__OAuth2": OAUTH2_SECRET,
    "BRRTR_JWT_SECRET__Oidc": "oidc-secret-for-tests-0123456789ab",
}


def _identity(request: Request) -> dict[str, Any]:
    principal = request.principal
    if principal is None:
        return {"scheme": None}
    return {"scheme": principal.scheme, "subject": principal.subject,
            "scopes": sorted(principal.scopes), "claims": request.claims}


def cheap_hash(password: str, salt: str = "salt") -> str:
    """A valid pbkdf2_sha256 hash with the least work the parser accepts (fast tests)."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000)
    return f"pbkdf2_sha256$1000${salt}${base64.b64encode(digest).decode()}"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def jwt_for(secret: str, ttl_s: int = 600, **claims: Any) -> dict[str, str]:
    now = int(time.time())
    token = mint_token(secret, {"sub": "alice", "iat": now, "exp": now + ttl_s, **claims})
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def schemes_app(apps: list[object], tmp_path: Path) -> Callable[..., Client]:
    def build(environ: Mapping[str, str] | None = None, config: str | None = None,
              **kwargs: Any) -> Client:
        path = None
        if config is not None:
            path = config_file(tmp_path, config)
        app = create_app(SCHEMES, {name: _identity for name in SCHEME_OPERATIONS},
                         environ=dict(SCHEME_ENV if environ is None else environ),
                         config_file=path, **kwargs)
        apps.append(app)
        return Client(app)

    return build


BASIC_CONFIG = f"""
security:
  basic:
    Basic:
      users:
        alice: "{cheap_hash('wonderland')}"
"""


@pytest.fixture()
def schemes(schemes_app: Callable[..., Client]) -> Client:
    return schemes_app(config=BASIC_CONFIG)


def test_start_refusal_names_every_unconfigured_scheme(
        schemes_app: Callable[..., Client]) -> None:
    with pytest.raises(ConfigError) as info:
        schemes_app({})
    assert str(info.value) == """5 problems:
  - /components/securitySchemes/ApiKey: security scheme 'ApiKey' is used but not configured: \
set BRRTR_API_KEY__ApiKey (or BRRTR_API_KEY__APIKEY), or security.api_keys.ApiKey.key \
(or security.remote_api_keys.ApiKey.verify_url) in the config file
  - /components/securitySchemes/Basic: security scheme 'Basic' is used but not configured: \
add security.basic.Basic.users (name: hash from `brrt hash-password`) to the config file
  - /components/securitySchemes/Bearer: security scheme 'Bearer' is used but not configured: \
set BRRTR_JWT_SECRET__Bearer (or BRRTR_JWT_SECRET__BEARER), or security.bearer.Bearer.secret \
or security.jwks.Bearer.jwks_url in the config file
  - /components/securitySchemes/OAuth2: security scheme 'OAuth2' is used but not configured: \
set BRRTR_JWT_SECRET__OAuth2 (or BRRTR_JWT_SECRET__OAUTH2), or security.oauth2.OAuth2.secret \
or security.jwks.OAuth2.jwks_url in the config file
  - /components/securitySchemes/Oidc: security scheme 'Oidc' is used but not configured: \
add security.oidc.Oidc (with aud; discovery_url defaults to the scheme's openIdConnectUrl) \
to the config file"""


def test_configured_schemes_are_not_listed(schemes_app: Callable[..., Client]) -> None:
    with pytest.raises(ConfigError) as info:
        schemes_app({**SCHEME_ENV, "BRRTR_JWT_SECRET__Oidc": ""})
    assert [where for where, _ in info.value.problems] == [
        "/components/securitySchemes/Basic", "/components/securitySchemes/Oidc"]
    assert BEARER_SECRET not in str(info.value)


def test_dev_defaults_work_and_warn(schemes_app: Callable[..., Client],
                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="brrt_actors"):
        client = schemes_app({}, dev=True)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "brrt_actors.security"]
    assert len(warnings) == 5, warnings
    for name in ("ApiKey", "Basic", "Bearer", "OAuth2", "Oidc"):
        assert any(w.startswith(f"DEVELOPMENT DEFAULT (--dev): security scheme {name!r}")
                   and "never use --dev in production" in w for w in warnings), name
    assert client.get("/apikey", headers={"X-API-Key": DEV_API_KEY}).status == 200
    assert client.get("/basic", headers=basic(DEV_USER, DEV_PASSWORD)).json()["subject"] == "dev"
    assert client.get("/bearer", headers=jwt_for(dev_jwt_secret("Bearer"))).status == 200
    assert client.get("/oauth2", headers=jwt_for(dev_jwt_secret("OAuth2"),
                                                 scope="read")).status == 200
    assert client.get("/oidc", headers=jwt_for(dev_jwt_secret("Oidc"))).status == 200
    # Still closed to everything else.
    unauthorized(client.get("/apikey", headers={"X-API-Key": "test123"}))
    unauthorized(client.get("/basic", headers=basic(DEV_USER, "nope")))
    unauthorized(client.get("/bearer", headers=jwt_for(BEARER_SECRET)))


def test_dev_gives_each_jwt_scheme_its_own_secret(schemes_app: Callable[..., Client]) -> None:
    client = schemes_app({}, dev=True)
    bearer, oauth2 = dev_jwt_secret("Bearer"), dev_jwt_secret("OAuth2")
    assert bearer != oauth2 and bearer.startswith(DEV_JWT_SECRET)
    # A development OAuth2 token with only `write` is not a bearer token: /either wants the
    # bearer scheme, or OAuth2 with `read`.
    write_only = client.get("/either", headers=jwt_for(oauth2, scope="write"))
    assert write_only.status == 403, write_only
    assert write_only.headers["www-authenticate"] == (
        'Bearer realm="OAuth2", error="insufficient_scope", scope="read"')
    assert client.get("/either", headers=jwt_for(bearer)).json()["scheme"] == "Bearer"
    unauthorized(client.get("/bearer", headers=jwt_for(oauth2)))
    unauthorized(client.get("/oauth2", headers=jwt_for(bearer, scope="read")))


def test_dev_leaves_configured_schemes_alone(schemes_app: Callable[..., Client],
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="brrt_actors"):
        client = schemes_app(config=BASIC_CONFIG, dev=True)
    assert "DEVELOPMENT DEFAULT" not in caplog.text
    unauthorized(client.get("/apikey", headers={"X-API-Key": DEV_API_KEY}))
    assert client.get("/apikey", headers={"X-API-Key": "k-123"}).status == 200


def test_mock_rejects_unconfigured_unless_dev(schemes_app: Callable[..., Client]) -> None:
    mock = schemes_app({}, mock=True)
    unauthorized(mock.get("/apikey", headers={"X-API-Key": DEV_API_KEY}))
    unauthorized(mock.get("/bearer", headers=jwt_for(dev_jwt_secret("Bearer"))))
    both = schemes_app({}, mock=True, dev=True)
    assert both.get("/apikey", headers={"X-API-Key": DEV_API_KEY}).status == 200


def test_each_scheme_accepts_its_credentials(schemes: Client) -> None:
    assert schemes.get("/apikey", headers={"X-API-Key": "k-123"}).json() == {
        "scheme": "ApiKey", "subject": None, "scopes": [], "claims": {}}
    bearer = schemes.get("/bearer", headers=jwt_for(BEARER_SECRET, scope="a b", team="x"))
    body = bearer.json()
    assert body["scheme"] == "Bearer" and body["subject"] == "alice"
    assert body["scopes"] == ["a", "b"] and body["claims"]["team"] == "x"
    assert schemes.get("/basic", headers=basic("alice", "wonderland")).json()["subject"] == "alice"
    assert schemes.get("/oauth2", headers=jwt_for(OAUTH2_SECRET, scope="read")).status == 200


@pytest.mark.parametrize(("path", "challenge"), [
    ("/apikey", 'ApiKey realm="ApiKey", name="X-API-Key", in="header"'),
    ("/bearer", 'Bearer realm="Bearer"'),
    ("/oauth2", 'Bearer realm="OAuth2"'),
    ("/basic", 'Basic realm="Basic", charset="UTF-8"'),
    ("/both", 'ApiKey realm="ApiKey", name="X-API-Key", in="header", Bearer realm="Bearer"'),
    ("/either", 'Bearer realm="Bearer", Bearer realm="OAuth2"'),
])
def test_missing_credentials_challenge(schemes: Client, path: str, challenge: str) -> None:
    response = schemes.get(path)
    unauthorized(response)
    assert response.headers["www-authenticate"] == challenge


@pytest.mark.parametrize(("path", "headers", "challenge"), [
    ("/apikey", {"X-API-Key": "wrong"},
     'ApiKey realm="ApiKey", name="X-API-Key", in="header", error="invalid_token"'),
    ("/bearer", jwt_for(OAUTH2_SECRET), 'Bearer realm="Bearer", error="invalid_token"'),
    ("/bearer", jwt_for(BEARER_SECRET, ttl_s=-600),
     'Bearer realm="Bearer", error="invalid_token"'),
    ("/bearer", {"Authorization": "Bearer not.a.jwt"},
     'Bearer realm="Bearer", error="invalid_token"'),
    ("/basic", basic("alice", "looking-glass"), 'Basic realm="Basic", charset="UTF-8"'),
    ("/basic", {"Authorization": "Basic %%%"}, 'Basic realm="Basic", charset="UTF-8"'),
    # The key was wrong, the token missing: each challenge says what it saw.
    ("/both", {"X-API-Key": "wrong"},
     'ApiKey realm="ApiKey", name="X-API-Key", in="header", error="invalid_token", '
     'Bearer realm="Bearer"'),
])
def test_invalid_credentials_challenge(schemes: Client, path: str, headers: dict[str, str],
                                       challenge: str) -> None:
    response = schemes.get(path, headers=headers)
    body = unauthorized(response)
    assert response.headers["www-authenticate"] == challenge
    assert set(body) == {"type", "title", "status", "detail", "instance", "request_id"}


def test_and_group_needs_both_schemes(schemes: Client) -> None:
    key = {"X-API-Key": "k-123"}
    assert schemes.get("/both", headers={**key, **jwt_for(BEARER_SECRET)}).json()[
        "scheme"] == "ApiKey"  # the group's first scheme names the principal
    unauthorized(schemes.get("/both", headers=key))
    unauthorized(schemes.get("/both", headers=jwt_for(BEARER_SECRET)))
    unauthorized(schemes.get("/both", headers={"X-API-Key": "no", **jwt_for(BEARER_SECRET)}))


def test_or_of_bearer_and_oauth2_with_scope(schemes: Client) -> None:
    assert schemes.get("/either", headers=jwt_for(BEARER_SECRET)).json()["scheme"] == "Bearer"
    oauth2 = schemes.get("/either", headers=jwt_for(OAUTH2_SECRET, scope="read write"))
    assert oauth2.json()["scheme"] == "OAuth2"
    response = schemes.get("/either", headers=jwt_for(OAUTH2_SECRET, scope="write"))
    assert response.status == 403, response
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == (
        'Bearer realm="OAuth2", error="insufficient_scope", scope="read"')
    assert response.json()["detail"] == "the credentials lack a required scope"


def test_anonymous_group_and_public(schemes: Client) -> None:
    assert schemes.get("/maybe").json() == {"scheme": None}
    assert schemes.get("/maybe", headers=jwt_for(BEARER_SECRET)).json()["scheme"] == "Bearer"
    # A bad token falls back to anonymous, as a bad API key does.
    assert schemes.get("/maybe", headers=jwt_for(OAUTH2_SECRET)).json() == {"scheme": None}
    assert schemes.get("/public", headers={"Authorization": "Bearer junk"}).json() == {
        "scheme": None}


def test_rejections_are_logged_with_request_id_and_redacted(
        schemes: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="brrt_actors.security"):
        response = schemes.get("/apikey", headers={"X-API-Key": "wrong-key-0123456789",
                                                   "X-Request-ID": "req-42"})
        schemes.get("/basic", headers={**basic("alice", "guessed-password"),
                                       "X-Request-ID": "req-43"})
    unauthorized(response)
    lines = [r.getMessage() for r in caplog.records if r.name == "brrt_actors.security"]
    assert any("req-42" in line and "ApiKey" in line and "invalid_key" in line
               and "wrong-…" in line for line in lines), lines
    assert any("req-43" in line and "Basic" in line for line in lines), lines
    assert "wrong-key-0123456789" not in caplog.text
    assert "guessed-password" not in caplog.text


def test_principal_repr_hides_claims() -> None:
    principal = Principal("Bearer", "alice", frozenset({"read"}), {"email": "a@example.com"})
    assert repr(principal) == "Principal(scheme='Bearer', subject='alice', scopes=['read'])"
    assert Principal("ApiKey").claims == {}
