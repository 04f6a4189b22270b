"""Every handler of tests/specs/discovery.yaml in one module."""
from __future__ import annotations

from typing import Any

from brrt_actors import Request, Response


def list_things(request: Request) -> list[dict[str, Any]]:
    return [{"id": 1, "from": "fx_single"}]


def get_thing(request: Request) -> dict[str, Any]:
    return {"id": request.path_params["id"], "from": "fx_single"}


def make_thing(request: Request) -> Response:
    return Response(201, {"id": 3, "from": "fx_single"})


def ping(request: Request) -> dict[str, Any]:
    return {"from": "fx_single"}


def _hidden(request: Request) -> dict[str, Any]:
    return {"from": "private"}
