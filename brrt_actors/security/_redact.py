"""Safe stand-ins for secrets in log lines: a credential's fingerprint, a URL without secrets."""
from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit


def fingerprint(credential: str) -> str:
    """Return a short, stable stand-in for `credential` that does not reveal it.

    The same token always gives the same fingerprint, so log lines about one token can be
    correlated without the token itself ever being written anywhere.
    """
    digest = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).hexdigest()
    return f"<token sha256:{digest[:12]} len={len(credential)}>"


def safe_url(url: str) -> str:
    """Return `url` without user info, query and fragment (they may carry secrets)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
