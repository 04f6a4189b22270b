"""JWKS key sources against a real HTTP server on 127.0.0.1 that the tests change and break."""
from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from gevent.pywsgi import WSGIServer
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.utils import der_to_raw_signature

from brrt_actors import create_app
from brrt_actors.security import jwks as jwks_module
from brrt_actors.security._redact import safe_url
from brrt_actors.security.credentials import InvalidCredentials
from brrt_actors.security.jwks import JWKSKeySource, check_key_url
from brrt_actors.security.jwt import JWTBearerProvider, JWTSettings, mint_token
from brrt_actors.testing import Client


class KeyServer:
    """Serves `documents[path]` as JSON; `status` != 200 or `delay` make it misbehave."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.status = 200
        self.delay = 0.0
        self.requests = 0
        self.redirect: str | None = None
        self.raw: bytes | None = None
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None)
        self.server.start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    def app(self, environ: dict[str, Any],
            start_response: Callable[..., Any]) -> list[bytes]:
        self.requests += 1
        if self.delay:
            gevent.sleep(self.delay)
        if self.redirect is not None:
            start_response("302 Found", [("Location", self.redirect), ("Content-Length", "0")])
            return [b""]
        if self.status != 200:
            start_response(f"{self.status} Oops", [("Content-Length", "4")])
            return [b"down"]
        document = self.documents.get(environ["PATH_INFO"])
        if document is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        body = self.raw if self.raw is not None else json.dumps(document).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    def stop(self) -> None:
        self.server.stop(timeout=0.5)


@pytest.fixture()
def server() -> Iterator[KeyServer]:
    running = KeyServer()
    yield running
    running.stop()


@pytest.fixture()
def closing() -> Iterator[list[Any]]:
    """Close key sources at the end of a test (their background refreshes stop)."""
    opened: list[Any] = []
    yield opened
    for source in opened:
        source.close()


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048)
            for kid in ("k1", "k2")}


def jwk(kid: str, key: rsa.RSAPrivateKey, **extra: Any) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig",
            **extra}


def token(key: Any, kid: str | None, alg: str = "RS256", **claims: Any) -> dict[str, str]:
    payload = {"sub": "alice", "exp": int(time.time()) + 300, **claims}
    return {"HTTP_AUTHORIZATION": f"Bearer {mint_token(key, payload, alg, kid=kid)}"}


def forged_es256(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    """A token that claims ES256 but is signed with a key of another curve."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "ES256", "kid": kid, "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": "alice", "exp": int(time.time()) + 300}).encode())
    der = key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    signature = b64(der_to_raw_signature(der, key.curve))
    return {"HTTP_AUTHORIZATION": f"Bearer {header}.{payload}.{signature}"}


def source_for(server: KeyServer, closing: list[Any], **options: Any) -> JWKSKeySource:
    options.setdefault("timeout_s", 1.0)
    source = JWKSKeySource(server.base + "/jwks", **options)
    closing.append(source)
    return source


def provider_for(source: JWKSKeySource, algorithms: tuple[str, ...] = ("RS256",)
                 ) -> JWTBearerProvider:
    return JWTBearerProvider("Jwks", JWTSettings(algorithms=algorithms), key_source=source)


def category(provider: JWTBearerProvider, environ: dict[str, Any]) -> str:
    with pytest.raises(InvalidCredentials) as info:
        provider.authenticate(environ)
    return info.value.category


