"""Bearer JWTs: every algorithm family, every reason to refuse, and the verified-token cache."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import random
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from brrt_actors.handler import Principal
from brrt_actors.security.credentials import InvalidCredentials
from brrt_actors.security.jwt import (
    HMAC_ALGORITHMS,
    PUBLIC_KEY_ALGORITHMS,
    JWTBearerProvider,
    JWTSettings,
    bearer_challenge,
    mint_token,
)

SECRET = "s" * 64  # long enough for HS512
OTHER_SECRET = "t" * 64


def _pem(private_key: Any) -> str:
    return private_key.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "iat": now, "exp": now + 300, **extra}


def environ_for(token: str) -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def hs_provider(**settings: Any) -> JWTBearerProvider:
    settings.setdefault("algorithms", ("HS256",))
    return JWTBearerProvider("BearerAuth", JWTSettings(secret=SECRET, **settings))


def rejected(provider: JWTBearerProvider, token: str) -> str:
    with pytest.raises(InvalidCredentials) as info:
        provider.authenticate(environ_for(token))
    # SECURITY: the log detail never holds the token.
    assert token not in info.value.detail
    return info.value.category


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return (_b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode()))


# --- accept ---------------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_tokens_are_accepted(alg: str) -> None:
    provider = hs_provider(algorithms=(alg,))
    principal = provider.authenticate(environ_for(mint_token(SECRET, claims(), alg)))
    assert isinstance(principal, Principal)
    assert principal.scheme == "BearerAuth"
    assert principal.subject == "alice"
    assert principal.claims["sub"] == "alice"
    assert principal.scopes == frozenset()


@pytest.mark.parametrize("alg", ["RS256", "RS512", "PS256"])
def test_rsa_tokens_are_accepted(alg: str, rsa_key: rsa.RSAPrivateKey) -> None:
    provider = JWTBearerProvider("Rsa", JWTSettings(algorithms=(alg,), public_key=_pem(rsa_key)))
    principal = provider.authenticate(environ_for(mint_token(rsa_key, claims(), alg)))
    assert principal is not None and principal.subject == "alice"


def test_ecdsa_token_is_accepted(ec_key: ec.EllipticCurvePrivateKey) -> None:
    provider = JWTBearerProvider("Ec", JWTSettings(algorithms=("ES256",),
                                                   public_key=_pem(ec_key)))
    principal = provider.authenticate(environ_for(mint_token(ec_key, claims(), "ES256")))
    assert principal is not None and principal.subject == "alice"


def test_eddsa_token_is_accepted(ed_key: ed25519.Ed25519PrivateKey) -> None:
    provider = JWTBearerProvider("Ed", JWTSettings(algorithms=("EdDSA",),
                                                   public_key=_pem(ed_key)))
    principal = provider.authenticate(environ_for(mint_token(ed_key, claims(), "EdDSA")))
    assert principal is not None and principal.subject == "alice"


def test_private_key_pem_signs_too(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    provider = JWTBearerProvider("Rsa", JWTSettings(algorithms=("RS256",),
                                                    public_key=_pem(rsa_key)))
    assert provider.authenticate(environ_for(mint_token(pem, claims(), "RS256"))) is not None


def test_issuer_and_audience_when_configured() -> None:
    provider = hs_provider(issuer="https://issuer.test", audience=("shop", "admin"))
    token = mint_token(SECRET, claims(iss="https://issuer.test", aud="shop"))
    assert provider.authenticate(environ_for(token)) is not None
    token = mint_token(SECRET, claims(iss="https://issuer.test", aud=["other", "admin"]))
    assert provider.authenticate(environ_for(token)) is not None


def test_leeway_accepts_a_token_just_expired() -> None:
    provider = hs_provider(leeway_s=30)
    token = mint_token(SECRET, claims(exp=int(time.time()) - 10))
    assert provider.authenticate(environ_for(token)) is not None


def test_bearer_keyword_is_case_insensitive() -> None:
    token = mint_token(SECRET, claims())
    assert hs_provider().authenticate({"HTTP_AUTHORIZATION": f"bearer  {token}"}) is not None


# --- missing --------------------------------------------------------------------------------

@pytest.mark.parametrize("environ", [
    {},
    {"HTTP_AUTHORIZATION": "Basic YWxpY2U6c2VjcmV0"},
    {"HTTP_COOKIE": "token=abc"},  # no cookie configured
])
def test_no_bearer_token_is_none(environ: dict[str, Any]) -> None:
    assert hs_provider().authenticate(environ) is None


def test_empty_bearer_token_is_invalid() -> None:
    with pytest.raises(InvalidCredentials) as info:
        hs_provider().authenticate({"HTTP_AUTHORIZATION": "Bearer   "})
    assert info.value.category == "invalid_token"


# --- reject ---------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    "garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "é.é.é",
    "eyJhbGciOiJIUzI1NiJ9.!!!!.abc", "x" * 20000,
])
def test_garbage_is_malformed(token: str) -> None:
    assert rejected(hs_provider(), token) in ("malformed", "invalid_signature")


def test_random_bytes_only_ever_raise_invalid_credentials() -> None:
    provider = hs_provider()
    rng = random.Random(7)
    alphabet = "ABCxyz019-_.=+/ \"{}:é"
    good = mint_token(SECRET, claims())
    for _ in range(500):
        token = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        if rng.random() < 0.5:  # mutate a real token instead
            cut = rng.randrange(len(good))
            token = good[:cut] + rng.choice(alphabet) + good[cut + 1:]
        with contextlib.suppress(InvalidCredentials):
            provider.authenticate(environ_for(token))


def test_wrong_signature_is_rejected() -> None:
    assert rejected(hs_provider(), mint_token(OTHER_SECRET, claims())) == "invalid_signature"


def test_expired_token_is_rejected() -> None:
    token = mint_token(SECRET, claims(exp=int(time.time()) - 60))
    assert rejected(hs_provider(leeway_s=30), token) == "expired"


def test_not_yet_valid_token_is_rejected() -> None:
    token = mint_token(SECRET, claims(nbf=int(time.time()) + 120))
    assert rejected(hs_provider(leeway_s=30), token) == "not_yet_valid"


def test_token_issued_in_the_future_is_rejected() -> None:
    token = mint_token(SECRET, claims(iat=int(time.time()) + 120))
    assert rejected(hs_provider(leeway_s=30), token) == "not_yet_valid"


def test_token_without_exp_is_rejected() -> None:
    token = mint_token(SECRET, {"sub": "alice"})
    assert rejected(hs_provider(), token) == "invalid_claims"


def test_wrong_issuer_is_rejected() -> None:
    provider = hs_provider(issuer="https://issuer.test")
    assert rejected(provider, mint_token(SECRET, claims(iss="https://evil.test"))) == \
        "invalid_claims"
    assert rejected(provider, mint_token(SECRET, claims())) == "invalid_claims"


def test_wrong_audience_is_rejected() -> None:
    provider = hs_provider(audience="shop")
    assert rejected(provider, mint_token(SECRET, claims(aud="other"))) == "invalid_claims"
    assert rejected(provider, mint_token(SECRET, claims())) == "invalid_claims"


def test_audience_in_token_without_configured_audience_is_rejected() -> None:
    assert rejected(hs_provider(), mint_token(SECRET, claims(aud="shop"))) == "invalid_claims"


def test_alg_none_is_rejected() -> None:
    token = _segments({"alg": "none", "typ": "JWT"}, claims()) + "."
    assert rejected(hs_provider(), token) == "invalid_algorithm"


def test_unlisted_algorithm_is_rejected() -> None:
    token = mint_token(SECRET, claims(), "HS512")
    assert rejected(hs_provider(algorithms=("HS256",)), token) == "invalid_algorithm"


def test_hs256_signed_with_the_public_key_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = _pem(rsa_key)
    provider = JWTBearerProvider("Rsa", JWTSettings(algorithms=("RS256",), public_key=pem))
    signing_input = _segments({"alg": "HS256", "typ": "JWT"}, claims())
    signature = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + _b64(signature)
    assert rejected(provider, token) == "invalid_algorithm"


def test_tampered_payload_is_rejected() -> None:
    header, _, signature = mint_token(SECRET, claims(scope="read")).split(".")
    forged = _b64(json.dumps(claims(scope="read write admin")).encode())
    assert rejected(hs_provider(), f"{header}.{forged}.{signature}") == "invalid_signature"


# --- scopes, subject, cookie ----------------------------------------------------------------

@pytest.mark.parametrize(("extra", "scopes"), [
    ({"scope": "read write"}, {"read", "write"}),
    ({"scp": ["read", "write", 3]}, {"read", "write"}),
    ({"scp": "read"}, {"read"}),
    ({"scope": "a", "scp": ["b"]}, {"a", "b"}),
    ({"scope": 42}, set()),
    ({}, set()),
])
def test_scopes_come_from_scope_or_scp(extra: dict[str, Any], scopes: set[str]) -> None:
    principal = hs_provider().authenticate(environ_for(mint_token(SECRET, claims(**extra))))
    assert principal is not None and principal.scopes == frozenset(scopes)


def test_subject_must_be_a_string() -> None:
    assert rejected(hs_provider(), mint_token(SECRET, claims(sub=42))) == "invalid_claims"


def test_token_from_a_cookie() -> None:
    provider = hs_provider(cookie_name="access_token")
    token = mint_token(SECRET, claims())
    principal = provider.authenticate({"HTTP_COOKIE": f"theme=dark; access_token={token}"})
    assert principal is not None and principal.subject == "alice"
    assert provider.authenticate({"HTTP_COOKIE": "theme=dark"}) is None
    with pytest.raises(InvalidCredentials):
        provider.authenticate({"HTTP_COOKIE": "access_token=nope"})


def test_authorization_header_wins_over_the_cookie() -> None:
    provider = hs_provider(cookie_name="access_token")
    token = mint_token(SECRET, claims(sub="header"))
    principal = provider.authenticate({"HTTP_AUTHORIZATION": f"Bearer {token}",
                                       "HTTP_COOKIE": "access_token=garbage"})
    assert principal is not None and principal.subject == "header"


# --- the verified-token cache ---------------------------------------------------------------

def test_a_repeated_token_is_a_cache_hit() -> None:
    provider = hs_provider()
    token = mint_token(SECRET, claims(scope="read"))
    first = provider.authenticate(environ_for(token))
    second = provider.authenticate(environ_for(token))
    assert first is second
    assert (provider.verifications, provider.cache_hits) == (1, 1)


def test_a_cached_token_is_rejected_once_expired() -> None:
    provider = hs_provider(leeway_s=0)
    exp = int(time.time()) + 1
    token = mint_token(SECRET, claims(exp=exp))
    assert provider.authenticate(environ_for(token)) is not None
    assert provider.authenticate(environ_for(token)) is not None
    assert provider.cache_hits == 1
    time.sleep(max(0.0, exp - time.time()) + 0.01)
    assert rejected(provider, token) == "expired"
    assert rejected(provider, token) == "expired"
    assert provider.cache_hits == 1


def test_cache_entries_expire_after_the_maximum_age() -> None:
    provider = hs_provider(verified_cache_ttl_s=0.05)
    token = mint_token(SECRET, claims())
    provider.authenticate(environ_for(token))
    time.sleep(0.06)
    assert provider.authenticate(environ_for(token)) is not None
    assert (provider.verifications, provider.cache_hits) == (2, 0)


def test_failed_tokens_are_not_cached() -> None:
    provider = hs_provider()
    token = mint_token(OTHER_SECRET, claims())
    rejected(provider, token)
    rejected(provider, token)
    assert (provider.verifications, provider.cache_hits) == (2, 0)


def test_not_yet_valid_token_is_accepted_once_valid() -> None:
    provider = hs_provider(leeway_s=0)
    nbf = int(time.time()) + 1
    token = mint_token(SECRET, claims(nbf=nbf))
    assert rejected(provider, token) == "not_yet_valid"
    time.sleep(max(0.0, nbf - time.time()) + 0.01)
    assert provider.authenticate(environ_for(token)) is not None


def test_cache_is_bounded_lru() -> None:
    provider = hs_provider(verified_cache_size=2)
    tokens = [mint_token(SECRET, claims(n=i)) for i in range(3)]
    for token in tokens:
        provider.authenticate(environ_for(token))
    provider.authenticate(environ_for(tokens[2]))  # hit
    provider.authenticate(environ_for(tokens[0]))  # evicted: verified again
    assert (provider.verifications, provider.cache_hits) == (4, 1)


def test_cache_can_be_disabled() -> None:
    provider = hs_provider(verified_cache_size=0)
    token = mint_token(SECRET, claims())
    provider.authenticate(environ_for(token))
    provider.authenticate(environ_for(token))
    assert (provider.verifications, provider.cache_hits) == (2, 0)


# --- settings refused at start --------------------------------------------------------------

@pytest.mark.parametrize(("settings", "message"), [
    ({"algorithms": ()}, "at least one"),
    ({"algorithms": ("none",), "secret": SECRET}, "'none' algorithm is never accepted"),
    ({"algorithms": ("NONE",), "secret": SECRET}, "'none' algorithm is never accepted"),
    ({"algorithms": ("HS256", "RS256"), "secret": SECRET}, "mix HMAC"),
    ({"algorithms": ("XS999",)}, "unknown algorithm"),
    ({"algorithms": ("HS256",), "secret": "short"}, "at least 32"),
    ({"algorithms": ("HS256", "HS512"), "secret": "s" * 40}, "at least 64"),
    ({"algorithms": ("RS256",), "secret": SECRET}, "not `secret`"),
    ({"algorithms": ("HS256",), "jwks_url": "https://x.test/jwks"}, "not `public_key`"),
    ({"algorithms": ("RS256",), "public_key": "x", "jwks_url": "https://x.test/jwks"},
     "not both"),
    ({"algorithms": ("RS256",), "jwks_url": "http://keys.example.com/jwks"}, "plain http"),
    ({"algorithms": ("RS256",), "jwks_url": "ftp://keys.example.com/jwks"}, "https://"),
    ({"algorithms": ("HS256",), "secret": SECRET, "leeway_s": -1}, "leeway_s"),
    ({"algorithms": ("HS256",), "secret": SECRET, "jwks_timeout_s": 0}, "jwks_timeout_s"),
    ({"algorithms": (3,), "secret": SECRET}, "algorithms must be"),
])
def test_bad_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JWTSettings(**settings)


def test_lists_from_a_config_file_become_tuples() -> None:
    settings = JWTSettings(algorithms=["HS256"], secret=SECRET,  # type: ignore[arg-type]
                           audience=["a", "b"], required_claims=["exp", "sub"])  # type: ignore[arg-type]
    assert settings.algorithms == ("HS256",)
    assert settings.audience == ("a", "b")
    assert settings.required_claims == ("exp", "sub")
    assert hash(settings)


def test_provider_refuses_missing_or_unfit_keys(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="'BearerAuth': HS\\* algorithms need a `secret`"):
        JWTBearerProvider("BearerAuth", JWTSettings(algorithms=("HS256",)))
    with pytest.raises(ValueError, match="need a `public_key`"):
        JWTBearerProvider("Rsa", JWTSettings(algorithms=("RS256",)))
    with pytest.raises(ValueError, match="not a PEM public key"):
        JWTBearerProvider("Rsa", JWTSettings(algorithms=("RS256",), public_key="nope"))
    with pytest.raises(ValueError, match="cannot verify ES256"):
        JWTBearerProvider("Rsa", JWTSettings(algorithms=("RS256", "ES256"),
                                             public_key=_pem(rsa_key)))


def test_key_sources_need_public_key_algorithms() -> None:
    class NoKeys:
        def key_for(self, kid: str | None, alg: str) -> Any:
            raise AssertionError("not called")

    with pytest.raises(ValueError, match="'BearerAuth': keys from a key source"):
        JWTBearerProvider("BearerAuth", JWTSettings(algorithms=("HS256",)), key_source=NoKeys())


def test_invalid_credentials_render_category_and_detail() -> None:
    assert str(InvalidCredentials("expired")) == "expired"
    assert str(InvalidCredentials("expired", "exp was 3")) == "expired: exp was 3"


def test_secrets_stay_out_of_reprs() -> None:
    provider = hs_provider()
    provider.authenticate(environ_for(mint_token(SECRET, claims())))
    assert SECRET not in repr(provider)
    assert SECRET not in repr(provider.settings)


def test_challenges() -> None:
    provider = hs_provider()
    assert provider.challenge(None) == 'Bearer realm="BearerAuth"'
    assert provider.challenge("invalid_token") == \
        'Bearer realm="BearerAuth", error="invalid_token"'
    assert provider.challenge("insufficient_scope") == \
        'Bearer realm="BearerAuth", error="insufficient_scope"'
    assert bearer_challenge('we"ird') == 'Bearer realm="we\\"ird"'


def test_mint_token_refuses_none() -> None:
    with pytest.raises(ValueError, match="none"):
        mint_token(SECRET, claims(), "none")


def test_mint_token_puts_the_kid_in_the_header() -> None:
    token = mint_token(SECRET, claims(), kid="k1")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] == "k1"


def test_the_algorithms_written_out_are_pyjwt_s() -> None:
    # NOTE: settings list them so that reading settings does not import pyjwt.
    from jwt.algorithms import get_default_algorithms

    assert set(get_default_algorithms()) - {"none"} == HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS
    assert not HMAC_ALGORITHMS & PUBLIC_KEY_ALGORITHMS


def test_the_decoder_is_built_on_the_first_token() -> None:
    provider = JWTBearerProvider("BearerAuth", JWTSettings(algorithms=("HS256",), secret=SECRET))
    assert provider._decoder is None
    claims = {"sub": "alice", "exp": int(time.time()) + 60}
    environ = {"HTTP_AUTHORIZATION": f"Bearer {mint_token(SECRET, claims)}"}
    assert provider.authenticate(environ) is not None
    decoder = provider._decoder
    assert decoder is not None
    provider.authenticate({"HTTP_AUTHORIZATION": f"Bearer {mint_token(SECRET, claims, kid='x')}"})
    assert provider._decoder is decoder
