"""JSON Web Key Sets fetched from a URL: cached, refreshed aside, kept when a refresh fails.

`JWKSKeySource` hands `JWTBearerProvider` the public key for a token's `kid`. Its rules:

- one fetch at a time per URL (single flight): greenlets that need keys while a fetch runs
  wait for that fetch instead of starting their own;
- the key set is cached; a background greenlet refreshes it shortly before its TTL ends, so
  requests do not wait for the network once a first set was fetched;
- an unknown `kid` triggers a refresh (key rotation), at most once per cooldown, and is then
  remembered as unknown for a while (negative cache): tokens with random kids cannot make
  the server fetch once per request;
- a failed refresh keeps the last good key set, even past its TTL (pyjwt's `PyJWKClient`
  drops it, which turns a JWKS outage into an outage of every API behind it).

The download helper (`RemoteDocument`) also serves the OpenID Connect discovery document.
"""
from __future__ import annotations

import http.client
import json
import logging
import math
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import IO, Any, Generic, TypeVar
from urllib.error import HTTPError
from urllib.parse import urlsplit

import gevent
import gevent.event
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from brrt_actors.security._redact import safe_url
from brrt_actors.security.credentials import InvalidCredentials
from brrt_actors.security.scheme_settings import LOCAL_HOSTS, check_key_url

__all__ = ["JWKSKeySource", "RemoteDocument", "check_key_algorithms", "check_key_url"]

logger = logging.getLogger("brrt_actors.security.jwks")

T = TypeVar("T")

# SECURITY: a key document is small; a bigger answer is refused, not buffered.
_MAX_DOCUMENT_BYTES = 1 << 20
# SECURITY: real kids are short; longer ones are refused before they reach any cache.
_MAX_KID_LENGTH = 256
_MAX_UNKNOWN_KIDS = 4096
_FETCH_ERRORS = (OSError, http.client.HTTPException, ValueError)

# Which JWK a token algorithm can be verified with: key type and, for ECDSA, the curve.
_KEY_TYPE = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES256K": "EC", "ES384": "EC", "ES512": "EC", "ES521": "EC",
    "EdDSA": "OKP",
}
_CURVE = {"ES256": "P-256", "ES256K": "secp256k1", "ES384": "P-384", "ES512": "P-521",
          "ES521": "P-521"}
_DEFAULT_ALG = {"P-256": "ES256", "secp256k1": "ES256K", "P-384": "ES384", "P-521": "ES512"}