def test_tokens_verify_with_keys_from_the_url(server: KeyServer, closing: list[Any],
                                              keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    source = source_for(server, closing)
    provider = provider_for(source)
    for n in range(3):
        principal = provider.authenticate(token(keys["k1"], "k1", n=n))
        assert principal is not None and principal.subject == "alice"
    assert source.fetches == 1
    assert category(provider, token(keys["k2"], "k1")) == "invalid_signature"
    assert source.fetches == 1


def test_settings_with_a_jwks_url_build_the_source(server: KeyServer, closing: list[Any],
                                                   keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    provider = JWTBearerProvider("Jwks", JWTSettings(algorithms=("RS256",),
                                                     jwks_url=server.base + "/jwks"))
    closing.append(provider)
    assert provider.authenticate(token(keys["k1"], "k1")) is not None
    assert isinstance(provider.key_source, JWKSKeySource)
    assert provider.key_source.fetches == 1


def test_key_rotation_is_picked_up_with_one_more_fetch(server: KeyServer, closing: list[Any],
                                                       keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    source = source_for(server, closing, refresh_cooldown_s=0.1)
    provider = provider_for(source)
    assert provider.authenticate(token(keys["k1"], "k1")) is not None
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"]), jwk("k2", keys["k2"])]}
    gevent.sleep(0.12)
    assert provider.authenticate(token(keys["k2"], "k2")) is not None
    assert provider.authenticate(token(keys["k1"], "k1", n=2)) is not None
    assert source.fetches == 2


def test_server_down_keeps_the_last_good_keys(server: KeyServer, closing: list[Any],
                                              keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    source = source_for(server, closing, ttl_s=0.2, refresh_cooldown_s=0.05)
    provider = provider_for(source)
    assert provider.authenticate(token(keys["k1"], "k1")) is not None
    server.status = 500
    gevent.sleep(0.3)  # past the TTL: the background refresh has failed by now
    assert source.failures >= 1
    assert provider.authenticate(token(keys["k1"], "k1", n=1)) is not None
    server.stop()  # connection refused from now on
    gevent.sleep(0.3)
    assert provider.authenticate(token(keys["k1"], "k1", n=2)) is not None
    assert category(provider, token(keys["k2"], "k2")) == "unknown_key"


def test_random_kid_flood_causes_no_fetch_within_the_cooldown(
        server: KeyServer, closing: list[Any], keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    source = source_for(server, closing, refresh_cooldown_s=30)
    provider = provider_for(source)
    assert provider.authenticate(token(keys["k1"], "k1")) is not None
    rng = random.Random(1)
    for _ in range(200):
        assert category(provider, token(keys["k1"], f"{rng.getrandbits(64):x}")) == \
            "unknown_key"
    assert source.fetches == 1
    assert server.requests == 1


def test_random_kid_flood_fetches_at_most_once_per_cooldown(
        server: KeyServer, closing: list[Any], keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    cooldown = 0.1
    source = source_for(server, closing, refresh_cooldown_s=cooldown)
    provider = provider_for(source)
    started = time.monotonic()
    assert provider.authenticate(token(keys["k1"], "k1")) is not None
    rng = random.Random(2)
    for _ in range(200):
        category(provider, token(keys["k1"], f"{rng.getrandbits(64):x}"))
        gevent.sleep(0.002)
    elapsed = time.monotonic() - started
    assert 1 < source.fetches <= 1 + int(elapsed / cooldown) + 1


def test_concurrent_first_requests_fetch_once(server: KeyServer, closing: list[Any],
                                              keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    server.delay = 0.2
    source = source_for(server, closing)
    provider = provider_for(source)
    environs = [token(keys["k1"], "k1", n=n) for n in range(20)]
    workers = [gevent.spawn(provider.authenticate, environ) for environ in environs]
    gevent.joinall(workers, timeout=2)
    assert all(worker.successful() and worker.value is not None for worker in workers)
    assert source.fetches == 1
    assert server.requests == 1


def test_first_fetch_failing_is_bounded_and_spaced(server: KeyServer, closing: list[Any],
                                                   keys: dict[str, Any]) -> None:
    server.status = 503
    source = source_for(server, closing, refresh_cooldown_s=0.2)
    provider = provider_for(source)
    assert category(provider, token(keys["k1"], "k1")) == "keys_unavailable"
    assert category(provider, token(keys["k1"], "k1", n=1)) == "keys_unavailable"
    assert source.fetches == 1
    server.status = 200
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    gevent.sleep(0.25)
    assert provider.authenticate(token(keys["k1"], "k1", n=2)) is not None
    assert source.fetches == 2


def test_a_slow_server_is_cut_off_at_the_timeout(server: KeyServer, closing: list[Any],
                                                 keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    server.delay = 1.5
    source = source_for(server, closing, timeout_s=0.2)
    provider = provider_for(source)
    started = time.monotonic()
    assert category(provider, token(keys["k1"], "k1")) == "keys_unavailable"
    assert time.monotonic() - started < 1.0
    gevent.sleep(0.1)
    assert source.failures == 1


def test_unknown_kid_is_remembered_for_the_negative_ttl(
        server: KeyServer, closing: list[Any], keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    source = source_for(server, closing, refresh_cooldown_s=0.05, negative_ttl_s=0.8)
    provider = provider_for(source)
    assert provider.authenticate(token(keys["k1"], "k1")) is not None
    gevent.sleep(0.06)
    assert category(provider, token(keys["k2"], "k2")) == "unknown_key"
    assert source.fetches == 2  # the unknown kid triggered one refresh
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"]), jwk("k2", keys["k2"])]}
    gevent.sleep(0.1)  # past the cooldown, but k2 is still known to be unknown
    assert category(provider, token(keys["k2"], "k2", n=1)) == "unknown_key"
    assert source.fetches == 2
    gevent.sleep(0.75)  # past the negative TTL
    assert provider.authenticate(token(keys["k2"], "k2", n=2)) is not None
    assert source.fetches == 3


def test_background_refresh_and_removed_keys(server: KeyServer, closing: list[Any],
                                             keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    source = source_for(server, closing, ttl_s=0.2, refresh_cooldown_s=30)
    provider = provider_for(source)
    environ = token(keys["k1"], "k1")
    assert provider.authenticate(environ) is not None
    assert provider.authenticate(environ) is not None
    assert provider.cache_hits == 1
    server.documents["/jwks"] = {"keys": [jwk("k2", keys["k2"])]}
    gevent.sleep(0.3)  # the background refresh ran shortly before the TTL, no request needed
    assert source.fetches >= 2
    # The cached verification of a k1 token went with k1.
    assert category(provider, environ) == "unknown_key"
    assert provider.authenticate(token(keys["k2"], "k2")) is not None


APP_SPEC = """
openapi: 3.1.0
info: {title: Keys from a URL, version: "1"}
paths:
  /me:
    get:
      operationId: me
      security: [{Jwks: []}]
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
components:
  securitySchemes:
    Jwks: {type: http, scheme: bearer, bearerFormat: JWT}
"""


def wait_for(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        gevent.sleep(0.01)


def test_stopping_the_app_stops_the_background_refresh(server: KeyServer, keys: dict[str, Any],
                                                       tmp_path: Path) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    (tmp_path / "spec.yaml").write_text(APP_SPEC)
    (tmp_path / "config.yaml").write_text(
        f"security:\n  jwks:\n    Jwks: {{jwks_url: '{server.base}/jwks', "
        "algorithms: [RS256], cache_ttl_secs: 0.1}\n")
    app = create_app(tmp_path / "spec.yaml", {"me": lambda request: {}},
                     config_file=tmp_path / "config.yaml", environ={})
    try:
        bearer = token(keys["k1"], "k1")["HTTP_AUTHORIZATION"]
        assert Client(app).get("/me", headers={"Authorization": bearer}).status == 200
        wait_for(lambda: server.requests >= 3)  # refreshed in the background, unasked
        (provider,) = app._own_providers
        document = provider.key_source._document  # type: ignore[attr-defined]
        # Between two refreshes: the next one waits in its timer greenlet.
        wait_for(lambda: document._timer is not None and document._inflight is None)
        timer = document._timer
    finally:
        app.stop(0.5)
    fetched = server.requests
    assert timer.dead and document._timer is None
    gevent.sleep(0.3)  # three refresh periods
    assert server.requests == fetched
    app.stop(0.5)  # stopping again closes nothing twice, and fails nothing
    assert server.requests == fetched


def test_prefetch_fetches_before_the_first_request(server: KeyServer, closing: list[Any],
                                                   keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    source = source_for(server, closing)
    source.prefetch()
    gevent.sleep(0.1)
    assert source.fetches == 1
    assert provider_for(source).authenticate(token(keys["k1"], "k1")) is not None
    assert source.fetches == 1


def test_a_key_verifies_only_its_own_algorithm(server: KeyServer, closing: list[Any],
                                               keys: dict[str, Any]) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    server.documents["/jwks"] = {"keys": [
        jwk("k1", keys["k1"], alg="RS256"),
        {**ECAlgorithm.to_jwk(p384.public_key(), as_dict=True), "kid": "e1"},
    ]}
    source = source_for(server, closing, algorithms=("RS256", "PS256", "ES256", "ES384"))
    provider = provider_for(source, ("RS256", "PS256", "ES256", "ES384"))
    assert provider.authenticate(token(keys["k1"], "k1")) is not None
    assert category(provider, token(keys["k1"], "k1", "PS256")) == "unknown_key"
    assert provider.authenticate(token(p384, "e1", "ES384")) is not None
    # A P-384 key cannot stand in for ES256 (P-256), whatever the token says.
    assert category(provider, forged_es256(p384, "e1")) == "unknown_key"
    assert category(provider, token(keys["k1"], "k1", "RS512")) == "invalid_algorithm"


def test_a_token_without_kid_uses_the_only_fitting_key(server: KeyServer, closing: list[Any],
                                                       keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    provider = provider_for(source_for(server, closing))
    assert provider.authenticate(token(keys["k1"], None)) is not None
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"]), jwk("k2", keys["k2"])]}
    provider = provider_for(source_for(server, closing))
    assert category(provider, token(keys["k1"], None)) == "unknown_key"


@pytest.mark.parametrize("document", [
    {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h1"}]},  # symmetric keys never count
    {"keys": [{"kty": "RSA", "kid": "bad", "n": "AQAB"}]},
    {"keys": "nope"},
    ["not", "a", "set"],
])
def test_unusable_documents_count_as_failures(server: KeyServer, closing: list[Any],
                                              keys: dict[str, Any], document: Any) -> None:
    server.documents["/jwks"] = document
    source = source_for(server, closing)
    assert category(provider_for(source), token(keys["k1"], "h1")) == "keys_unavailable"
    assert source.failures == 1


def test_oversized_document_is_refused(server: KeyServer, closing: list[Any],
                                       keys: dict[str, Any]) -> None:
    server.documents["/jwks"] = {}
    server.raw = b" " * (1 << 20) + b"{}"
    source = source_for(server, closing)
    assert category(provider_for(source), token(keys["k1"], "k1")) == "keys_unavailable"
    assert source.failures == 1


def test_redirect_to_plain_http_elsewhere_is_refused(server: KeyServer, closing: list[Any],
                                                     keys: dict[str, Any]) -> None:
    server.redirect = "http://keys.example.com/jwks"
    source = source_for(server, closing)
    assert category(provider_for(source), token(keys["k1"], "k1")) == "keys_unavailable"
    assert server.requests == 1 and source.failures == 1


def test_very_long_kid_is_refused_without_fetching(server: KeyServer, closing: list[Any],
                                                   keys: dict[str, Any]) -> None:
    source = source_for(server, closing)
    assert category(provider_for(source), token(keys["k1"], "k" * 1000)) == "unknown_key"
    assert source.fetches == 0


@pytest.mark.parametrize("url", ["https://keys.example.com/jwks", "http://localhost:1/jwks",
                                 "http://127.0.0.1/jwks", "http://[::1]:8080/jwks"])
def test_allowed_urls(url: str) -> None:
    check_key_url(url)


@pytest.mark.parametrize(("url", "message"), [
    ("http://keys.example.com/jwks", "plain http to 'keys.example.com'"),
    ("http://10.0.0.1/jwks", "plain http"),
    ("file:///etc/passwd", "must be an https"),
    ("https:///nohost", "must be an https"),
    ("http://[::1/jwks", "not a valid URL"),
])
def test_other_urls_are_refused_at_construction(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JWKSKeySource(url)


def test_symmetric_algorithms_are_refused() -> None:
    with pytest.raises(ValueError, match="public-key algorithms only"):
        JWKSKeySource("https://keys.example.com/jwks", algorithms=("HS256",))


def test_secrets_in_the_url_stay_out_of_reprs() -> None:
    source = JWKSKeySource("https://user:pw@keys.example.com/jwks?token=abc")
    assert "pw" not in repr(source) and "abc" not in repr(source)


@pytest.mark.parametrize("header", [
    {"alg": ["RS256"]}, {"alg": {"a": 1}}, {"alg": None}, {"alg": "RS256", "kid": ["k1"]},
    {"alg": "RS256", "crit": "b64"}, {"alg": "RS256", "crit": ["nope"]},
])
def test_odd_headers_are_refused_without_fetching(server: KeyServer, closing: list[Any],
                                                  header: dict[str, Any]) -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    source = source_for(server, closing)
    forged = f"{b64(json.dumps(header).encode())}.{b64(b'{}')}.{b64(b'sig')}"
    assert category(provider_for(source), {"HTTP_AUTHORIZATION": f"Bearer {forged}"}) in (
        "malformed", "invalid_algorithm")
    assert source.fetches == 0


def test_unknown_kids_are_remembered_within_a_bound(
        server: KeyServer, closing: list[Any], keys: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jwks_module, "_MAX_UNKNOWN_KIDS", 3)
    server.documents["/jwks"] = {"keys": [jwk("k1", keys["k1"])]}
    source = source_for(server, closing, refresh_cooldown_s=0, negative_ttl_s=60)
    provider = provider_for(source)
    for n in range(5):
        category(provider, token(keys["k1"], f"kid-{n}"))
    assert list(source._unknown) == ["kid-2", "kid-3", "kid-4"]
    assert source.fetches == 6  # first fetch + one refresh per new unknown kid


def test_safe_url_drops_credentials() -> None:
    assert safe_url("https://u:p@[::1]:8443/jwks?k=v#f") == "https://[::1]:8443/jwks"
    assert safe_url("http://[::1") == "<unparsable url>"
