"""The settings dataclasses: what `load_settings` returns and what an actor runs with."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from brrt_actors.engine import ENGINES
from brrt_actors.errors import Problem

__all__ = [
    "COMPRESSION_ENCODINGS",
    "DEFAULT_CORS_HEADERS",
    "DEFAULT_CORS_METHODS",
    "HTTP_ENGINES",
    "KEY_MODES",
    "POLICIES",
    "RESPONSE_VALIDATION_MODES",
    "STORAGE_ERROR_POLICIES",
    "STRATEGIES",
    "ActorPlan",
    "ActorSettings",
    "CompressionSettings",
    "CorsSettings",
    "RateLimitSettings",
    "Settings",
    "redact_url",
]

POLICIES: Final = ("block", "shed")
RESPONSE_VALIDATION_MODES: Final = ("enforce", "log", "off")
#: The HTTP engines `Settings.http_engine` may name; the first is the default.
HTTP_ENGINES: Final = ENGINES


@dataclass(frozen=True, slots=True)
class ActorSettings:
    """How one operation's actor runs (see DESIGN.md, "Actors").

    Attributes:
        workers: worker greenlets running the handler at once.
        mailbox: envelopes waiting for a worker before the actor answers 503.
        policy: ``"block"`` (wait up to `block_timeout_ms` for room) or ``"shed"`` (503 at once).
        block_timeout_ms: how long ``block`` waits for room in the mailbox (1 s by default:
            one process drains a burst of `Settings.max_connections` cheap requests in
            about that; BRRTRouter's 50 ms shed such bursts, see the README).
        deadline_ms: reply deadline; past it the caller gets 504 and the handler is
            cancelled. 0 means none.
        retry_after_s: the ``Retry-After`` seconds sent with the actor's 503 answers.
    """

    workers: int = 4
    mailbox: int = 1024
    policy: str = "block"
    block_timeout_ms: int = 1000
    deadline_ms: int = 30000
    retry_after_s: int = 1


#: BRRTRouter's defaults (its templates/config.yaml): what a `cors:` section leaves out.
DEFAULT_CORS_HEADERS: Final = ("Content-Type", "Authorization")
DEFAULT_CORS_METHODS: Final = ("GET", "POST", "PUT", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class CorsSettings:
    """The app's CORS policy (config file ``cors:``, BRRTRouter's keys; ``BRRTR_CORS_*``).

    Attributes:
        origins: the origins a browser may call from (``scheme://host[:port]``), or ``"*"``
            for any; empty: CORS is off.
        allowed_headers: request headers a preflight may ask for (``"*"``: any).
        allowed_methods: methods a preflight may ask for (``"*"``: any).
        allow_credentials: browsers may send cookies and ``Authorization`` cross-origin.
        expose_headers: response headers the browser's script may read.
        max_age: how long (seconds) a browser may cache a preflight answer; None: not said.
        where: the config file key or variable each setting came from (for messages).
    """

    origins: tuple[str, ...] = ()
    allowed_headers: tuple[str, ...] = DEFAULT_CORS_HEADERS
    allowed_methods: tuple[str, ...] = DEFAULT_CORS_METHODS
    allow_credentials: bool = False
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    where: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """True when some origin is allowed."""
        return bool(self.origins)


#: The content codings the runtime can write, the server's preference first.
COMPRESSION_ENCODINGS: Final = ("br", "gzip")


@dataclass(frozen=True, slots=True)
class CompressionSettings:
    """Response compression (config file ``compression:``, BRRTRouter's keys and more;
    ``BRRTR_COMPRESSION*``; see `brrt_actors.config.compression`).

    Attributes:
        enabled: compress JSON and text answers the client accepts compressed (off by
            default, as in BRRTRouter).
        min_bytes: bodies shorter than this go out as they are (BRRTRouter's default).
        level: the gzip level, 1 (fast) to 9 (small); 0 stores.
        brotli_quality: the brotli quality, 0 (fast) to 11 (small).
        encodings: the codings offered, the server's preference first (``br`` only when the
            ``brotli`` package is installed).
        where: the config file key or variable each setting came from (for messages).
    """

    enabled: bool = False
    min_bytes: int = 256
    level: int = 6
    brotli_quality: int = 4
    encodings: tuple[str, ...] = COMPRESSION_ENCODINGS
    where: Mapping[str, str] = field(default_factory=dict)


#: How the rate limit tells clients apart: BRRTRouter's names (the default first).
KEY_MODES: Final = ("subject_then_ip", "subject", "ip")
#: The `limits` library's strategies (the default first).
STRATEGIES: Final = ("fixed-window", "moving-window", "sliding-window-counter")
STORAGE_ERROR_POLICIES: Final = ("open", "closed")


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """How requests are counted and limited (config file ``rate_limit:``, ``BRRTR_RATE_LIMIT*``; see
    `brrt_actors.config.rate_limit`).

    Attributes:
        enabled: False turns every limit off, the spec's too.
        limit: the limit of every operation without one of its own (None: none).
        operations: the config file's limits by operationId (None: off for it).
        operation_env: the ``BRRTR_RATE_LIMIT__<operationId>`` variables, name to value.
        storage: ``memory://`` (this process) or a Redis URL (shared by processes, machines).
        strategy: the `limits` strategy counting the hits.
        key: ``subject_then_ip`` (the principal, else the API key, else the client address),
            ``subject`` (clients without credentials share one count) or ``ip``.
        trusted_proxies: the networks whose ``X-Forwarded-For`` is believed.
        max_keys: memory storage: counters kept at most (the oldest go first).
        on_storage_error: ``open`` (serve, log, count) or ``closed`` (503) when the storage
            cannot be reached.
        storage_timeout_ms: Redis: connect, read and pool wait timeout.
        storage_connections: Redis: connections per process at most.
        skip_options: operations declared for OPTIONS are never limited.
        where: the config file prefix for problems found later (unknown operationIds).
    """

    enabled: bool = True
    limit: str | None = None
    operations: Mapping[str, str | None] = field(default_factory=dict)
    operation_env: Mapping[str, str] = field(default_factory=dict)
    storage: str = "memory://"
    strategy: str = STRATEGIES[0]
    key: str = KEY_MODES[0]
    trusted_proxies: tuple[str, ...] = ()
    max_keys: int = 10000
    on_storage_error: str = STORAGE_ERROR_POLICIES[0]
    storage_timeout_ms: int = 250
    storage_connections: int = 50
    skip_options: bool = False
    where: str = field(default="rate_limit", compare=False)

    def __repr__(self) -> str:
        # SECURITY: a Redis URL may hold a password.
        return (f"RateLimitSettings(enabled={self.enabled}, limit={self.limit!r}, "
                f"storage={redact_url(self.storage)!r}, key={self.key!r})")


def redact_url(url: str) -> str:
    """Return `url` without the password it may hold (for logs and problems)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in userinfo else url


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the runtime reads from the config file, the environment and the CLI.

    Attributes:
        host, port: the listen address (``port`` 0 picks a free port).
        max_connections: connection greenlets at once.
        keepalive_timeout_s: an idle keep-alive connection is closed after this.
        max_body_bytes: request bodies above this get 413.
        response_validation: ``"enforce"`` (500 on a bad response), ``"log"`` or ``"off"``.
        shutdown_grace_s: how long a stop waits for requests in flight and mailboxes.
        metrics: serve Prometheus metrics at /metrics and count per request (``BRRTR_METRICS``,
            ``server.metrics``; on by default).
        http_engine: the HTTP engine, ``"httptools"`` (default) or ``"pywsgi"``
            (``BRRTR_HTTP_ENGINE``, ``server.http_engine``).
        max_blocking_ms: a handler that keeps the event loop busy longer than this (CPU-bound
            work gevent cannot pre-empt) is logged and counted (``BRRTR_MAX_BLOCKING_MS``,
            ``server.max_blocking_ms``; 0 turns the watch off).
        gc_threshold: a serving process collects the garbage collector's young generation
            after this many net allocations (``BRRTR_GC_THRESHOLD``, ``server.gc_threshold``;
            CPython's own is 700; 0 leaves the collector as it is).
        workers: server processes; above 1, gunicorn's arbiter runs that many
            (``--workers``, ``BRRTR_WORKERS``, ``server.workers``; default 1). Not to be
            confused with an actor's worker greenlets (`ActorSettings.workers`).
        actor_defaults: actor tuning before per-operation overrides (built-in defaults <
            config file ``actors.defaults`` < global env).
        actor_operations: the config file's ``actors.operations``, checked and parsed,
            by operationId (only the keys it gives).
        operation_env: the per-operation environment variables found
            (``BRRTR_HANDLER_WORKERS__get_pet`` ...), name to raw value.
        static_dir: the folder served under `static_prefix` (``--static-dir``,
            ``BRRTR_STATIC_DIR``, ``server.static_dir``; None: no static files).
        static_prefix: the URL path the static files are served under (default ``/static``).
        static_chunk_bytes: a static file is sent in pieces of at most this many bytes.
        cors: the CORS policy (`CorsSettings`; off until origins are given).
        compression: response compression (`CompressionSettings`; off by default).
        sse_heartbeat_s: an event stream with nothing to send for this long sends a comment,
            and a client that left is noticed then (``BRRTR_SSE_HEARTBEAT_S``,
            ``server.sse_heartbeat_s``).
        sse_max_streams: event streams open at once in this process; past it, 503 +
            ``Retry-After`` (``BRRTR_SSE_MAX_STREAMS``, ``server.sse_max_streams``).
        sse_buffer_events: events read ahead of a slow client from a handler's iterator
            (``BRRTR_SSE_BUFFER_EVENTS``, ``server.sse_buffer_events``).
        rate_limit: how requests are counted and limited (`RateLimitSettings`).
        access_log: one JSON line per request on the ``brrt_actors.access`` logger
            (``BRRTR_ACCESS_LOG``, ``server.access_log``; off by default).
        access_log_sample: the share of requests logged, 0 to 1 (``BRRTR_ACCESS_LOG_SAMPLE``).
        tracing: W3C trace context: ``traceparent`` read, ``request.trace``, a child
            ``traceparent`` on the response (``BRRTR_TRACING``, ``server.tracing``; also on
            when OpenTelemetry export is configured).
        otel: the ``OTEL_*`` variables that turn OpenTelemetry export on, as found.
        security: the config file's ``security`` section, as written.
        config_file: the config file read, if any.
        file: the whole config file as read ({} without one).
        notes: settings accepted but without effect here, as (where, message).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    max_connections: int = 10000
    keepalive_timeout_s: float = 5.0
    max_body_bytes: int = 16 * 1024 * 1024
    response_validation: str = "enforce"
    shutdown_grace_s: float = 10.0
    metrics: bool = True
    http_engine: str = HTTP_ENGINES[0]
    max_blocking_ms: int = 100
    gc_threshold: int = 10_000
    workers: int = 1
    actor_defaults: ActorSettings = field(default_factory=ActorSettings)
    actor_operations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    operation_env: Mapping[str, str] = field(default_factory=dict)
    static_dir: str | None = None
    static_prefix: str = "/static"
    static_chunk_bytes: int = 64 * 1024
    cors: CorsSettings = field(default_factory=CorsSettings)
    compression: CompressionSettings = field(default_factory=CompressionSettings)
    sse_heartbeat_s: float = 15.0
    sse_max_streams: int = 1000
    sse_buffer_events: int = 64
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    access_log: bool = False
    access_log_sample: float = 1.0
    tracing: bool = False
    otel: Mapping[str, str] = field(default_factory=dict)
    security: Mapping[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    file: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class ActorPlan:
    """Actor tuning for every operation of a spec, and what was accepted without effect.

    Attributes:
        per_operation: the settings of each operation, by operationId.
        notes: settings accepted without effect, as (where, message).
        sources: where each value came from, by operationId then setting name (``env
            BRRTR_HANDLER_WORKERS__get_pet``, ``spec x-brrt-actor``, ``default`` ...).
        overrides: operator's variables that won over the spec, as (where, message).
    """

    per_operation: Mapping[str, ActorSettings]
    notes: tuple[Problem, ...] = ()
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    overrides: tuple[Problem, ...] = ()
