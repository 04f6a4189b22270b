from __future__ import annotations

from brrt_actors import Request, Response


def make_thing(request: Request) -> Response:
    """The handler of create_thing, named by its x-handler."""
    return Response(201, {"id": 3, "from": __name__})
