"""HTTP basic authentication: password hashes, the provider, its cache, and the app."""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from brrt_actors import Request, create_app
from brrt_actors.security import BasicProvider
from brrt_actors.security.basic import PasswordHash, hash_password, parse_password_hash
from brrt_actors.security.credentials import InvalidCredentials
from brrt_actors.testing import Client

TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"


def cheap_hash(password: str, salt: str = "salt") -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000)
    return f"pbkdf2_sha256$1000${salt}${base64.b64encode(digest).decode()}"


def header(user: str, password: str) -> dict[str, Any]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


class Counting(PasswordHash):
    """A password hash that counts how often the slow derivation runs."""

    def __init__(self, hashed: str) -> None:
        parsed = parse_password_hash(hashed)
        self.calls = 0

        def derive(password: bytes) -> bytes:
            self.calls += 1
            return parsed.derive(password)

        super().__init__(derive, parsed._expected)


@pytest.fixture()
def provider() -> BasicProvider:
    return BasicProvider("Basic", {"alice": cheap_hash("wonderland"),
                                   "bob": cheap_hash("builder", "pepper")})


# -- hashes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["scrypt", "pbkdf2_sha256"])
def test_hash_round_trip(algorithm: str) -> None:
    hashed = hash_password("s3cret pässword", algorithm)
    assert hashed.startswith(f"{algorithm}$") and "s3cret" not in hashed
    parsed = parse_password_hash(hashed)
    assert parsed.matches(parsed.derive("s3cret pässword".encode()))
    assert not parsed.matches(parsed.derive(b"s3cret password"))
    assert hash_password("x", algorithm) != hash_password("x", algorithm)  # salted
    assert repr(parsed) == "PasswordHash(<redacted>)"


def test_django_formats_are_read() -> None:
    # Django's PBKDF2PasswordHasher and ScryptPasswordHasher output, computed the same way.
    pbkdf2 = base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"pw", b"abc", 1000)).decode()
    assert parse_password_hash(f"pbkdf2_sha256$1000$abc${pbkdf2}").matches(
        parse_password_hash(f"pbkdf2_sha256$1000$abc${pbkdf2}").derive(b"pw"))
    scrypt = base64.b64encode(hashlib.scrypt(b"pw", salt=b"abc", n=1024, r=8, p=1,
                                             dklen=64)).decode()
    parsed = parse_password_hash(f"scrypt$1024$abc$8$1${scrypt}")
    assert parsed.matches(parsed.derive(b"pw"))


@pytest.mark.parametrize("text", ["plain", "md5$abc$def", "scrypt$3$s$8$1$AAAA",
                                  "scrypt$1024$s$8$1$not base64!", "pbkdf2_sha256$10$s$AAAA",
                                  "pbkdf2_sha256$x$s$AAAA", "scrypt$1024$s$8"])
def test_bad_hashes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="brrt hash-password") as info:
        parse_password_hash(text)
    assert text not in str(info.value)


def test_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'md5'"):
        hash_password("x", "md5")


# -- the provider ----------------------------------------------------------------------------

def test_accepts_right_password(provider: BasicProvider) -> None:
    principal = provider.authenticate(header("alice", "wonderland"))
    assert principal is not None
    assert (principal.scheme, principal.subject, principal.scopes) == ("Basic", "alice",
                                                                       frozenset())
    other = provider.authenticate(header("bob", "builder"))
    assert other is not None and other.subject == "bob"


def test_password_may_hold_colons() -> None:
    provider = BasicProvider("Basic", {"carol": cheap_hash("a:b:c")})
    assert provider.authenticate(header("carol", "a:b:c")) is not None


@pytest.mark.parametrize("environ", [
    {}, {"HTTP_AUTHORIZATION": ""}, {"HTTP_AUTHORIZATION": "Bearer abc"},
    {"HTTP_AUTHORIZATION": "Digest realm=x"},
])
def test_no_basic_credentials_is_none(provider: BasicProvider,
                                      environ: dict[str, Any]) -> None:
    assert provider.authenticate(environ) is None


