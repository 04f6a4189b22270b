"""Only ping: the other operations of tests/specs/discovery.yaml have no handler here."""
from __future__ import annotations

from typing import Any

from brrt_actors import Request


def ping(request: Request) -> dict[str, Any]:
    return {"from": "fx_partial"}
