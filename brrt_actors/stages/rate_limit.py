"""The rate limit stage: a client over its operation's limit gets 429, before its request is read.

An operation is limited when the spec (``x-rate-limit: "100/minute"``), the config file
(``rate_limit:``) or the environment (``BRRTR_RATE_LIMIT*``) give it a limit
(`brrt_actors.config.rate_limit` says which wins); an operation without one has no stage at
all. The stage runs right after security, so the count is per client:

    subject_then_ip (default)  the authenticated principal (a JWT's ``sub``, a basic user),
                               else the API key presented (hashed), else the client address
    subject                    the same, but clients without credentials share one count
    ip                         the client address

The client address is the peer's, or, when the peer is one of ``trusted_proxies``, the
right-most address of ``X-Forwarded-For`` that is not a trusted proxy.

Over the limit: 429 problem+json with ``Retry-After`` and the IETF ``RateLimit-Policy`` and
``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers); every other answer of a limited
operation carries those two fields as well (`build_headers` adds them). The counters belong to
the app (`Counters`, closed when the app stops): memory for one process, or Redis, shared by
every process and machine using it.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from brrt_actors.config.rate_limit import operation_limit
from brrt_actors.errors import HTTPError, SpecError

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.security.credentials import KeyReader
    from brrt_actors.spec.model import Operation
    from brrt_actors.stages import Around, Run, Stage
    from brrt_actors.stages.rate_limit_storage import Counters
    from brrt_actors.stages.response import Encoded

__all__ = ["build", "build_headers", "client_address"]

#: Where the stage leaves the ``RateLimit`` field for `build_headers` (the WSGI environ).
RATE_LIMIT_FIELD = "brrt.rate_limit"
#: ``X-Forwarded-For`` hops looked at, at most (right to left).
MAX_FORWARDED_HOPS = 32

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _digest(text: str) -> str:
    # SECURITY: subjects and keys go to the storage (Redis) only as digests.
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_address(trusted_proxies: tuple[str, ...]) -> Callable[[dict[str, Any]], str]:
    """Return ``address(environ)``: the client's address, believing only trusted proxies.

    Without trusted proxies it is the peer's address (``REMOTE_ADDR``). With them, a peer
    that is one of them has ``X-Forwarded-For`` read from the right: the first address that
    is not a trusted proxy is the client (a hop that is not an address stops the walk, and
    the last trusted hop counts as the client).
    """
    if not trusted_proxies:
        def peer(environ: dict[str, Any]) -> str:
            return environ.get("REMOTE_ADDR") or "unknown"

        return peer
    networks = tuple(ipaddress.ip_network(net) for net in trusted_proxies)

    def forwarded(environ: dict[str, Any]) -> str:
        remote: str = environ.get("REMOTE_ADDR") or "unknown"
        header = environ.get("HTTP_X_FORWARDED_FOR")
        if not header or not _trusted(remote, networks):
            return remote
        client = remote
        for hop in reversed(header.split(",")[-MAX_FORWARDED_HOPS:]):
            try:
                address = ipaddress.ip_address(hop.strip())
            except ValueError:
                break  # SECURITY: garbage in the chain: the last trusted hop's view stands
            client = str(address)
            if not any(address in network for network in networks):
                break
        return client

    return forwarded


def _identity(readers: Mapping[str, KeyReader]) -> Callable[[Request], str | None]:
    def identity(request: Request) -> str | None:
        principal = request.principal
        if principal is None:
            return None
        if principal.subject:
            return "sub:" + _digest(principal.subject)
        reader = readers.get(principal.scheme)
        presented = reader(request.environ) if reader is not None else None
        return f"key:{principal.scheme}:{_digest(presented)}" if presented else None

    return identity


def _client_key(mode: str, readers: Mapping[str, KeyReader],
                address: Callable[[dict[str, Any]], str]) -> Callable[[Request], str]:
    # PERF: the mode is chosen here once, not tested per request.
    if mode == "ip":
        def by_address(request: Request) -> str:
            return "ip:" + address(request.environ)

        return by_address
    identity = _identity(readers)
    if mode == "subject":
        def by_subject(request: Request) -> str:
            return identity(request) or "anonymous"

        return by_subject

    def by_subject_then_address(request: Request) -> str:
        return identity(request) or "ip:" + address(request.environ)

    return by_subject_then_address


def _key_readers(context: BuildContext) -> dict[str, KeyReader]:
    # NOTE: an API key principal is the same for every key of its scheme; the key itself,
    # read where its provider reads it (header, query, cookie), tells the clients apart.
    readers: dict[str, KeyReader] = {}
    for name, provider in context.providers.items():
        reader = getattr(provider, "_read", None)
        if callable(reader):
            readers[name] = reader
    return readers


_POLICY_NAME = re.compile(r"[^A-Za-z0-9_.:-]")


def _stage(counters: Counters, item: Any, operation_id: str, name: str, policy: str,
           client_key: Callable[[Request], str]) -> Stage:
    from brrt_actors.stages.rate_limit_storage import StorageFailed

    amount = item.amount
    hit = counters.counter(item, operation_id)
    refused = {"Retry-After": "1", "RateLimit-Policy": policy}

    def rate_limit_stage(request: Request) -> None:
        try:
            allowed, remaining, reset_s = hit(client_key(request))
        except StorageFailed:
            if counters.fail_open:
                return
            raise HTTPError(503, "The rate limit cannot be checked now; retry later.",
                            headers=refused) from None
        field = f'"{name}";r={remaining};t={reset_s}'
        if not allowed:
            raise HTTPError(429, f"More than {amount} requests in the window of this "
                                 f"operation; retry in {max(1, reset_s)} s.",
                            headers={"Retry-After": str(max(1, reset_s)),
                                     "RateLimit-Policy": policy, "RateLimit": field})
        request.environ[RATE_LIMIT_FIELD] = field

    return rate_limit_stage


def _limit_of(operation: Operation, context: BuildContext) -> tuple[Any, str] | None:
    """Return the operation's `limits` item and its RateLimit-Policy field, or None."""
    settings = context.settings.rate_limit
    if settings.skip_options and operation.method == "OPTIONS":
        return None
    problems: list[tuple[str, str]] = []
    limit = operation_limit(settings, operation.operation_id, operation.extensions,
                            operation.pointer, problems)
    if problems:
        raise SpecError(problems)
    if limit is None:
        return None
    from limits import parse  # NOTE: ~80 ms of imports, only for an app with limits

    item = parse(limit)
    return item, f'"{_policy_name(operation)}";q={item.amount};w={item.get_expiry()}'


