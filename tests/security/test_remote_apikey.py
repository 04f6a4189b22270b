"""Remote API key verification against a real local HTTP verifier started by the test."""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gevent
import pytest
import ujson
from gevent.pywsgi import WSGIServer

from brrt_actors import Request, create_app
from brrt_actors.security import RemoteApiKeyProvider
from brrt_actors.security.credentials import InvalidCredentials
from brrt_actors.security.remote_apikey import RemoteApiKeySettings
from brrt_actors.spec.model import SecurityScheme
from brrt_actors.testing import Client

TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"
SCHEME = SecurityScheme("ApiKey", "apiKey", "/components/securitySchemes/ApiKey",
                        location="header", parameter_name="X-API-Key")


class Verifier:
    """The remote service: says which keys are good, counting the calls per key."""

    def __init__(self) -> None:
        self.calls: Counter[str | None] = Counter()
        self.paths: Counter[str] = Counter()
        self.delay = 0.0
        self.server = WSGIServer(("127.0.0.1", 0), self, log=None, error_log=None)
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/verify"

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        key = environ.get("HTTP_X_API_KEY")
        self.paths[environ["PATH_INFO"]] += 1
        if environ["PATH_INFO"] != "/verify":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"sub": "whoever"}']
        self.calls[key] += 1
        if self.delay:
            gevent.sleep(self.delay)
        if key == "good":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [ujson.dumps({"sub": "svc-1", "scopes": ["read"], "team": "a"}).encode()]
        if key == "spacey":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"sub": 7, "scope": "read write"}']
        if key == "plain":
            start_response("204 No Content", [])
            return []
        if key == "garbage":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b"{not json"]
        if key == "broken":
            start_response("500 Internal Server Error", [])
            return [b"oops"]
        if key == "redirect":
            start_response("302 Found", [("Location", self.url.replace("/verify", "/stolen"))])
            return []
        if key == "gone":
            start_response("404 Not Found", [])
            return []
        start_response("401 Unauthorized", [])
        return []

    def close(self) -> None:
        self.server.stop(timeout=1)


@pytest.fixture()
def verifier() -> Iterator[Verifier]:
    server = Verifier()
    yield server
    server.close()


def provider_for(url: str, **options: Any) -> RemoteApiKeyProvider:
    return RemoteApiKeyProvider(SCHEME, RemoteApiKeySettings(url, **options))


def key(value: str, header: str = "HTTP_X_API_KEY") -> dict[str, Any]:
    return {header: value}


def refused(provider: RemoteApiKeyProvider, environ: dict[str, Any]) -> InvalidCredentials:
    with pytest.raises(InvalidCredentials) as info:
        provider.authenticate(environ)
    return info.value


# -- accept, reject ---------------------------------------------------------------------------

def test_accepts_a_key_the_verifier_vouches_for(verifier: Verifier) -> None:
    provider = provider_for(verifier.url)
    principal = provider.authenticate(key("good"))
    assert principal is not None
    assert (principal.scheme, principal.subject, principal.scopes) == (
        "ApiKey", "svc-1", frozenset({"read"}))
    assert principal.claims["team"] == "a"


@pytest.mark.parametrize(("value", "subject", "scopes"), [
    ("spacey", None, {"read", "write"}),  # a non-string sub is dropped; `scope` is split
    ("plain", None, set()),               # 2xx without a body
    ("garbage", None, set()),             # 2xx with a broken body: still valid
])
def test_bodies_are_optional(verifier: Verifier, value: str, subject: str | None,
                             scopes: set[str]) -> None:
    principal = provider_for(verifier.url).authenticate(key(value))
    assert principal is not None
    assert principal.subject == subject and principal.scopes == frozenset(scopes)


def test_missing_key_is_none_without_a_call(verifier: Verifier) -> None:
    provider = provider_for(verifier.url)
    assert provider.authenticate({}) is None
    assert provider.authenticate(key("")) is None
    assert provider.calls == 0 and not verifier.calls


@pytest.mark.parametrize("value", ["wrong", "gone"])
def test_wrong_key_is_invalid(verifier: Verifier, value: str) -> None:
    error = refused(provider_for(verifier.url), key(value))
    assert error.category == "invalid_key"
    assert error.detail.endswith(f"for key {value[:6]}…")


def test_unsendable_key_is_invalid_without_a_call(verifier: Verifier) -> None:
    provider = provider_for(verifier.url)
    assert refused(provider, key("bad\x01key")).category == "invalid_key"
    assert refused(provider, key("naïve")).category == "invalid_key"
    assert provider.calls == 0


def test_header_name_override(verifier: Verifier) -> None:
    provider = provider_for(verifier.url, header_name="X-Other-Key")
    assert provider.authenticate(key("good")) is None
    assert provider.authenticate(key("good", "HTTP_X_OTHER_KEY")) is not None
    assert provider.challenge(None) == 'ApiKey realm="ApiKey", name="X-Other-Key", in="header"'


# -- caches -----------------------------------------------------------------------------------

def test_repeated_keys_are_verified_once(verifier: Verifier) -> None:
    provider = provider_for(verifier.url)
    for _ in range(5):
        assert provider.authenticate(key("good")) is not None
        with pytest.raises(InvalidCredentials):
            provider.authenticate(key("wrong"))
    assert verifier.calls == Counter({"good": 1, "wrong": 1})
    assert provider.calls == 2


def test_cached_answers_expire(verifier: Verifier) -> None:
    provider = provider_for(verifier.url, cache_ttl_s=0.05, negative_cache_ttl_s=0.05)
    provider.authenticate(key("good"))
    refused(provider, key("wrong"))
    time.sleep(0.1)
    provider.authenticate(key("good"))
    refused(provider, key("wrong"))
    assert verifier.calls == Counter({"good": 2, "wrong": 2})


