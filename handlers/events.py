"""Shop events: a live server-sent event stream, and webhook subscriptions."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from brrt_actors import Request, Response
from brrt_actors.sse import Event

from ._store import STORE


def stream_events(request: Request) -> Response | list[Event] | Iterator[Event]:
    """Follow the shop's events as they happen; with `count`, send the latest ones and end.

    A reconnecting client's ``Last-Event-ID`` resumes the stream after that event (from
    the events the store still keeps).
    """
    count: int | None = request.query.get("count")
    after: int | None = request.headers.get("last-event-id")
    if count is not None:
        return STORE.logged_events(after, count)
    # NOTE: a generator: it runs beside the connection, not in one of this actor's workers.
    return STORE.follow_events(after)


def register_webhook(request: Request) -> Response:
    """Subscribe a URL to pet events (201)."""
    body: dict[str, Any] = request.body
    webhook = {
        "subscription_id": f"sub_{next(STORE.webhook_ids):08x}",
        "url": body["url"],
        "events": list(body.get("events") or ["pet.created", "pet.updated"]),
    }
    STORE.add_webhook(webhook)
    return Response(201, webhook)
