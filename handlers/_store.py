"""The pet store's data: in memory, seeded with a few pets, users, posts, items and a file.

Handlers only use plain dict and list operations on it, which no greenlet switch can
interrupt, so it needs no lock.

What clients add (pets, webhooks, events) is bounded: past `PETSTORE_MAX_RECORDS` (env,
default 1000) of a kind, the oldest added one is forgotten, so a long load test measures the
server, not a growing store. The seed data always stays.

What happens to pets (created, updated, deleted) is logged as numbered events and published
on `Store.feed`, which GET /events follows live (`follow_events`).
"""
from __future__ import annotations

import copy
import itertools
import json
import os
from collections import deque
from collections.abc import Iterator
from typing import Any

from brrt_actors.sse import Broadcaster, Event

MAX_RECORDS = int(os.environ.get("PETSTORE_MAX_RECORDS", "1000"))

JOHN = "0b6f1c9e-1b4e-4a47-9a8c-5a1f3c2e7d10"
JANE = "5d3c2a1b-8e7f-4c6d-9b0a-1f2e3d4c5b6a"
SAM = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
CHEW_TOY = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
GUIDE = "c56a4180-65aa-42ec-a945-5fd21dec0538"

_PETS: list[dict[str, Any]] = [
    {"id": 1, "name": "Max", "breed": "Golden Retriever", "age": 3, "vaccinated": True,
     "tags": ["friendly", "trained"]},
    {"id": 2, "name": "Bella", "breed": "Labrador", "age": 2, "vaccinated": True,
     "tags": ["puppy", "playful"]},
    {"id": 3, "name": "Rocky", "breed": "Bulldog", "age": 5, "vaccinated": False,
     "tags": ["calm", "friendly"]},
]
_USERS: list[dict[str, Any]] = [
    {"id": JOHN, "name": "John", "email": "john@example.com"},
    {"id": JANE, "name": "Jane", "email": "jane@example.com"},
    {"id": SAM, "name": "Sam", "email": None},
]
_POSTS: list[dict[str, Any]] = [
    {"id": "post-1", "title": "Meet Max", "body": "Max joined the family today.",
     "author_id": JOHN},
    {"id": "post-2", "title": "Max at the beach", "body": "He would not leave the water.",
     "author_id": JOHN},
    {"id": "post-3", "title": "Bella's first walk", "body": "Ten metres, then a nap.",
     "author_id": JANE},
]
_ITEMS: list[dict[str, Any]] = [
    {"id": CHEW_TOY, "name": "Chew toy", "category": "toys", "tags": ["dog", "rubber"],
     "price": 4.5},
    {"id": "e4d2f1a0-3b5c-4d6e-8f7a-9b0c1d2e3f4a", "name": "Cat tree", "category": "furniture",
     "tags": ["cat"], "price": 59.0},
    {"id": "1f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "name": "Leash", "category": "accessories",
     "tags": ["dog"], "price": 12.0},
]
_GUIDE_TEXT = b"Feed twice a day. Walk after each meal.\n"
_FILES: list[dict[str, Any]] = [
    {"id": GUIDE, "filename": "pet-care-guide.txt", "content_type": "text/plain",
     "size": len(_GUIDE_TEXT), "url": f"/download/{GUIDE}"},
]