def test_cache_is_bounded(verifier: Verifier) -> None:
    provider = provider_for(verifier.url, cache_size=2)
    for value in ("good", "plain", "spacey", "wrong", "gone"):
        with contextlib.suppress(InvalidCredentials):
            provider.authenticate(key(value))
    assert len(provider._cache) <= 2


def test_one_call_in_flight_per_key(verifier: Verifier) -> None:
    verifier.delay = 0.2
    provider = provider_for(verifier.url, timeout_s=2.0)
    jobs = [gevent.spawn(provider.authenticate, key("good")) for _ in range(10)]
    gevent.joinall(jobs, timeout=5, raise_error=True)
    assert all(job.value is not None and job.value.subject == "svc-1" for job in jobs)
    assert verifier.calls == Counter({"good": 1})


# -- fail closed ------------------------------------------------------------------------------

def test_verifier_error_fails_closed_briefly(verifier: Verifier) -> None:
    provider = provider_for(verifier.url, error_cache_ttl_s=0.05)
    assert refused(provider, key("broken")).category == "unavailable"
    assert refused(provider, key("broken")).category == "unavailable"
    assert verifier.calls["broken"] == 1  # a flood does not hammer a failing verifier
    time.sleep(0.1)
    refused(provider, key("broken"))
    assert verifier.calls["broken"] == 2  # ...but an outage is not remembered for long


def test_verifier_down_fails_closed(verifier: Verifier) -> None:
    url = verifier.url
    verifier.close()
    provider = provider_for(url)
    error = refused(provider, key("good"))
    assert error.category == "unavailable"


def test_verifier_timeout_fails_closed(verifier: Verifier) -> None:
    verifier.delay = 2.0
    provider = provider_for(verifier.url, timeout_s=0.1)
    started = time.monotonic()
    assert refused(provider, key("good")).category == "unavailable"
    assert time.monotonic() - started < 1.0


def test_redirects_are_not_followed(verifier: Verifier) -> None:
    provider = provider_for(verifier.url)
    assert refused(provider, key("redirect")).category == "unavailable"
    assert verifier.paths["/stolen"] == 0


def test_repr_and_logs_hold_no_key(verifier: Verifier,
                                   caplog: pytest.LogCaptureFixture) -> None:
    provider = provider_for(verifier.url)
    with caplog.at_level("DEBUG"):
        refused(provider, key("broken"))
        refused(provider, key("wrong-key-material"))
    assert repr(provider) == "RemoteApiKeyProvider('ApiKey')"
    assert "wrong-key-material" not in caplog.text
    assert "ApiKey: remote API key verification unavailable: the verifier answered 500" in \
        caplog.text


# -- through the app --------------------------------------------------------------------------

def _who(request: Request) -> dict[str, Any]:
    principal = request.principal
    return {"scheme": principal.scheme if principal else None,
            "subject": principal.subject if principal else None}


OPERATIONS = ("apikey_op", "bearer_op", "oauth2_op", "basic_op", "oidc_op", "both_op",
              "either_op", "maybe_op", "public_op")


@pytest.fixture()
def build(apps: list[object], tmp_path: Path) -> Callable[..., Client]:
    def build(config: str, environ: dict[str, str] | None = None) -> Client:
        path = tmp_path / "config.yaml"
        path.write_text(config)
        app = create_app(TEST_SPECS / "security_schemes.yaml",
                         {op: _who for op in OPERATIONS}, mock=True,
                         environ=environ or {}, config_file=path)
        apps.append(app)
        return Client(app)

    return build


def test_app_with_remote_keys(verifier: Verifier, build: Callable[..., Client]) -> None:
    client = build(f"""
security:
  remote_api_keys:
    ApiKey: {{verify_url: "{verifier.url}", timeout_ms: 500, cache_ttl_secs: 60,
              negative_cache_ttl_secs: 5}}
""")
    assert client.get("/apikey", headers={"X-API-Key": "good"}).json() == {
        "scheme": "ApiKey", "subject": "svc-1"}
    assert client.get("/apikey", headers={"X-API-Key": "good"}).status == 200
    wrong = client.get("/apikey", headers={"X-API-Key": "wrong"})
    assert wrong.status == 401
    assert wrong.headers["www-authenticate"] == (
        'ApiKey realm="ApiKey", name="X-API-Key", in="header", error="invalid_token"')
    broken = client.get("/apikey", headers={"X-API-Key": "broken"})
    assert broken.status == 401 and "unavailable" not in broken.text
    assert client.get("/apikey").status == 401
    assert verifier.calls == Counter({"good": 1, "wrong": 1, "broken": 1})


def test_env_url_overrides_static_keys(verifier: Verifier,
                                       build: Callable[..., Client]) -> None:
    client = build("security: {api_keys: {ApiKey: {key: static-key}}}\n",
                   {"BRRTR_REMOTE_API_KEY_URL__APIKEY": verifier.url})
    assert client.get("/apikey", headers={"X-API-Key": "good"}).status == 200
    assert client.get("/apikey", headers={"X-API-Key": "static-key"}).status == 401


def test_settings_defaults_match_brrtrouter() -> None:
    settings = RemoteApiKeySettings("https://auth.example/verify")
    assert (settings.timeout_s, settings.cache_ttl_s, settings.verify_header) == (
        0.5, 60.0, "X-API-Key")
    assert replace(settings, timeout_s=1.0).timeout_s == 1.0
