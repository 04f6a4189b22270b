"""The router's one-lookup path for "/static/.../{param}" answers as the tree walk does.

The walk is the reference (`tests/test_router_properties.py` checks it against a plain
scan); here the same generated tables are looked up with the shortcut on and off.
``PROPERTY_EXAMPLES`` sets the examples per test.
"""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from test_router_properties import PROPERTY, SEGMENT_TEXT, STATIC, TEMPLATES, Template, build

from brrt_actors.router import Router


def _walk_only(templates: list[Template]) -> Router[str]:
    router = build(templates)
    router.lookup("/")  # NOTE: builds the shortcut's table once ...
    router._tails = {}  # ... then empties it: every lookup walks the tree
    return router


@PROPERTY
@given(TEMPLATES, st.lists(st.lists(st.sampled_from(STATIC) | SEGMENT_TEXT | st.just(""),
                                    min_size=1, max_size=5), min_size=1, max_size=8))
def test_the_shortcut_answers_as_the_walk(templates: list[Template],
                                          paths: list[list[str]]) -> None:
    fast, walk = build(templates), _walk_only(templates)
    for segments in paths:
        path = "/" + "/".join(segments)
        assert fast.lookup(path) == walk.lookup(path), path


def test_a_route_added_after_a_lookup_is_found() -> None:
    router: Router[str] = Router()
    router.add("GET", "/pets/{id}", "pet")
    assert router.lookup("/pets/7") is not None
    router.add("GET", "/pets/mine", "mine")  # NOTE: "/pets" has a static child now
    router.add("GET", "/owners/{id}", "owner")
    mine, pet, owner = (router.lookup(path) for path in ("/pets/mine", "/pets/7", "/owners/1"))
    assert mine is not None and mine.template == "/pets/mine"
    assert pet is not None and (pet.template, pet.raw_params) == ("/pets/{id}", {"id": "7"})
    assert owner is not None and owner.raw_params == {"id": "1"}


def test_the_shortcut_leaves_empty_and_deeper_segments_to_the_walk() -> None:
    router: Router[str] = Router()
    router.add("GET", "/pets/{id}", "pet")
    router.add("GET", "/{a}/{b}/{c}", "deep")
    assert router.lookup("/pets/") is None
    deep = router.lookup("/pets/7/x")
    assert deep is not None and deep.raw_params == {"a": "pets", "b": "7", "c": "x"}
    assert router.lookup("pets/7") is None  # NOTE: no leading slash: never a route