def _policy_name(operation: Operation) -> str:
    return _POLICY_NAME.sub("_", operation.operation_id)


def _limit(operation: Operation, context: BuildContext) -> tuple[Any, str] | None:
    # NOTE: the stage and its headers' wrapper are built apart; the limit is resolved once.
    return context.memo(("rate_limit", operation.pointer), lambda: _limit_of(operation, context))


def _counters(context: BuildContext) -> Counters:
    from brrt_actors.stages.rate_limit_storage import Counters

    settings = context.settings.rate_limit
    count_error = None
    if context.metrics is not None and not settings.storage.startswith("memory://"):
        count_error = context.metrics.counter(
            "brrt_rate_limit_storage_errors",
            "Rate limit checks that could not reach the storage").inc
    counters = Counters(settings, count_error)
    context.on_stop.append(counters.close)
    return counters


def build(operation: Operation, context: BuildContext) -> Stage | None:
    """Return the operation's rate limit stage, or None when the operation has no limit.

    Raises:
        SpecError: the operation's ``x-rate-limit`` is not a limit.
    """
    limit = _limit(operation, context)
    if limit is None:
        return None
    settings = context.settings.rate_limit
    counters = context.memo("rate_limit.counters", lambda: _counters(context))
    client_key = context.memo(
        "rate_limit.client_key",
        lambda: _client_key(settings.key, _key_readers(context),
                            client_address(settings.trusted_proxies)))
    item, policy = limit
    return _stage(counters, item, operation.operation_id, _policy_name(operation), policy,
                  client_key)


def build_headers(operation: Operation, context: BuildContext) -> Around | None:
    """Return the wrapper adding the ``RateLimit`` fields to a limited operation's answers.

    The 429 and 503 of the stage itself carry them already; any other answer gets them
    when the stage counted its request.
    """
    limit = _limit(operation, context)
    if limit is None:
        return None
    policy = limit[1]

    def around(run: Run) -> Run:
        def with_fields(request: Request) -> Encoded:
            try:
                answer = run(request)
            except HTTPError as ex:
                field = request.environ.get(RATE_LIMIT_FIELD)
                if field is not None:
                    ex.headers = {"RateLimit-Policy": policy, "RateLimit": field, **ex.headers}
                raise
            field = request.environ.get(RATE_LIMIT_FIELD)
            if field is not None:
                headers = answer[1]
                headers.append(("RateLimit-Policy", policy))
                headers.append(("RateLimit", field))
            return answer

        return with_fields

    return around
