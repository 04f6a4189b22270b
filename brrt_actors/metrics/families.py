"""The metric families brrt exposes: their names, help texts, labels and latency buckets.

One table for the three places that need them: the plain figures (`figures`), the page built
at scrape time (`exposition`) and the multi-process form (`multiprocess`).
"""
from __future__ import annotations

from typing import Final

# Latency buckets in seconds, 0.5 ms to 10 s.
BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                  1.0, 2.5, 5.0, 10.0)
_LE: Final = (*(repr(bound) for bound in BUCKETS), "+Inf")  # as prometheus_client writes them
# A series: one count per bucket (not cumulative; the last one is +Inf), then the sum.
_SUM: Final = len(BUCKETS) + 1


_REQUEST_LABELS: Final = ("operation_id", "method", "status")
_ACTOR_GAUGES: Final = (
    ("workers", "brrt_actor_workers", "Worker greenlets of the operation's actor."),
    ("busy", "brrt_actor_busy_workers", "Workers running the handler right now."),
    ("queue_depth", "brrt_actor_mailbox_depth", "Requests waiting in the actor's mailbox."),
    ("mailbox", "brrt_actor_mailbox_capacity", "Size of the actor's mailbox."),
)
_ACTOR_COUNTERS: Final = (
    ("completed", "brrt_actor_completed",
     "Handler calls that returned (or raised an HTTPError)."),
    ("handler_errors", "brrt_actor_handler_errors",
     "Handler calls that raised anything else (answered 500)."),
    ("rejected", "brrt_actor_rejected",
     "Requests answered 503 because the mailbox was full (shed, or block timed out)."),
    ("refused", "brrt_actor_refused",
     "Requests answered 503 because the actor was not started or stopping."),
    ("deadline_exceeded", "brrt_actor_deadline_exceeded",
     "Requests answered 504 because the handler missed its deadline."),
    ("cancelled", "brrt_actor_cancelled", "Handlers interrupted by their deadline."),
    ("expired", "brrt_actor_expired",
     "Requests dropped unrun: their deadline passed while they waited in the mailbox."),
    ("restarts", "brrt_actor_worker_restarts", "Worker greenlets restarted after dying."),
    ("hub_blocked", "brrt_hub_blocked",
     "Times the operation's handler kept the event loop busy longer than max_blocking_ms "
     "(CPU-bound work: nothing else in the process ran meanwhile)."),
)
# The figures of `brrt_actors.entrypoints.server.HTTPServer.connection_stats`, summed over the
# servers.
_CONNECTION_GAUGES: Final = (
    ("open", "brrt_http_connections",
     "Client connections open now (serving a request, or idle between requests)."),
    ("idle", "brrt_http_connections_idle",
     "Open connections waiting for their next request (keep-alive, or new)."),
    ("limit", "brrt_http_connections_limit",
     "Connections served at once at most (max_connections); with several worker "
     "processes, the sum of the living workers' limits."),
)
_CONNECTION_COUNTERS: Final = (
    ("evicted", "brrt_http_connections_evicted",
     "Idle keep-alive connections closed to admit a new client into the full pool."),
)
_HELP_REQUESTS = "Requests served by each operation, by response status."
_HELP_DURATION = ("Time from routing to the response's headers (the body of a streamed "
                  "response not included), by operation and status.")
_HELP_IN_FLIGHT = "Requests of each operation being served now."
_HELP_UNMATCHED = "Requests no operation served: 404 (no route) and 405 (method not allowed)."
_HELP_RELOADS = ("Hot reloads (brrt serve --reload): ok, the new version serves; failed, it "
                 "could not be built and the previous one goes on serving.")
_HELP_AUTH = ("Requests rejected by the security stage, per scheme the operation accepts "
              "(a request to an operation that accepts two schemes counts for both).")
