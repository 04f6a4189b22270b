"""What a client of a mock server must send to get past each security scheme (start output).

Mock mode serves operations from the spec, but their security still applies: a scheme that is
configured checks real credentials; with ``--dev`` an unconfigured one accepts its development
default; otherwise it refuses everything (401). `client_credentials` tells, per scheme, which
of these holds and what to send (or which variable to set).
"""
from __future__ import annotations

import base64
from collections.abc import Collection, Mapping

from brrt_actors.security.scheme_settings import (
    DEV_API_KEY,
    DEV_PASSWORD,
    DEV_USER,
    how_to_configure,
    scheme_kind,
)
from brrt_actors.spec.model import SecurityScheme

__all__ = ["client_credentials"]


def _sent_as(scheme: SecurityScheme, value: str) -> str:
    kind = scheme_kind(scheme)
    if kind == "apiKey":
        name = scheme.parameter_name or "?"
        if scheme.location == "query":
            return f"the query parameter {name}={value}"
        if scheme.location == "cookie":
            return f"the cookie {name}={value}"
        return f"the header '{name}: {value}'"
    if kind == "basic":
        return f"the header 'Authorization: Basic {value}'"
    return f"the header 'Authorization: Bearer {value}'"


def _dev_value(scheme: SecurityScheme) -> str | None:
    kind = scheme_kind(scheme)
    if kind == "apiKey":
        return DEV_API_KEY
    if kind == "basic":
        return base64.b64encode(f"{DEV_USER}:{DEV_PASSWORD}".encode()).decode()
    if kind in ("bearer", "oauth2", "openIdConnect"):
        return f"$(brrt token --dev --scheme {scheme.name})"
    return None


def client_credentials(schemes: Mapping[str, SecurityScheme], used: Collection[str],
                       configured: Collection[str], *, dev: bool) -> list[tuple[bool, str]]:
    """Return, per scheme the operations use, (usable, what a client must send or set).

    Args:
        configured: the schemes that have settings or a provider from Python.
        dev: unconfigured schemes accept their development default (``--dev``).
    """
    lines: list[tuple[bool, str]] = []
    for name in sorted(used):
        scheme = schemes[name]
        if name in configured:
            lines.append((True, f"security scheme {name!r}: send "
                                f"{_sent_as(scheme, '<the configured credential>')}"))
            continue
        dev_value = _dev_value(scheme)
        if dev and dev_value is not None:
            lines.append((True, f"security scheme {name!r} (--dev): send "
                                f"{_sent_as(scheme, dev_value)}"))
            continue
        hint = (f"; or serve with --dev and send {_sent_as(scheme, dev_value)}"
                if dev_value is not None else "")
        lines.append((False, f"security scheme {name!r}: every request that needs it gets 401 "
                             f"until it is configured: {how_to_configure(scheme)}{hint}"))
    return lines
