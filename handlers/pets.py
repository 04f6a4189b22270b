"""Pets: list, add, get."""
from __future__ import annotations

from typing import Any

from brrt_actors import HTTPError, Request, Response

from ._paging import Page
from ._store import STORE


def list_pets(request: Request) -> list[dict[str, Any]]:
    """List pets in id order; with `tags`, only those carrying every given tag."""
    wanted = set(request.query.get("tags") or ())
    # NOTE: ids only grow and dicts keep insertion order, so the store is already in id
    # order: no sort, and the page is taken lazily (the store grows under load tests).
    pets = (pet for pet in STORE.pets.values() if wanted <= set(pet["tags"]))
    return Page(request).of_iterable(pets)


def add_pet(request: Request) -> Response:
    """Create a pet from a NewPet body; answer 201 with its Location."""
    body: dict[str, Any] = request.body
    pet: dict[str, Any] = {
        "id": next(STORE.pet_ids),
        "name": body["name"],
        "breed": body.get("breed", "Mixed"),
        "vaccinated": body.get("vaccinated", False),
        "tags": list(body.get("tags", [])),
    }
    if "age" in body:
        pet["age"] = body["age"]
    STORE.add_pet(pet)
    return Response(201, pet, {"Location": f"/pets/{pet['id']}"})


def get_pet(request: Request) -> dict[str, Any]:
    """Return one pet, or 404."""
    pet_id: int = request.path_params["id"]
    pet = STORE.pets.get(pet_id)
    if pet is None:
        raise HTTPError(404, f"pet {pet_id} not found")
    return pet
