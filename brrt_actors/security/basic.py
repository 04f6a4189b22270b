"""HTTP basic authentication against password hashes (scrypt or PBKDF2, never plain text).

Hashes use Django's formats, so existing ones can be brought along::

    scrypt$<n>$<salt>$<r>$<p>$<base64 of 64 bytes>
    pbkdf2_sha256$<iterations>$<salt>$<base64 of 32 bytes>

`hash_password` (and ``brrt hash-password``) makes them.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import gevent

from brrt_actors.handler import Principal
from brrt_actors.security.credentials import InvalidCredentials, redact

__all__ = ["ALGORITHMS", "BasicProvider", "PasswordHash", "basic_challenge", "hash_password",
           "parse_password_hash"]

ALGORITHMS = ("scrypt", "pbkdf2_sha256")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
PBKDF2_ITERATIONS = 600_000


def basic_challenge(scheme_name: str, error: str | None = None) -> str:
    """Return the WWW-Authenticate value of a basic scheme (RFC 7617 has no error code)."""
    return f'Basic realm="{scheme_name}", charset="UTF-8"'


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # NOTE: OpenSSL needs a little more than 128*r*n bytes; give it room for big n.
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=64,
                          maxmem=128 * r * (n + p + 2) + 2**20)


class PasswordHash:
    """One parsed password hash: verifies a password in constant time."""

    __slots__ = ("_derive", "_expected")

    def __init__(self, derive: Callable[[bytes], bytes], expected: bytes) -> None:
        self._derive = derive
        self._expected = expected

    def __repr__(self) -> str:
        return "PasswordHash(<redacted>)"

    def derive(self, password: bytes) -> bytes:
        """Return the hash of `password` with this hash's algorithm, salt and cost."""
        return self._derive(password)

    def matches(self, derived: bytes) -> bool:
        """Return whether `derived` (from `derive`) is this hash."""
        return hmac.compare_digest(derived, self._expected)


def _b64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def parse_password_hash(text: str) -> PasswordHash:
    """Parse a ``scrypt$...`` or ``pbkdf2_sha256$...`` hash.

    Raises:
        ValueError: the text is not such a hash (the message never repeats it).
    """
    if not isinstance(text, str):
        raise ValueError("must be a string (a password hash from `brrt hash-password`)")
    parts = text.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, salt, r, p = int(parts[1]), parts[2].encode(), int(parts[3]), int(parts[4])
            expected = _b64(parts[5])
            if n < 2 or n & (n - 1) or n > 2**20 or not 1 <= r <= 64 or not 1 <= p <= 16:
                raise ValueError("scrypt parameters out of range")

            def derive_scrypt(password: bytes) -> bytes:
                return _scrypt(password, salt, n, r, p)

            return PasswordHash(derive_scrypt, expected)
        if parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            iterations, salt = int(parts[1]), parts[2].encode()
            expected = _b64(parts[3])
            if not 1000 <= iterations <= 10**8:
                raise ValueError("pbkdf2 iterations out of range")

            def derive_pbkdf2(password: bytes) -> bytes:
                return hashlib.pbkdf2_hmac("sha256", password, salt, iterations,
                                           len(expected))

            return PasswordHash(derive_pbkdf2, expected)
    except (ValueError, binascii.Error) as ex:
        raise ValueError(f"not a valid password hash ({type(ex).__name__}); make one with "
                         "`brrt hash-password`") from None
    raise ValueError("not a password hash: expected `scrypt$...` or `pbkdf2_sha256$...` "
                     "(make one with `brrt hash-password`)")


def hash_password(password: str, algorithm: str = "scrypt") -> str:
    """Return a hash of `password` for ``security.basic.<Scheme>.users``."""
    salt = secrets.token_urlsafe(16)
    if algorithm == "scrypt":
        digest = _scrypt(password.encode(), salt.encode(), SCRYPT_N, SCRYPT_R, SCRYPT_P)
        encoded = base64.b64encode(digest).decode("ascii")
        return f"scrypt${SCRYPT_N}${salt}${SCRYPT_R}${SCRYPT_P}${encoded}"
    if algorithm == "pbkdf2_sha256":
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(),
                                     PBKDF2_ITERATIONS)
        return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt}${base64.b64encode(digest).decode()}"
    raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")


def _off_loop(function: Callable[[bytes], bytes], password: bytes) -> bytes:
    # PERF: scrypt/PBKDF2 take tens of ms and release the GIL; in a thread of gevent's
    # pool they do not stall every other greenlet of the process meanwhile.
    result: bytes = gevent.get_hub().threadpool.apply(function, (password,))
    return result


class BasicProvider:
    """Check ``Authorization: Basic ...`` against configured users' password hashes.

    Successful checks are cached for `cache_ttl_s` (keyed by a SHA-256 of the header,
    at most `cache_size` entries) so that the slow hash is not paid on every request.

    Args:
        scheme_name: the spec's scheme name (the realm).
        users: user name to password hash (parsed or as text).
        cache_ttl_s: how long a verified header stays verified.
        cache_size: the most cached headers.
    """

    __slots__ = ("_cache", "_cache_size", "_cache_ttl_s", "_challenge", "_decoy", "_users",
                 "scheme_name")

    def __init__(self, scheme_name: str, users: Mapping[str, PasswordHash | str], *,
                 cache_ttl_s: float = 60.0, cache_size: int = 1024) -> None:
        self.scheme_name = scheme_name
        self._users = {name: value if isinstance(value, PasswordHash)
                       else parse_password_hash(value) for name, value in users.items()}
        if not self._users:
            raise ValueError(f"{scheme_name}: at least one user is needed")
        self._decoy = next(iter(self._users.values()))
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._cache_ttl_s = cache_ttl_s
        self._cache_size = cache_size
        self._challenge = basic_challenge(scheme_name)

    def __repr__(self) -> str:
        return f"BasicProvider({self.scheme_name!r}, users=<{len(self._users)}>)"

    def challenge(self, error: str | None) -> str:
        """Return the WWW-Authenticate value for this scheme."""
        return self._challenge

    def close(self) -> None:
        """Nothing to release (the hashes run in gevent's shared thread pool)."""

    def authenticate(self, environ: dict[str, Any]) -> Principal | None:
        """Return the user's principal, None without basic credentials.

        Raises:
            InvalidCredentials: malformed credentials, unknown user or wrong password.
        """
        header = environ.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        kind, _, value = header.strip().partition(" ")
        if kind.lower() != "basic":
            return None
        key = hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None:
            if cached[0] > now:
                return cached[1]
            del self._cache[key]
        try:
            decoded = base64.b64decode(value.strip().encode("ascii"), validate=True)
            user, sep, password = decoded.decode("utf-8").partition(":")
        except (UnicodeError, binascii.Error) as ex:
            raise InvalidCredentials("invalid_credentials",
                                     f"malformed Basic credentials ({type(ex).__name__})"
                                     ) from None
        if not sep:
            raise InvalidCredentials("invalid_credentials", "Basic credentials without ':'")
        known = self._users.get(user)
        # SECURITY: an unknown user costs a hash too, so timing does not tell who exists.
        check = known or self._decoy
        derived = _off_loop(check.derive, password.encode())
        if known is None or not check.matches(derived):
            raise InvalidCredentials("invalid_credentials",
                                     f"wrong password or unknown user {redact(user)}")
        principal = Principal(self.scheme_name, subject=user)
        if len(self._cache) >= self._cache_size:
            self._evict(now)
        self._cache[key] = (now + self._cache_ttl_s, principal)
        return principal

    def _evict(self, now: float) -> None:
        for stale in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[stale]
        while len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]
