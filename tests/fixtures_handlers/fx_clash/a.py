from __future__ import annotations

from typing import Any

from brrt_actors import Request


def get_thing(request: Request) -> dict[str, Any]:
    return {"id": 1, "from": __name__}


def helper() -> int:
    """Public, but no operation is named helper: b.py's helper does not clash with it."""
    return 1
