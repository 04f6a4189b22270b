from __future__ import annotations

from typing import Any

from brrt_actors import Request


def list_things(request: Request) -> list[dict[str, Any]]:
    return [_thing(1), _thing(2)]


def get_thing(request: Request) -> dict[str, Any]:
    return _thing(request.path_params["id"])


def _hidden(request: Request) -> dict[str, Any]:
    return {"from": "private"}


def _thing(thing_id: int) -> dict[str, Any]:
    return {"id": thing_id, "from": __name__}
