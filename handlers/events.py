"""Shop events: a finite server-sent event stream, and webhook subscriptions."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from brrt_actors import Request, Response

from ._store import STORE


def _sse(first_id: int, events: list[tuple[str, dict[str, Any]]]) -> Iterator[bytes]:
    for number, (name, data) in enumerate(events, start=first_id):
        yield f"id: {number}\nevent: {name}\ndata: {json.dumps(data)}\n\n".encode()


def stream_events(request: Request) -> Response:
    """Stream the latest `count` shop events, then end the stream."""
    count: int = request.query.get("count", 3)
    events = STORE.events
    latest = list(itertools.islice(events, max(0, len(events) - count), None))
    first_id = STORE.events_logged - len(latest) + 1
    return Response(200, _sse(first_id, latest), content_type="text/event-stream")


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
