"""All actors of an app, one per operationId: looked up, started and stopped together."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import gevent

from brrt_actors.actors import KILL_WAIT_S, Actor

__all__ = ["ActorSystem"]


class ActorSystem:
    """All actors of an app, one per operationId: start, stop and look them up together."""

    def __init__(self, actors: Iterable[Actor] = ()) -> None:
        self._actors: dict[str, Actor] = {}
        for actor in actors:
            self.add(actor)

    def add(self, actor: Actor) -> None:
        """Add `actor` (named by its operationId).

        Raises:
            ValueError: an actor of that name is already there.
        """
        if actor.name in self._actors:
            raise ValueError(f"an actor named {actor.name!r} is already in the system")
        self._actors[actor.name] = actor

    def get(self, operation_id: str) -> Actor:
        """Return the actor of `operation_id` (KeyError when there is none)."""
        return self._actors[operation_id]

    def __getitem__(self, operation_id: str) -> Actor:
        return self._actors[operation_id]

    def __contains__(self, operation_id: object) -> bool:
        return operation_id in self._actors

    def __iter__(self) -> Iterator[Actor]:
        return iter(self._actors.values())

    def __len__(self) -> int:
        return len(self._actors)

    def start(self) -> None:
        """Start every actor."""
        for actor in self._actors.values():
            actor.start()

    def stop(self, grace_s: float) -> None:
        """Stop every actor at once; returns within about ``grace_s + 0.5`` seconds."""
        stopping = [gevent.spawn(actor.stop, grace_s) for actor in self._actors.values()]
        gevent.joinall(stopping, timeout=max(0.0, grace_s) + 2 * KILL_WAIT_S)

    def stats(self) -> dict[str, dict[str, int]]:
        """Return every actor's `Actor.stats`, by operationId."""
        return {name: actor.stats() for name, actor in self._actors.items()}
