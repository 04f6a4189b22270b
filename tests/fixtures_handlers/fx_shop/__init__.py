"""Handlers of tests/specs/discovery.yaml spread over submodules."""
from __future__ import annotations

from typing import Any

from brrt_actors import Request

from .things import list_things  # re-exported: the same function, not a clash

__all__ = ["list_things", "ping"]


def ping(request: Request) -> dict[str, Any]:
    return {"from": __name__}