def check_key_algorithms(algorithms: Iterable[str]) -> tuple[str, ...]:
    """Return `algorithms` as a tuple if all of them verify with published (public) keys.

    Raises:
        ValueError: for an empty list, HMAC, ``none`` or an unknown algorithm.
    """
    found = tuple(algorithms)
    wrong = [alg for alg in found if alg not in _KEY_TYPE]
    if wrong or not found:
        raise ValueError(f"keys from a URL verify public-key algorithms only "
                         f"({', '.join(sorted(_KEY_TYPE))}), not {wrong or 'none'}")
    return found


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    # SECURITY: a redirect must obey the same URL rules, or https could lead to plain http.
    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int,
                         msg: str, headers: http.client.HTTPMessage,
                         newurl: str) -> urllib.request.Request | None:
        try:
            check_key_url(newurl, "redirect target")
        except ValueError as ex:
            raise HTTPError(req.full_url, code, str(ex), headers, fp) from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class RemoteDocument(Generic[T]):
    """A JSON document fetched from a URL, parsed, cached, refreshed aside, never lost.

    Args:
        url: where the document lives (checked with `check_key_url`).
        parse: turns the decoded JSON into the cached value; raises ValueError to refuse
            it (a refused document counts as a failed fetch: the last good value stays).
        what: names the document in log lines.
        ttl_s: the value is refreshed in the background shortly before this age.
        cooldown_s: minimum time between two fetches that are not background refreshes.
        timeout_s: bound on one whole fetch (connect, send, read).
        on_change: called after a fetch brought a value different from the previous one.
    """

    def __init__(self, url: str, parse: Callable[[Any], T], *, what: str, ttl_s: float,
                 cooldown_s: float, timeout_s: float,
                 on_change: Callable[[], None] | None = None) -> None:
        check_key_url(url, what)
        self.url = url
        self.what = what
        self.value: T | None = None
        self.fetches = 0
        self.failures = 0
        self._parse = parse
        self._ttl_s = ttl_s
        self._cooldown_s = cooldown_s
        self._timeout_s = timeout_s
        self._on_change = on_change
        self._fetched_at = -math.inf
        self._last_attempt = -math.inf
        self._inflight: gevent.event.Event | None = None
        self._timer: gevent.Greenlet[[], None] | None = None
        self._closed = False
        handlers: list[urllib.request.BaseHandler] = [_CheckedRedirects()]
        if urlsplit(url).hostname in LOCAL_HOSTS:
            # NOTE: a proxy from the environment must not see requests to this machine.
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"RemoteDocument({self.what}, {safe_url(self.url)}, fetches={self.fetches})"

    def get(self) -> T | None:
        """Return the cached value; when there is none yet, wait (bounded) for a fetch."""
        value = self.value
        if value is None:
            self.refresh(wait=True)
            return self.value
        if time.monotonic() - self._fetched_at >= self._ttl_s:
            # The background refresh failed or could not run: serve the last good value
            # and try again aside (the cooldown spaces the attempts).
            self.refresh(wait=False)
        return value

    def refresh(self, *, wait: bool, force: bool = False) -> bool:
        """Fetch again unless a fetch is running (then join it) or the cooldown forbids.

        Args:
            wait: wait for the fetch to end (at most the timeout) before returning.
            force: ignore the cooldown (background refreshes).

        Returns:
            Whether a fetch was started or joined.
        """
        done = self._inflight
        if done is None:
            now = time.monotonic()
            if self._closed or (not force and now - self._last_attempt < self._cooldown_s):
                return False
            self._last_attempt = now
            done = self._inflight = gevent.event.Event()
            # NOTE: the fetch runs in its own greenlet, so a waiter that gives up (or is
            # killed) does not abort it for the others.
            gevent.spawn(self._fetch, done)
        if wait:
            done.wait(self._timeout_s + 0.5)
        return True

    def prefetch(self) -> None:
        """Start the first fetch now, in the background (e.g. when the server starts)."""
        if self.value is None:
            self.refresh(wait=False, force=True)

    def close(self) -> None:
        """Stop background refreshes (hot reload, shutdown, tests)."""
        self._closed = True
        if self._timer is not None:
            self._timer.kill(block=False)
            self._timer = None

    def _fetch(self, done: gevent.event.Event) -> None:
        self.fetches += 1
        try:
            value = self._parse(self._download())
        except _FETCH_ERRORS as ex:
            self.failures += 1
            kept = "keeping the last good copy" if self.value is not None else "no copy yet"
            logger.warning("%s fetch from %s failed (%s: %s); %s", self.what,
                           safe_url(self.url), type(ex).__name__, ex, kept)
            self._schedule(max(self._cooldown_s, 1.0))
        else:
            changed = value != self.value
            self.value = value
            self._fetched_at = time.monotonic()
            self._schedule(self._ttl_s - min(30.0, self._ttl_s * 0.1))
            # NOTE: a fetch that ends after `close` must not start more work (OpenID
            # Connect would build and prefetch a new key set).
            if changed and self._on_change is not None and not self._closed:
                self._on_change()
        finally:
            self._inflight = None
            done.set()

    def _download(self) -> Any:
        request = urllib.request.Request(
            self.url, headers={"Accept": "application/json", "User-Agent": "brrt_actors"})
        with gevent.Timeout(self._timeout_s,
                            TimeoutError(f"no complete answer within {self._timeout_s} s")):
            try:
                response = self._opener.open(request, timeout=self._timeout_s)
            except HTTPError as ex:
                ex.close()
                raise
            with response:
                body = response.read(_MAX_DOCUMENT_BYTES + 1)
        if len(body) > _MAX_DOCUMENT_BYTES:
            raise ValueError(f"the document is larger than {_MAX_DOCUMENT_BYTES} bytes")
        return json.loads(body)

    def _schedule(self, delay: float) -> None:
        if self._closed:
            return
        if self._timer is not None:
            self._timer.kill(block=False)
        self._timer = gevent.spawn_later(max(delay, 0.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.refresh(wait=False, force=True)


class _Key:
    __slots__ = ("alg", "crv", "key", "kid", "kty")

    def __init__(self, jwk: dict[str, Any]) -> None:
        self.kid: str | None = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
        self.kty: str = jwk["kty"]
        self.crv: str | None = jwk.get("crv")
        self.alg: str | None = jwk.get("alg")
        default = {"RSA": "RS256", "OKP": "EdDSA"}.get(self.kty) or _DEFAULT_ALG.get(
            self.crv or "", "ES256")
        # Parses and checks the key material once, at fetch time.
        self.key: Any = PyJWK(jwk, self.alg or default).key

    def fits(self, alg: str) -> bool:
        # SECURITY: a key verifies only the algorithm it was published for (its `alg`, or
        # its type and curve); a token cannot pick another use for it.
        return ((self.alg is None or self.alg == alg) and self.kty == _KEY_TYPE.get(alg)
                and (alg not in _CURVE or self.crv == _CURVE[alg]))


class _KeySet:
    __slots__ = ("by_kid", "keys", "raw")

    def __init__(self, raw: list[dict[str, Any]], keys: Iterable[_Key]) -> None:
        self.raw = raw
        self.keys = list(keys)
        self.by_kid: dict[str, list[_Key]] = {}
        for key in self.keys:
            if key.kid is not None:
                self.by_kid.setdefault(key.kid, []).append(key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _KeySet) and self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]

    def find(self, kid: str | None, alg: str) -> Any:
        if kid is None:
            candidates = [key for key in self.keys if key.fits(alg)]
            return candidates[0].key if len(candidates) == 1 else None
        for key in self.by_kid.get(kid, ()):
            if key.fits(alg):
                return key.key
        return None


class JWKSKeySource:
    """Public keys for JWT verification, from a JWK Set URL.

    Args:
        url: the JWK Set (https, or http to localhost only).
        ttl_s: age after which the set is refreshed (in the background, a little before).
        refresh_cooldown_s: at most one refresh per this period for unknown kids.
        timeout_s: bound on one fetch; also bounds how long a request waits for keys.
        negative_ttl_s: how long a kid that was not found stays "unknown" without a fetch.
        algorithms: the scheme's algorithms (public-key ones only); keys published for
            other algorithms are ignored.

    Attributes:
        fetches: fetches started so far (for tests and metrics).
        failures: fetches that failed.

    Raises:
        ValueError: for a URL that breaks the rules or a symmetric algorithm.
    """

    def __init__(self, url: str, *, ttl_s: float = 300.0, refresh_cooldown_s: float = 30.0,
                 timeout_s: float = 3.0, negative_ttl_s: float = 60.0,
                 algorithms: Iterable[str] = ("RS256",)) -> None:
        self.algorithms = check_key_algorithms(algorithms)
        self._negative_ttl_s = negative_ttl_s
        self._unknown: dict[str, float] = {}
        self._listeners: list[Callable[[], None]] = []
        self._document: RemoteDocument[_KeySet] = RemoteDocument(
            url, self._parse, what="JWKS", ttl_s=ttl_s, cooldown_s=refresh_cooldown_s,
            timeout_s=timeout_s, on_change=self._changed)

    def __repr__(self) -> str:
        return f"JWKSKeySource({safe_url(self.url)}, fetches={self.fetches})"

    @property
    def url(self) -> str:
        return self._document.url

    @property
    def fetches(self) -> int:
        return self._document.fetches

    @property
    def failures(self) -> int:
        return self._document.failures

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a fetch brings a different key set."""
        self._listeners.append(callback)

    def prefetch(self) -> None:
        """Fetch the key set now, in the background."""
        self._document.prefetch()

    def close(self) -> None:
        """Stop background refreshes."""
        self._document.close()

    def key_for(self, kid: str | None, alg: str) -> Any:
        """Return the key that verifies a token with this `kid` and `alg`.

        Waits (bounded by the timeout) only when no key set was fetched yet, or for the
        refresh an unknown kid triggers (at most one per cooldown).

        Raises:
            InvalidCredentials: "unknown_key" when no published key fits, or
                "keys_unavailable" when no key set could be fetched yet.
        """
        if kid is not None and len(kid) > _MAX_KID_LENGTH:
            raise InvalidCredentials("unknown_key", f"kid of {len(kid)} characters refused")
        keys = self._document.get()
        if keys is None:
            raise InvalidCredentials(
                "keys_unavailable", f"no key set from {safe_url(self.url)} yet (fetch failed, "
                                    f"timed out, or waits for its cooldown)")
        key = keys.find(kid, alg)
        if key is not None:
            return key
        if kid is not None and kid not in keys.by_kid:
            # Perhaps a rotation this server has not seen yet: refresh, unless a fresh key
            # set lacked this kid a moment ago or the cooldown forbids a fetch now.
            if self._unknown.get(kid, -math.inf) <= time.monotonic() and \
                    self._document.refresh(wait=True):
                keys = self._document.value or keys
                key = keys.find(kid, alg)
                if key is not None:
                    return key
                if kid not in keys.by_kid:
                    self._remember_unknown(kid)
            raise InvalidCredentials(
                "unknown_key", f"kid {kid!r} is not in the key set of {safe_url(self.url)}")
        raise InvalidCredentials(
            "unknown_key", f"no key in {safe_url(self.url)} fits kid {kid!r} with alg {alg!r}")

    def _remember_unknown(self, kid: str) -> None:
        unknown = self._unknown
        if len(unknown) >= _MAX_UNKNOWN_KIDS:
            now = time.monotonic()
            for old in [old for old, until in unknown.items() if until <= now]:
                del unknown[old]
            while len(unknown) >= _MAX_UNKNOWN_KIDS:
                del unknown[next(iter(unknown))]
        unknown[kid] = time.monotonic() + self._negative_ttl_s

    def _changed(self) -> None:
        keys = self._document.value
        if keys is not None:
            logger.info("JWKS %s: %d usable keys (kids %s)", safe_url(self.url), len(keys.keys),
                        sorted(keys.by_kid))
        self._unknown.clear()
        for callback in self._listeners:
            callback()

    def _parse(self, document: Any) -> _KeySet:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWK Set (no `keys` list)")
        usable: list[_Key] = []
        for jwk in document["keys"]:
            # SECURITY: symmetric ("oct") keys never come from a key URL, and keys meant
            # for encryption or for another algorithm than the scheme's are not used.
            if (not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC", "OKP")
                    or jwk.get("use", "sig") != "sig"
                    or jwk.get("alg", self.algorithms[0]) not in self.algorithms):
                continue
            try:
                usable.append(_Key(jwk))
            except (PyJWTError, ValueError, TypeError, KeyError) as ex:
                logger.warning("JWKS %s: skipping key %r (%s)", safe_url(self.url),
                               jwk.get("kid"), ex)
        if not usable:
            raise ValueError(f"no usable signing key among {len(document['keys'])} keys")
        return _KeySet(document["keys"], usable)
