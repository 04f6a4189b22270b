"""The catalogue: get, create-or-replace, search."""
from __future__ import annotations

from typing import Any

from brrt_actors import HTTPError, Request, Response

from ._store import STORE


def get_item(request: Request) -> dict[str, Any]:
    """Return one item, or 404."""
    item_id = str(request.path_params["id"]).lower()
    item = STORE.items.get(item_id)
    if item is None:
        raise HTTPError(404, f"item {item_id} not found")
    return item


def post_item(request: Request) -> Response:
    """Replace the item (200) or create it (201 with Location)."""
    item_id = str(request.path_params["id"]).lower()
    item: dict[str, Any] = {"id": item_id, **request.body}
    existed = item_id in STORE.items
    STORE.items[item_id] = item
    if existed:
        return Response(200, item)
    return Response(201, item, {"Location": f"/items/{item_id}"})


def search(request: Request) -> dict[str, Any]:
    """Find items by name text, tags (all of them) and field filters (all equal)."""
    text = (request.query.get("q") or "").lower()
    tags = set(request.query.get("tags") or ())
    filters: dict[str, str] = request.query.get("filters") or {}
    results = [
        item for item in STORE.items.values()
        if text in item["name"].lower()
        and tags <= set(item.get("tags", ()))
        and all(str(item.get(key)) == value for key, value in filters.items())
    ]
    answer: dict[str, Any] = {"results": results, "total": len(results)}
    trace_id = request.headers.get("x-trace-id")
    if trace_id:
        answer["trace_id"] = str(trace_id)
    return answer
