"""OpenID Connect: discovery document and keys served by a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from gevent.pywsgi import WSGIServer
from jwt.algorithms import RSAAlgorithm

from brrt_actors.security.credentials import InvalidCredentials
from brrt_actors.security.jwt import JWTBearerProvider, JWTSettings, mint_token
from brrt_actors.security.oidc import OIDCKeySource, build_oidc_provider

WELL_KNOWN = "/.well-known/openid-configuration"


class IdentityProvider:
    """An OpenID provider's public side: discovery document and JWKS, changeable by tests."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.requests: dict[str, int] = {}
        self.status = 200
        self.delay = 0.0
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None, error_log=None)
        self.server.start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.discovery_url = self.base + WELL_KNOWN

    def app(self, environ: dict[str, Any],
            start_response: Callable[..., Any]) -> list[bytes]:
        path = environ["PATH_INFO"]
        self.requests[path] = self.requests.get(path, 0) + 1
        if self.delay:
            gevent.sleep(self.delay)
        document = self.documents.get(path)
        if self.status != 200 or document is None:
            start_response("503 Unavailable", [("Content-Length", "0")])
            return [b""]
        body = json.dumps(document).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    def publish(self, keys: dict[str, rsa.RSAPrivateKey], issuer: str | None = None,
                jwks_path: str = "/jwks") -> None:
        self.documents[WELL_KNOWN] = {"issuer": issuer or self.base,
                                      "jwks_uri": self.base + jwks_path,
                                      "id_token_signing_alg_values_supported": ["RS256"]}
        self.documents[jwks_path] = {"keys": [
            {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}
            for kid, key in keys.items()]}


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048)
            for kid in ("k1", "k2")}


@pytest.fixture()
def idp() -> Iterator[IdentityProvider]:
    running = IdentityProvider()
    yield running
    running.server.stop(timeout=0.5)


@pytest.fixture()
def closing() -> Iterator[list[JWTBearerProvider]]:
    opened: list[JWTBearerProvider] = []
    yield opened
    for provider in opened:
        provider.close()


def make(idp: IdentityProvider, closing: list[JWTBearerProvider],
         **settings: Any) -> JWTBearerProvider:
    settings.setdefault("algorithms", ("RS256",))
    settings.setdefault("jwks_timeout_s", 1.0)
    provider = build_oidc_provider("OpenId", idp.discovery_url, JWTSettings(**settings))
    closing.append(provider)
    return provider


def bearer(key: rsa.RSAPrivateKey, kid: str, **claims: Any) -> dict[str, str]:
    payload = {"sub": "alice", "exp": int(time.time()) + 300, "scope": "openid read", **claims}
    return {"HTTP_AUTHORIZATION": f"Bearer {mint_token(key, payload, 'RS256', kid=kid)}"}


def category(provider: JWTBearerProvider, environ: dict[str, Any]) -> str:
    with pytest.raises(InvalidCredentials) as info:
        provider.authenticate(environ)
    return info.value.category


def test_tokens_from_the_discovered_keys_are_accepted(
        idp: IdentityProvider, closing: list[JWTBearerProvider],
        keys: dict[str, rsa.RSAPrivateKey]) -> None:
    idp.publish({"k1": keys["k1"]})
    provider = make(idp, closing)
    principal = provider.authenticate(bearer(keys["k1"], "k1", iss=idp.base))
    assert principal is not None
    assert (principal.scheme, principal.subject) == ("OpenId", "alice")
    assert principal.scopes == {"openid", "read"}
    assert provider.authenticate(bearer(keys["k1"], "k1", iss=idp.base, n=1)) is not None
    assert idp.requests == {WELL_KNOWN: 1, "/jwks": 1}


def test_the_discovered_issuer_is_required(idp: IdentityProvider,
                                           closing: list[JWTBearerProvider],
                                           keys: dict[str, rsa.RSAPrivateKey]) -> None:
    idp.publish({"k1": keys["k1"]})
    provider = make(idp, closing)
    assert category(provider, bearer(keys["k1"], "k1", iss="https://evil.test")) == \
        "invalid_claims"
    assert category(provider, bearer(keys["k1"], "k1")) == "invalid_claims"
    assert category(provider, bearer(keys["k2"], "k1", iss=idp.base)) == "invalid_signature"


def test_a_configured_issuer_overrides_the_discovered_one(
        idp: IdentityProvider, closing: list[JWTBearerProvider],
        keys: dict[str, rsa.RSAPrivateKey]) -> None:
    idp.publish({"k1": keys["k1"]})
    provider = make(idp, closing, issuer="https://tenant.test")
    assert provider.authenticate(bearer(keys["k1"], "k1", iss="https://tenant.test")) \
        is not None
    assert category(provider, bearer(keys["k1"], "k1", iss=idp.base)) == "invalid_claims"


