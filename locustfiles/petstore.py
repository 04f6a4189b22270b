"""Locust load test of the pet store: the request mix of BRRTRouter's goose load test.

    brrt serve specs/petstore.yaml --handlers handlers --config specs/petstore.config.yaml
    LOAD_USER_RPS=5 locust -f locustfiles/petstore.py --headless -u 100 -r 100 -t 1m \\
        --host http://127.0.0.1:8080

The mix, by weight (out of 100; BRRTRouter's scenarios, each split over its requests):

    Pet 25          GET /pets 10, GET /pets/{id} 12, POST /pets 3
    User 20         GET /users 4, GET /users/{id} 5, GET /users/{id}/posts 4,
                    GET /users/{id}/posts/{post_id} 4, DELETE /users/{id} 3
    Advanced 25     GET /search 7, GET /items/{id} 7, POST /items/{id} 5,
                    GET /admin/settings 4, POST /webhooks 2
    Path params 10  GET /labels/{color} (label style) 5, GET /matrix/{coords} (matrix) 5
    Built-in 10     GET /health 7, GET /metrics 3
    Docs/spec 10    GET /docs 5, GET /openapi.yaml 5

Every response is checked: its status must be the one the spec and the sample data give, or
the request counts as a failure. Writes are kept bounded so that a long run measures the
server, not a growing store: items are replaced within a fixed pool of ids, deletes aim at
users that do not exist (404 is the expected answer), and pets are added at a low weight.

Environment:
    LOAD_API_KEY    the X-API-Key value (default test123, the sample config's key)
    LOAD_USER_RPS   requests per second of each simulated user (`constant_throughput`), so
                    that the total rate is users x LOAD_USER_RPS; default: RATE_RPS / USERS
                    when both are set, else 1
"""
from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterable
from typing import Any

import gevent
from locust import FastHttpUser, constant_throughput, task
from locust.contrib.fasthttp import ResponseContextManager

API_KEY = os.environ.get("LOAD_API_KEY", "test123")


def _user_rate() -> float:
    if os.environ.get("LOAD_USER_RPS"):
        return float(os.environ["LOAD_USER_RPS"])
    if os.environ.get("RATE_RPS") and os.environ.get("USERS"):
        return float(os.environ["RATE_RPS"]) / float(os.environ["USERS"])
    return 1.0


# The sample data seeded by handlers/_store.py.
PET_IDS = (1, 2, 3)
BREEDS = ("Golden Retriever", "Labrador", "Bulldog", "Poodle", "Beagle", "Mixed")
JOHN = "0b6f1c9e-1b4e-4a47-9a8c-5a1f3c2e7d10"
JANE = "5d3c2a1b-8e7f-4c6d-9b0a-1f2e3d4c5b6a"
SAM = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
USERS = (JOHN, JANE, SAM)
POSTS = ((JOHN, "post-1"), (JOHN, "post-2"), (JANE, "post-3"))
ITEMS = ("7c9e6679-7425-40de-944b-e07fc1f90ae7", "e4d2f1a0-3b5c-4d6e-8f7a-9b0c1d2e3f4a",
         "1f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0")
# Items the load test writes: a fixed pool, so the store does not grow with the run.
ITEM_POOL = tuple(str(uuid.uuid5(uuid.NAMESPACE_URL, f"brrt-load-item-{n}")) for n in range(32))
COLORS = ("red", "green", "blue", "amber")

OK = frozenset({200})


def _check(response: ResponseContextManager, expected: Iterable[int],
           content_type: str | None = "application/json") -> None:
    """Mark the response a success only when its status (and Content-Type) are as expected."""
    allowed = frozenset(expected)
    if response.status_code not in allowed:
        response.failure(  # type: ignore[no-untyped-call]
            f"status {response.status_code}, expected {sorted(allowed)}: "
            f"{(response.text or '')[:200]}")
        return
    if content_type and response.status_code < 300:
        headers = response.headers
        got = str(headers.get("Content-Type", "")) if headers is not None else ""
        if not got.startswith(content_type):
            response.failure(  # type: ignore[no-untyped-call]
                f"Content-Type {got!r}, expected {content_type}")
            return
    response.success()  # type: ignore[no-untyped-call]


