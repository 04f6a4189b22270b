from __future__ import annotations

import pytest

from brrt_actors.errors import SpecError
from brrt_actors.router import Router


def build(*routes: tuple[str, str]) -> Router[str]:
    router: Router[str] = Router()
    for method, template in routes:
        router.add(method, template, f"{method} {template}")
    router.finish(lambda declared: ["OPTIONS"])
    return router


def test_static_and_parameter_routes() -> None:
    router = build(("GET", "/pets"), ("GET", "/pets/{id}"), ("POST", "/pets"))
    match = router.lookup("/pets/42")
    assert match is not None
    assert match.methods["GET"] == "GET /pets/{id}"
    assert match.raw_params == {"id": "42"}
    match = router.lookup("/pets")
    assert match is not None and set(match.methods) == {"GET", "POST"}
    assert match.allow == "GET, OPTIONS, POST"


def test_static_segment_wins_over_parameter() -> None:
    router = build(("GET", "/pets/{id}"), ("GET", "/pets/mine"))
    assert router.lookup("/pets/mine").methods["GET"] == "GET /pets/mine"  # type: ignore[union-attr]
    assert router.lookup("/pets/7").methods["GET"] == "GET /pets/{id}"  # type: ignore[union-attr]


def test_backtracks_from_dead_static_branch() -> None:
    router = build(("GET", "/a/static/x"), ("GET", "/a/{p}/y"))
    match = router.lookup("/a/static/y")
    assert match is not None and match.raw_params == {"p": "static"}


def test_unknown_paths_and_trailing_slash() -> None:
    router = build(("GET", "/pets"), ("GET", "/pets/{id}"))
    assert router.lookup("/nope") is None
    assert router.lookup("/pets/") is None  # no silent trailing-slash match
    assert router.lookup("//pets") is None  # no double-slash folding
    assert router.lookup("/pets/1/extra") is None


def test_declared_trailing_slash_matches() -> None:
    router = build(("GET", "/pets/"))
    assert router.lookup("/pets/") is not None
    assert router.lookup("/pets") is None


def test_parameters_stay_raw_for_later_decoding() -> None:
    router = build(("GET", "/files/{name}"))
    match = router.lookup("/files/a%2Fb")
    assert match is not None and match.raw_params == {"name": "a%2Fb"}


def test_parameter_with_literal_prefix_and_suffix() -> None:
    router = build(("GET", "/report.{format}"), ("GET", "/v{version}/items"))
    assert router.lookup("/report.json").raw_params == {"format": "json"}  # type: ignore[union-attr]
    assert router.lookup("/v2/items").raw_params == {"version": "2"}  # type: ignore[union-attr]
    assert router.lookup("/report.") is None


def test_conflicting_parameter_names_are_a_start_error() -> None:
    with pytest.raises(SpecError, match="use one name"):
        build(("GET", "/pets/{id}"), ("GET", "/pets/{pet_id}/toys"))


def test_duplicate_route_is_a_start_error() -> None:
    router: Router[str] = Router()
    router.add("GET", "/pets", "a")
    with pytest.raises(SpecError, match="declared twice"):
        router.add("GET", "/pets", "b")


def test_two_parameters_in_one_segment_are_refused() -> None:
    with pytest.raises(SpecError, match="exactly one"):
        build(("GET", "/x/{a}-{b}"))


def test_root_route() -> None:
    router = build(("GET", "/"))
    assert router.lookup("/") is not None
    assert router.lookup("") is None


def test_routes_listing_is_sorted() -> None:
    router = build(("POST", "/b"), ("GET", "/a/{x}"), ("GET", "/b"))
    assert [(m, t) for m, t, _ in router.routes()] == [
        ("GET", "/a/{x}"), ("GET", "/b"), ("POST", "/b")]


@pytest.mark.parametrize("count", [10, 100, 1000])
def test_lookup_finds_every_route_in_large_trees(count: int) -> None:
    router: Router[int] = Router()
    for i in range(count):
        router.add("GET", f"/r{i}/items/{{id}}", i)
    for i in range(0, count, max(1, count // 10)):
        match = router.lookup(f"/r{i}/items/5")
        assert match is not None and match.methods["GET"] == i


def test_a_failed_branch_leaves_no_parameter_behind() -> None:
    router: Router[str] = Router()
    router.add("GET", "/v1/{a}/b/{c}/d", "first")
    router.add("GET", "/v1/{a}/{e}/{f}/g", "second")
    match = router.lookup("/v1/1/b/2/g")  # "/b/{c}" is tried first and dead-ends at "g"
    assert match is not None and match.methods == {"GET": "second"}
    assert match.raw_params == {"a": "1", "e": "b", "f": "2"}
    assert router.lookup("/v1/1/b/2/d").raw_params == {"a": "1", "c": "2"}  # type: ignore[union-attr]
    assert router.lookup("/v1//b/2/d") is None  # an empty segment fills no parameter


def test_a_static_route_added_after_a_parameter_still_wins() -> None:
    router: Router[str] = Router()
    router.add("GET", "/pets/{id}", "item")
    assert router.lookup("/pets/mine").methods == {"GET": "item"}  # type: ignore[union-attr]
    router.add("GET", "/pets/mine", "mine")
    router.add("GET", "/pets/{id}/toys", "toys")
    assert router.lookup("/pets/mine").methods == {"GET": "mine"}  # type: ignore[union-attr]
    assert router.lookup("/pets/mine/toys").raw_params == {"id": "mine"}  # type: ignore[union-attr]
    assert router.lookup("/pets/") is None
