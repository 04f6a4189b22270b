"""Collecting what is wrong with a document, so that one `SpecError` can list all of it."""
from __future__ import annotations

from brrt_actors.errors import Problem, SpecError


class Problems:
    """Errors (fatal) and warnings found while loading, each with where it is; no duplicates."""

    __slots__ = ("_errors", "_warnings")

    def __init__(self) -> None:
        # NOTE: dicts as ordered sets; a component translated for both directions would
        # otherwise report the same problem twice.
        self._errors: dict[Problem, None] = {}
        self._warnings: dict[Problem, None] = {}

    def error(self, where: str, message: str) -> None:
        """Record a mistake that stops the start."""
        self._errors[(where, message)] = None

    def warn(self, where: str, message: str) -> None:
        """Record something served differently from what the author may expect."""
        self._warnings[(where, message)] = None

    def extend(self, error: SpecError) -> None:
        """Record every problem of `error`."""
        for where, message in error.problems:
            self.error(where, message)

    @property
    def errors(self) -> list[Problem]:
        return list(self._errors)

    @property
    def warnings(self) -> list[Problem]:
        return list(self._warnings)

    def raise_if_any(self) -> None:
        """Raise one `SpecError` listing every error recorded so far."""
        if self._errors:
            raise SpecError(self.errors)
