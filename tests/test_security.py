"""The security stage: API keys in a header, a query parameter or a cookie, fail closed."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from brrt_actors import ConfigError, Principal, Request, create_app
from brrt_actors.security import ApiKeyProvider, build_providers
from brrt_actors.spec import load_spec
from brrt_actors.testing import Client, TestResponse

TEST_SPECS = Path(__file__).resolve().parent / "specs"
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


def test_cookie_key_accepted(client: Client) -> None:
    response = client.get("/cookie", headers={"Cookie": "theme=dark; session=s3cr3t-cookie"})
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
    assert "'BearerAuth'" in str(info.value) and "not supported yet" in str(info.value)


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
    assert "'BearerAuth'" in caplog.text
    response = client.get("/secure", headers={"Authorization": "Bearer abc"})
    unauthorized(response)
    assert response.headers["www-authenticate"] == 'Bearer realm="BearerAuth"'


def test_custom_provider_wins(build: Callable[..., Client]) -> None:
    class Everyone:
        scheme_name = "BearerAuth"
        challenge = 'Bearer realm="custom"'

        def authenticate(self, environ: dict[str, Any]) -> Principal | None:
            return Principal("BearerAuth", subject="someone")

    client = build({}, spec=UNSUPPORTED, security_providers={"BearerAuth": Everyone()})
    response = client.get("/secure")
    assert response.status == 200 and response.json() == {"scheme": "BearerAuth"}


class Scoped:
    """A custom provider: every request is `someone` with the scopes given."""

    challenge = 'Bearer realm="OAuth2"'

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
    assert response.headers["www-authenticate"] == 'Bearer realm="OAuth2"'
    assert response.json()["detail"] == "the credentials lack a required scope"
    unauthorized(client.get("/scoped"))  # no credentials at all: still 401


def test_basic_scheme_challenge_in_mock(build: Callable[..., Client]) -> None:
    client = build({}, spec=CUSTOM, mock=True,
                   security_providers={"OAuth2": Scoped("OAuth2")})
    response = client.get("/basic", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    unauthorized(response)
    assert response.headers["www-authenticate"] == 'Basic realm="BasicAuth"'


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