class Store:
    """Everything the shop knows; `reset` puts the seed data back."""

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        if max_records < 1:
            raise ValueError(f"PETSTORE_MAX_RECORDS must be at least 1, not {max_records}")
        self.max_records = max_records
        #: Every event logged from now on, to each follower (a slow one is dropped).
        self.feed = Broadcaster()
        self.reset()

    def reset(self) -> None:
        self.pets: dict[int, dict[str, Any]] = {p["id"]: p for p in copy.deepcopy(_PETS)}
        self.pet_ids = itertools.count(max(self.pets) + 1)
        self.users: dict[str, dict[str, Any]] = {u["id"]: u for u in copy.deepcopy(_USERS)}
        self.posts: dict[str, dict[str, Any]] = {p["id"]: p for p in copy.deepcopy(_POSTS)}
        self.items: dict[str, dict[str, Any]] = {i["id"]: i for i in copy.deepcopy(_ITEMS)}
        self.files: dict[str, dict[str, Any]] = {f["id"]: f for f in copy.deepcopy(_FILES)}
        self.file_contents: dict[str, bytes] = {GUIDE: _GUIDE_TEXT}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.webhook_ids = itertools.count(1)
        self.settings: dict[str, Any] = {"maintenance_mode": False,
                                         "feature_flags": {"beta": True, "analytics": False}}
        self._added_pets: deque[int] = deque()
        # The shop's event log, newest last: one pet.created per pet; `events_logged` counts
        # every event ever logged (the event ids), the log keeps the latest `max_records`.
        self.events: deque[tuple[str, dict[str, Any]]] = deque(maxlen=self.max_records)
        self.events_logged = 0
        for pet in self.pets.values():
            self.log_event("pet.created", {"id": pet["id"], "name": pet["name"]})

    def add_pet(self, pet: dict[str, Any]) -> None:
        """Keep `pet` (and log its creation), forgetting the oldest added pet past the bound."""
        self.pets[pet["id"]] = pet
        self._added_pets.append(pet["id"])
        if len(self._added_pets) > self.max_records:
            self.pets.pop(self._added_pets.popleft(), None)
        self.log_event("pet.created", {"id": pet["id"], "name": pet["name"]})

    def update_pet(self, pet_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Apply `changes` to a pet (and log it); return the pet, or None when unknown."""
        pet = self.pets.get(pet_id)
        if pet is not None:
            pet.update(changes)
            self.log_event("pet.updated", {"id": pet_id, "name": pet["name"]})
        return pet

    def delete_pet(self, pet_id: int) -> bool:
        """Forget a pet (and log it); return whether it was there."""
        pet = self.pets.pop(pet_id, None)
        if pet is not None:
            self.log_event("pet.deleted", {"id": pet_id, "name": pet["name"]})
        return pet is not None

    def add_webhook(self, webhook: dict[str, Any]) -> None:
        """Keep `webhook`, forgetting the oldest one past the bound."""
        self.webhooks[webhook["subscription_id"]] = webhook
        if len(self.webhooks) > self.max_records:
            del self.webhooks[next(iter(self.webhooks))]  # dicts keep insertion order

    def log_event(self, name: str, data: dict[str, Any]) -> None:
        """Log an event and publish it to the followers of the feed."""
        self.events.append((name, data))
        self.events_logged += 1
        self.feed.publish(_event(self.events_logged, name, data))

    def logged_events(self, after: int | None = None, count: int | None = None) -> list[Event]:
        """Return the events kept whose id is above `after`; only the latest `count` if given."""
        after = self._known(after)
        first_id = self.events_logged - len(self.events) + 1
        start = 0 if after is None else max(0, after + 1 - first_id)
        if count is not None:
            start = max(start, len(self.events) - count)
        return [_event(number, name, data) for number, (name, data) in enumerate(
            itertools.islice(self.events, start, None), start=first_id + start)]

    def _known(self, after: int | None) -> int | None:
        # NOTE: an id past the last one is from before a restart: the numbering began again.
        return None if after is None or after > self.events_logged else after

    def follow_events(self, after: int | None = None) -> Iterator[Event]:
        """Yield the events kept after `after` (a client's Last-Event-ID), then the new ones live.

        Ends when the feed drops this follower for falling behind (the client reconnects).
        """
        subscription = self.feed.subscribe()  # NOTE: first: nothing falls between the two
        after = self._known(after)
        try:
            last = self.events_logged if after is None else after
            for event in self.logged_events(last):
                yield event
                last = int(event.id or 0)
            for event in subscription:
                if int(event.id or 0) > last:
                    yield event
        finally:
            subscription.close()


def _event(number: int, name: str, data: dict[str, Any]) -> Event:
    # NOTE: json.dumps, not ujson: the event text keeps its spaces ("name": "Max").
    return Event(json.dumps(data), event=name, id=number)


STORE = Store()