@pytest.mark.parametrize("environ", [
    header("alice", "looking-glass"),
    header("alice", ""),
    header("mallory", "wonderland"),
    header("", "wonderland"),
    {"HTTP_AUTHORIZATION": "Basic %%%"},
    {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"no-colon").decode()},
    {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},
    {"HTTP_AUTHORIZATION": "basic " + base64.b64encode(b"alice:nope").decode()},
])
def test_wrong_credentials_raise(provider: BasicProvider, environ: dict[str, Any]) -> None:
    with pytest.raises(InvalidCredentials) as info:
        provider.authenticate(environ)
    assert info.value.category == "invalid_credentials"
    assert "wonderland" not in str(info.value) and "looking-glass" not in str(info.value)


def test_scheme_word_is_case_insensitive(provider: BasicProvider) -> None:
    token = base64.b64encode(b"alice:wonderland").decode()
    assert provider.authenticate({"HTTP_AUTHORIZATION": f"BASIC {token}"}) is not None


def test_success_is_cached_failures_are_not() -> None:
    counting = Counting(cheap_hash("wonderland"))
    provider = BasicProvider("Basic", {"alice": counting}, cache_size=2)
    for _ in range(5):
        assert provider.authenticate(header("alice", "wonderland")) is not None
    assert counting.calls == 1
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            provider.authenticate(header("alice", "wrong"))
    assert counting.calls == 4
    # Unknown users pay for a hash too (no timing oracle on user names).
    with pytest.raises(InvalidCredentials):
        provider.authenticate(header("mallory", "x"))
    assert counting.calls == 5


def test_cache_is_bounded_and_expires() -> None:
    counting = Counting(cheap_hash("pw"))
    provider = BasicProvider("Basic", {"alice": counting}, cache_size=2, cache_ttl_s=0.0)
    provider.authenticate(header("alice", "pw"))
    provider.authenticate(header("alice", "pw"))
    assert counting.calls == 2  # a TTL of 0 caches nothing for long
    bounded = BasicProvider("Basic", {"alice": counting}, cache_size=2)
    # Distinct headers for the same credentials (whitespace): more than the cache holds.
    token = base64.b64encode(b"alice:pw").decode()
    for spaces in range(1, 5):
        bounded.authenticate({"HTTP_AUTHORIZATION": "Basic" + " " * spaces + token})
    assert len(bounded._cache) == 2


def test_challenge_and_repr(provider: BasicProvider) -> None:
    assert provider.challenge(None) == 'Basic realm="Basic", charset="UTF-8"'
    assert provider.challenge("invalid_token") == 'Basic realm="Basic", charset="UTF-8"'
    assert repr(provider) == "BasicProvider('Basic', users=<2>)"


def test_needs_a_user() -> None:
    with pytest.raises(ValueError, match="at least one user"):
        BasicProvider("Basic", {})


# -- through the app -------------------------------------------------------------------------

def _who(request: Request) -> dict[str, Any]:
    principal = request.principal
    return {"user": principal.subject if principal else None}


@pytest.fixture()
def client(apps: list[object], tmp_path: Path) -> Callable[..., Client]:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
security:
  basic:
    BasicAuth:
      users:
        alice: "{cheap_hash('wonderland')}"
""")
    app = create_app(TEST_SPECS / "security_custom.yaml", {"scoped_op": _who, "basic_op": _who},
                     mock=True, environ={}, config_file=path)
    apps.append(app)
    return Client(app)


def test_app_accepts_and_rejects(client: Client) -> None:
    def auth(user: str, password: str) -> dict[str, str]:
        return {"Authorization": header(user, password)["HTTP_AUTHORIZATION"]}

    assert client.get("/basic", headers=auth("alice", "wonderland")).json() == {"user": "alice"}
    for response in (client.get("/basic"), client.get("/basic", headers=auth("alice", "x")),
                     client.get("/basic", headers={"Authorization": "Basic !!"})):
        assert response.status == 401, response
        assert response.headers["www-authenticate"] == (
            'Basic realm="BasicAuth", charset="UTF-8"')
        assert response.json()["detail"] == "missing or invalid credentials"
