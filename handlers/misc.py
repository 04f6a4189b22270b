"""Settings, the protected endpoint, and the parameter-style and form examples."""
from __future__ import annotations

from typing import Any

from brrt_actors import Request

from ._store import STORE


def admin_settings(request: Request) -> dict[str, Any]:
    """Return the shop settings."""
    return STORE.settings


def secure_endpoint(request: Request) -> dict[str, Any]:
    """Say who got in, and through which security scheme."""
    principal = request.principal
    assert principal is not None  # NOTE: the spec allows no anonymous caller here
    return {"status": "ok", "scheme": principal.scheme, "subject": principal.subject,
            "scopes": sorted(principal.scopes)}


def submit_form(request: Request) -> dict[str, Any]:
    """Echo the decoded fields of a URL-encoded form."""
    body: dict[str, Any] = request.body
    receipt: dict[str, Any] = {"ok": True, "name": body["name"]}
    for field in ("age", "newsletter"):
        if body.get(field) is not None:
            receipt[field] = body[field]
    return receipt


def get_matrix(request: Request) -> dict[str, Any]:
    """Echo a matrix-style array (`;coords=1,2,3`) and its sum."""
    coords: list[int] = request.path_params["coords"]
    return {"coords": coords, "sum": sum(coords)}


def get_label(request: Request) -> dict[str, Any]:
    """Echo a label-style string (`.red`)."""
    return {"color": request.path_params["color"]}
