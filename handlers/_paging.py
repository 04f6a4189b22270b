"""Paging shared by the list operations (limit/offset come decoded, defaults applied)."""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from brrt_actors import Request

T = TypeVar("T")


class Page:
    """The `limit` and `offset` of a list request."""

    def __init__(self, request: Request) -> None:
        query: dict[str, Any] = request.query
        self.limit: int = query.get("limit", 20)
        self.offset: int = query.get("offset", 0)

    def of(self, entries: Sequence[T]) -> list[T]:
        return list(entries[self.offset:self.offset + self.limit])

    def of_iterable(self, entries: Iterable[T]) -> list[T]:
        """Take the page from an iterable without building the whole list first."""
        return list(itertools.islice(entries, self.offset, self.offset + self.limit))