def test_audience_from_the_settings(idp: IdentityProvider, closing: list[JWTBearerProvider],
                                    keys: dict[str, rsa.RSAPrivateKey]) -> None:
    idp.publish({"k1": keys["k1"]})
    provider = make(idp, closing, audience="shop")
    assert provider.authenticate(bearer(keys["k1"], "k1", iss=idp.base, aud="shop")) \
        is not None
    assert category(provider, bearer(keys["k1"], "k1", iss=idp.base, aud="bank")) == \
        "invalid_claims"


def test_concurrent_first_requests_fetch_each_document_once(
        idp: IdentityProvider, closing: list[JWTBearerProvider],
        keys: dict[str, rsa.RSAPrivateKey]) -> None:
    idp.publish({"k1": keys["k1"]})
    idp.delay = 0.1
    provider = make(idp, closing)
    workers = [gevent.spawn(provider.authenticate, bearer(keys["k1"], "k1", iss=idp.base, n=n))
               for n in range(20)]
    gevent.joinall(workers, timeout=2)
    assert all(worker.successful() and worker.value is not None for worker in workers)
    assert idp.requests == {WELL_KNOWN: 1, "/jwks": 1}


def test_discovery_down_then_up(idp: IdentityProvider, closing: list[JWTBearerProvider],
                                keys: dict[str, rsa.RSAPrivateKey]) -> None:
    idp.publish({"k1": keys["k1"]})
    idp.status = 503
    provider = make(idp, closing, jwks_refresh_cooldown_s=0.1)
    assert category(provider, bearer(keys["k1"], "k1", iss=idp.base)) == "keys_unavailable"
    idp.status = 200
    gevent.sleep(0.15)
    assert provider.authenticate(bearer(keys["k1"], "k1", iss=idp.base)) is not None


def test_keys_survive_an_outage_and_follow_a_new_jwks_uri(
        idp: IdentityProvider, closing: list[JWTBearerProvider],
        keys: dict[str, rsa.RSAPrivateKey]) -> None:
    idp.publish({"k1": keys["k1"]})
    provider = make(idp, closing, jwks_cache_ttl_s=0.2, jwks_refresh_cooldown_s=0.05)
    assert provider.authenticate(bearer(keys["k1"], "k1", iss=idp.base)) is not None
    idp.status = 503
    gevent.sleep(0.3)  # both documents past their TTL, refreshes failing
    assert provider.authenticate(bearer(keys["k1"], "k1", iss=idp.base, n=1)) is not None
    idp.status = 200
    idp.publish({"k2": keys["k2"]}, jwks_path="/jwks-2")
    gevent.sleep(0.4)
    assert provider.authenticate(bearer(keys["k2"], "k2", iss=idp.base)) is not None
    source = provider.key_source
    assert isinstance(source, OIDCKeySource) and source.jwks is not None
    assert source.jwks.url.endswith("/jwks-2")


def test_a_discovery_fetch_that_ends_after_close_starts_nothing(
        idp: IdentityProvider, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    idp.publish({"k1": keys["k1"]})
    idp.delay = 0.2
    source = OIDCKeySource(idp.discovery_url, timeout_s=1.0)
    source.prefetch()
    gevent.sleep(0.05)  # the discovery fetch is under way
    source.close()
    gevent.sleep(0.4)
    # The document arrived, but no key set was built or fetched for a closed source.
    assert idp.requests.get(WELL_KNOWN) == 1
    assert source.jwks is None and "/jwks" not in idp.requests


@pytest.mark.parametrize("document", [
    {"issuer": "https://other.test", "jwks_uri": "{base}/jwks"},  # not the URL's issuer
    {"issuer": "{base}", "jwks_uri": "http://keys.example.com/jwks"},  # plain http elsewhere
    {"issuer": "{base}"},
    {"jwks_uri": "{base}/jwks"},
    ["not", "an", "object"],
])
def test_bad_discovery_documents_are_refused(
        idp: IdentityProvider, closing: list[JWTBearerProvider],
        keys: dict[str, rsa.RSAPrivateKey], document: Any) -> None:
    idp.publish({"k1": keys["k1"]})
    if isinstance(document, dict):
        document = {name: value.format(base=idp.base) for name, value in document.items()}
    idp.documents[WELL_KNOWN] = document
    provider = make(idp, closing)
    assert category(provider, bearer(keys["k1"], "k1", iss=idp.base)) == "keys_unavailable"
    assert "/jwks" not in idp.requests


@pytest.mark.parametrize(("url", "settings", "message"), [
    ("http://idp.example.com" + WELL_KNOWN, {"algorithms": ("RS256",)}, "plain http"),
    ("https://idp.example.com" + WELL_KNOWN, {"algorithms": ("HS256",), "secret": "s" * 32},
     "public-key algorithms only"),
    ("https://idp.example.com" + WELL_KNOWN,
     {"algorithms": ("RS256",), "jwks_url": "https://idp.example.com/jwks"}, "no secret"),
])
def test_unfit_settings_are_refused_with_the_scheme_name(url: str, settings: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(ValueError, match=f"'OpenId'.*{message}"):
        build_oidc_provider("OpenId", url, JWTSettings(**settings))
