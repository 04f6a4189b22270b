from __future__ import annotations

from typing import Any

from brrt_actors import Request


def get_thing(request: Request) -> dict[str, Any]:
    return {"id": 2, "from": __name__}


def helper() -> int:
    return 2