class PetStoreUser(FastHttpUser):
    """One client of the pet store, sending the mix at a constant rate."""

    wait_time = constant_throughput(_user_rate())
    default_headers = {"X-API-Key": API_KEY}

    def on_start(self) -> None:
        # NOTE: users started in the same instant would fire in the same instant ever after
        # (constant_throughput keeps each user's phase): bursts of `users` requests, whose
        # queueing, not the server, would make the latency. A random phase within the
        # period spreads them evenly. constant_throughput counts from `_cp_last_run`, so it
        # restarts after the pause.
        gevent.sleep(random.uniform(0, 1 / _user_rate()))
        if hasattr(self, "_cp_last_run"):
            self._cp_last_run = time.perf_counter()

    def _get(self, path: str, name: str, expected: Iterable[int] = OK,
             content_type: str | None = "application/json", **kwargs: Any) -> None:
        with self.client.get(path, name=name, catch_response=True, **kwargs) as response:
            _check(response, expected, content_type)

    # -- Pet (25) ---------------------------------------------------------------------------

    @task(10)
    def list_pets(self) -> None:
        self._get(f"/pets?limit={random.randint(1, 20)}", "GET /pets")

    @task(12)
    def get_pet(self) -> None:
        self._get(f"/pets/{random.choice(PET_IDS)}", "GET /pets/{id}")

    @task(3)
    def add_pet(self) -> None:
        pet = {"name": f"Pet-{random.randint(1, 10**6)}", "breed": random.choice(BREEDS),
               "age": random.randint(0, 15), "tags": random.sample(["puppy", "calm", "trained"], 2)}
        with self.client.post("/pets", json=pet, name="POST /pets",
                              catch_response=True) as response:
            _check(response, {201})

    # -- User (20) --------------------------------------------------------------------------

    @task(4)
    def list_users(self) -> None:
        self._get("/users?limit=10", "GET /users")

    # NOTE: a user may be gone (deleted by an earlier run or another client): 404 is a
    # correct answer for a deleted user, not a failure.
    @task(5)
    def get_user(self) -> None:
        self._get(f"/users/{random.choice(USERS)}", "GET /users/{user_id}", {200, 404},
                  content_type=None)

    @task(4)
    def list_user_posts(self) -> None:
        self._get(f"/users/{random.choice(USERS)}/posts?limit=5", "GET /users/{user_id}/posts",
                  {200, 404}, content_type=None)

    @task(4)
    def get_post(self) -> None:
        user_id, post_id = random.choice(POSTS)
        self._get(f"/users/{user_id}/posts/{post_id}", "GET /users/{user_id}/posts/{post_id}",
                  {200, 404}, content_type=None)

    @task(3)
    def delete_user(self) -> None:
        # A user that does not exist (a fresh uuid): the seeded users stay for the reads.
        with self.client.delete(f"/users/{uuid.uuid4()}", name="DELETE /users/{user_id}",
                                catch_response=True) as response:
            _check(response, {404, 204}, content_type=None)

    # -- Advanced (25) ----------------------------------------------------------------------

    @task(7)
    def search(self) -> None:
        self._get("/search?q=toy&tags=dog|rubber&filters[category]=toys", "GET /search",
                  headers={"X-Trace-Id": str(uuid.uuid4())})

    @task(7)
    def get_item(self) -> None:
        self._get(f"/items/{random.choice(ITEMS)}", "GET /items/{id}")

    @task(5)
    def post_item(self) -> None:
        item = {"name": f"Toy {random.randint(1, 999)}", "category": "toys", "tags": ["dog"],
                "price": round(random.uniform(1, 50), 2)}
        with self.client.post(f"/items/{random.choice(ITEM_POOL)}", json=item,
                              name="POST /items/{id}", catch_response=True) as response:
            _check(response, {200, 201})

    @task(4)
    def admin_settings(self) -> None:
        self._get("/admin/settings", "GET /admin/settings")

    @task(2)
    def register_webhook(self) -> None:
        # NOTE: the server stores the URL and never calls it.
        hook = {"url": f"https://example.com/hooks/{uuid.uuid4()}", "events": ["pet.created"]}
        with self.client.post("/webhooks", json=hook, name="POST /webhooks",
                              catch_response=True) as response:
            _check(response, {201})

    # -- Path parameter styles (10) ---------------------------------------------------------

    @task(5)
    def label(self) -> None:
        self._get(f"/labels/.{random.choice(COLORS)}", "GET /labels/{color}")

    @task(5)
    def matrix(self) -> None:
        coords = ",".join(str(random.randint(0, 99)) for _ in range(random.randint(1, 5)))
        self._get(f"/matrix/;coords={coords}", "GET /matrix/{coords}")

    # -- Built-ins (10) ---------------------------------------------------------------------

    @task(7)
    def health(self) -> None:
        self._get("/health", "GET /health")

    @task(3)
    def metrics(self) -> None:
        self._get("/metrics", "GET /metrics", content_type="text/plain")

    # -- Docs and spec (10) -----------------------------------------------------------------

    @task(5)
    def docs(self) -> None:
        self._get("/docs", "GET /docs", content_type="text/html")

    @task(5)
    def openapi(self) -> None:
        self._get("/openapi.yaml", "GET /openapi.yaml", content_type="application/yaml")
