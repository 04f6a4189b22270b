"""API keys verified by a remote service (BRRTRouter's ``remote_api_keys``).

The key is sent to ``verify_url`` in a header (``X-API-Key`` by default) with a GET:

- 2xx: the key is valid; an optional JSON body ``{"sub": ..., "scopes": [...]}`` (or
  ``"scope": "a b"``) names the subject and the scopes;
- 401, 403, 404: the key is invalid;
- anything else, a timeout or a connection error: the service is unavailable and the
  request is refused (fail closed), and only briefly remembered.

Answers are cached per key (a SHA-256 of it, never the key itself) with separate TTLs for
valid and invalid keys, in a bounded cache; at most one call per key is in flight at a time:
requests that arrive meanwhile wait for that call's answer.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import gevent
import ujson
from gevent.event import AsyncResult

from brrt_actors.handler import Principal
from brrt_actors.security.apikey import api_key_challenge
from brrt_actors.security.credentials import InvalidCredentials, key_reader, redact
from brrt_actors.spec.model import SecurityScheme

__all__ = ["RemoteApiKeyProvider", "RemoteApiKeySettings"]

logger = logging.getLogger("brrt_actors.security")

_MAX_BODY = 64 * 1024
_INVALID_STATUSES = frozenset({401, 403, 404})


@dataclass(frozen=True, slots=True)
class RemoteApiKeySettings:
    """How one apiKey scheme's keys are verified remotely.

    Attributes:
        verify_url: the service called with the key (GET).
        timeout_s: the whole call's deadline.
        header_name: read the request's key from this header instead of the scheme's.
        verify_header: the header that carries the key to `verify_url`.
        cache_ttl_s: how long a valid key stays valid without asking again.
        negative_cache_ttl_s: how long an invalid key stays invalid without asking again.
        error_cache_ttl_s: how long an unavailable service's failure is remembered.
        cache_size: the most keys remembered.
    """

    verify_url: str
    timeout_s: float = 0.5
    header_name: str | None = None
    verify_header: str = "X-API-Key"
    cache_ttl_s: float = 60.0
    negative_cache_ttl_s: float = 10.0
    error_cache_ttl_s: float = 1.0
    cache_size: int = 10000


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # SECURITY: a redirect would carry the key to wherever the verifier points.
    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        return None


# A cached answer: the principal, or the (category, detail) of the refusal.
_Answer = Principal | tuple[str, str]


class RemoteApiKeyProvider:
    """Accept keys that a remote service vouches for (see the module docstring)."""

    __slots__ = ("_cache", "_inflight", "_location", "_name", "_opener", "_read", "_settings",
                 "calls", "scheme_name")

    def __init__(self, scheme: SecurityScheme, settings: RemoteApiKeySettings) -> None:
        self.scheme_name = scheme.name
        self._settings = settings
        self._location = scheme.location or "header"
        self._name = (settings.header_name if settings.header_name and self._location == "header"
                      else scheme.parameter_name or "")
        self._read = key_reader(self._location, self._name)
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._cache: dict[bytes, tuple[float, _Answer]] = {}
        self._inflight: dict[bytes, AsyncResult[_Answer]] = {}
        self.calls = 0  # calls made to verify_url (for metrics and tests)

    def __repr__(self) -> str:
        return f"RemoteApiKeyProvider({self.scheme_name!r})"

    def challenge(self, error: str | None) -> str:
        """Return the WWW-Authenticate value for this scheme."""
        return api_key_challenge(self.scheme_name, self._name, self._location, error)

    def close(self) -> None:
        """Nothing to release: each call to the verifier has its own connection."""

    def authenticate(self, environ: dict[str, Any]) -> Principal | None:
        """Return the key's principal, None without a key.

        Raises:
            InvalidCredentials: the service refused the key (``invalid_key``) or could not
                be asked (``unavailable``).
        """
        presented = self._read(environ)
        if not presented:
            return None
        if not (presented.isascii() and presented.isprintable()):
            raise InvalidCredentials("invalid_key", "a key a header cannot carry")
        digest = hashlib.sha256(presented.encode()).digest()
        answer = self._cached(digest)
        if answer is None:
            waiting = self._inflight.get(digest)
            answer = self._wait(waiting) if waiting is not None else self._ask(digest, presented)
        if isinstance(answer, Principal):
            return answer
        raise InvalidCredentials(*answer)

    def _cached(self, digest: bytes) -> _Answer | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        if entry[0] > time.monotonic():
            return entry[1]
        del self._cache[digest]
        return None

    def _wait(self, waiting: AsyncResult[_Answer]) -> _Answer:
        try:
            answer = waiting.get(timeout=self._settings.timeout_s + 1.0)
        except gevent.Timeout:
            answer = None
        return answer or ("unavailable", "gave up waiting for the verification in flight")

    def _ask(self, digest: bytes, presented: str) -> _Answer:
        slot: AsyncResult[_Answer] = AsyncResult()
        self._inflight[digest] = slot
        answer: _Answer = ("unavailable", "verification interrupted")
        try:
            answer, ttl = self._call(presented)
            self._remember(digest, answer, ttl)
        finally:
            del self._inflight[digest]
            slot.set(answer)
        return answer

    def _remember(self, digest: bytes, answer: _Answer, ttl: float) -> None:
        if ttl <= 0:
            return
        now = time.monotonic()
        if len(self._cache) >= self._settings.cache_size:
            for stale in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[stale]
            while len(self._cache) >= self._settings.cache_size:
                del self._cache[next(iter(self._cache))]
        self._cache[digest] = (now + ttl, answer)

    def _call(self, presented: str) -> tuple[_Answer, float]:
        settings = self._settings
        self.calls += 1
        request = urllib.request.Request(
            settings.verify_url, method="GET",
            headers={settings.verify_header: presented, "Accept": "application/json"})
        timeout = gevent.Timeout(settings.timeout_s)
        timeout.start()
        try:
            with self._opener.open(request, timeout=settings.timeout_s) as response:
                status, body = response.status, response.read(_MAX_BODY)
                content_type = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as ex:
            status, body, content_type = ex.code, b"", ""
            ex.close()
        except gevent.Timeout as ex:
            if ex is not timeout:
                raise
            return self._unavailable(f"no answer within {settings.timeout_s:g} s")
        except (OSError, http.client.HTTPException, ValueError) as ex:
            return self._unavailable(f"{type(ex).__name__}: {ex}")
        finally:
            timeout.close()
        if 200 <= status < 300:
            return self._principal(body, content_type), settings.cache_ttl_s
        if status in _INVALID_STATUSES:
            return (("invalid_key", f"the verifier answered {status} for key {redact(presented)}"),
                    settings.negative_cache_ttl_s)
        return self._unavailable(f"the verifier answered {status}")

    def _unavailable(self, reason: str) -> tuple[_Answer, float]:
        # SECURITY: fail closed, but do not remember the outage as "invalid" for long.
        logger.warning("%s: remote API key verification unavailable: %s", self.scheme_name,
                       reason)
        return ("unavailable", reason), self._settings.error_cache_ttl_s

    def _principal(self, body: bytes, content_type: str) -> Principal:
        data: Any = None
        if body and "json" in content_type.lower():
            try:
                data = ujson.loads(body)
            except ValueError:
                logger.debug("%s: the verifier's body is not JSON; ignored", self.scheme_name)
        if not isinstance(data, dict):
            return Principal(self.scheme_name)
        subject = data.get("sub")
        scopes: Any = data.get("scopes")
        if scopes is None and isinstance(data.get("scope"), str):
            scopes = data["scope"].split()
        return Principal(
            self.scheme_name, subject=subject if isinstance(subject, str) else None,
            scopes=frozenset(s for s in scopes if isinstance(s, str))
            if isinstance(scopes, list) else frozenset(),
            claims=data)
