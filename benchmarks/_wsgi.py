"""A WSGI environ as the engine builds it, for the in-process benchmarks."""
from __future__ import annotations

import io
from typing import Any


def environ(method: str, path: str, query: str = "", body: bytes = b"",
            api_key: str = "test123") -> dict[str, Any]:
    """Return the environ of one request to the pet store (with its API key)."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "RAW_URI": path + (f"?{query}" if query else ""), "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_X_API_KEY": api_key, "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
    }
    if body:
        env["CONTENT_TYPE"] = "application/json"
        env["CONTENT_LENGTH"] = str(len(body))
    return env
