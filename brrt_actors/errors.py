"""The two error families: start-time mistakes and runtime HTTP errors.

Start-time mistakes (bad spec, missing handler, bad environment variable) raise
`SpecError` or `ConfigError`; both are `ValueError`s whose message names the place and
the fix. Runtime HTTP errors are one class, `HTTPError`, turned into problem+json
(RFC 9457) in exactly one place: `brrt_actors.problem`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

# One problem found at start: (JSON pointer or variable name, message).
Problem = tuple[str, str]


class StartError(ValueError):
    """A mistake found while loading: lists every problem, each with where it is."""

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [("", problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        lines = [f"{where}: {message}" if where else message for where, message in self.problems]
        if len(lines) == 1:
            return lines[0]
        return f"{len(lines)} problems:\n" + "\n".join(f"  - {line}" for line in lines)


class SpecError(StartError):
    """The OpenAPI document cannot be served as written (the pointer says where)."""


class ConfigError(StartError):
    """A setting (environment variable, config file, CLI flag) has a bad value."""


def status_title(status: int) -> str:
    """Return the standard reason phrase of `status` ("Unknown" when there is none)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class HTTPError(Exception):
    """An HTTP error answer: raise it from a handler or anywhere in the pipeline.

    Args:
        status: the HTTP status code.
        detail: a human-readable explanation for the client (never internals).
        title: short summary; defaults to the status' reason phrase.
        headers: extra response headers (e.g. ``Allow``, ``Retry-After``).
        errors: itemised problems, each ``{"in", "name" or "pointer", "message"}``.
        type: a URI identifying the problem type; ``about:blank`` by default.
    """

    __slots__ = ("detail", "errors", "headers", "status", "title", "type")

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        type: str = "about:blank",
    ) -> None:
        self.status = status
        self.title = title or status_title(status)
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})
        self.errors = errors
        self.type = type
        super().__init__(f"{status} {self.title}" + (f": {detail}" if detail else ""))
