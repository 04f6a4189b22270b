"""Finding handlers: a package, a module, a path to either, or a mapping."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from brrt_actors import Response, SpecError, create_app
from brrt_actors.discovery import collect_functions, import_handlers_module, resolve_handlers
from brrt_actors.spec import load_spec
from brrt_actors.testing import Client

TESTS = Path(__file__).resolve().parent
SPEC = TESTS / "specs" / "discovery.yaml"
FIXTURES = TESTS / "fixtures_handlers"
POINTERS = {
    "list_things": "/paths/~1things/get",
    "create_thing": "/paths/~1things/post",
    "get_thing": "/paths/~1things~1{id}/get",
}


@pytest.fixture(autouse=True)
def fixtures_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(FIXTURES))
    yield
    # Each test imports the fixture packages afresh (by name or by path).
    for name in list(sys.modules):
        if name.startswith(("fx_", "brrt_handlers_fx_")):
            del sys.modules[name]


@pytest.fixture()
def client_for(apps: list[object]) -> Callable[..., Client]:
    """Build an app on the discovery spec with these handlers; an in-process client for it."""

    def _client_for(handlers: Any, **kwargs: Any) -> Client:
        app = create_app(SPEC, handlers, environ={}, **kwargs)
        apps.append(app)
        return Client(app)

    return _client_for


def origins(client: Client) -> dict[str, str]:
    """Which module answered each operation."""
    answers = {
        "list_things": client.get("/things"),
        "get_thing": client.get("/things/5"),
        "create_thing": client.post("/things"),
        "ping": client.get("/ping"),
    }
    for name, response in answers.items():
        assert response.status in (200, 201), (name, response)
    found = {name: response.json() for name, response in answers.items()}
    assert found["get_thing"]["id"] == 5
    return {name: (body[0] if isinstance(body, list) else body)["from"]
            for name, body in found.items()}


# -- the forms of the handlers argument ----------------------------------------------------

def test_package_name_with_submodules(client_for: Callable[..., Client]) -> None:
    assert origins(client_for("fx_shop")) == {
        "list_things": "fx_shop.things",
        "get_thing": "fx_shop.things",
        "create_thing": "fx_shop.nested.deep",  # x-handler, in a nested package
        "ping": "fx_shop",
    }


def test_package_folder_path(client_for: Callable[..., Client]) -> None:
    assert origins(client_for(str(FIXTURES / "fx_shop")))["create_thing"] == "fx_shop.nested.deep"
    assert origins(client_for(FIXTURES / "fx_shop"))["get_thing"] == "fx_shop.things"


def test_package_folder_path_not_on_sys_path(client_for: Callable[..., Client],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(FIXTURES)])
    assert origins(client_for(f"{FIXTURES}/fx_shop/"))["ping"] == "fx_shop"
    assert str(FIXTURES) in sys.path  # put there so the package can import itself


def test_module_name(client_for: Callable[..., Client]) -> None:
    assert set(origins(client_for("fx_single")).values()) == {"fx_single"}


def test_submodule_name(client_for: Callable[..., Client]) -> None:
    # A module inside a package: only its own functions.
    _, missing = resolve_handlers(load_spec(SPEC).operations, "fx_shop.things")
    assert sorted(op.operation_id for op in missing) == ["create_thing", "ping"]


def test_py_file_path(client_for: Callable[..., Client]) -> None:
    assert set(origins(client_for(str(FIXTURES / "fx_single.py"))).values()) == {"fx_single"}


def test_module_object(client_for: Callable[..., Client]) -> None:
    import fx_single  # type: ignore[import-not-found]

    assert set(origins(client_for(fx_single)).values()) == {"fx_single"}


def test_mapping(client_for: Callable[..., Client]) -> None:
    handlers = {
        "list_things": lambda request: [{"id": 1, "from": "dict"}],
        "get_thing": lambda request: {"id": request.path_params["id"], "from": "dict"},
        # A mapping is keyed by handler name: the x-handler when the operation has one.
        "make_thing": lambda request: Response(201, {"id": 3, "from": "dict"}),
        "ping": lambda request: {"from": "dict"},
    }
    assert set(origins(client_for(handlers)).values()) == {"dict"}


def test_mapping_keyed_by_operation_id(client_for: Callable[..., Client]) -> None:
    import fx_single  # type: ignore[import-not-found]

    handlers = {"list_things": fx_single.list_things, "get_thing": fx_single.get_thing,
                "create_thing": fx_single.make_thing, "ping": fx_single.ping}
    assert set(origins(client_for(handlers)).values()) == {"fx_single"}


# -- what counts as a handler --------------------------------------------------------------

def test_private_functions_are_ignored() -> None:
    found = collect_functions(import_handlers_module("fx_shop"))
    assert "_hidden" not in found and "_thing" not in found
    assert {"list_things", "get_thing", "make_thing", "ping"} <= set(found)


def test_private_function_does_not_serve_an_operation(tmp_path: Path) -> None:
    spec = tmp_path / "private.yaml"
    spec.write_text(SPEC.read_text().replace("operationId: ping", "operationId: _hidden"))
    _, missing = resolve_handlers(load_spec(spec).operations, "fx_single")
    assert [op.operation_id for op in missing] == ["_hidden"]


def test_reexported_function_is_not_a_clash() -> None:
    # fx_shop/__init__.py imports list_things from fx_shop.things: the same function.
    found = collect_functions(import_handlers_module("fx_shop"))
    assert found["list_things"].__module__ == "fx_shop.things"


def test_two_functions_for_one_operation() -> None:
    with pytest.raises(SpecError) as info:
        resolve_handlers(load_spec(SPEC).operations, "fx_clash")
    assert len(info.value.problems) == 1  # helper clashes too, but no operation wants it
    message = str(info.value)
    assert "'get_thing'" in message
    assert "fx_clash.a" in message and "fx_clash.b" in message
    with pytest.raises(SpecError, match="'helper'"):
        collect_functions(import_handlers_module("fx_clash"))


def test_clash_stops_create_app(client_for: Callable[..., Client]) -> None:
    with pytest.raises(SpecError, match=r"fx_clash\.a.*fx_clash\.b"):
        client_for("fx_clash", mock=True)


# -- missing handlers ----------------------------------------------------------------------

def test_missing_handlers_listed_together(client_for: Callable[..., Client]) -> None:
    with pytest.raises(SpecError) as info:
        client_for("fx_partial")
    problems = dict(info.value.problems)
    assert set(problems) == set(POINTERS.values())
    for operation_id, pointer in POINTERS.items():
        assert f"{operation_id!r}" in problems[pointer]
    # The x-handler name is the function to define.
    assert "'make_thing'" in problems[POINTERS["create_thing"]]
    assert "--mock" in problems[POINTERS["get_thing"]]
    message = str(info.value)
    assert message.startswith("3 problems:")
    assert "GET /things/{id}" in message and "POST /things" in message


def test_no_handlers_at_all(client_for: Callable[..., Client]) -> None:
    with pytest.raises(SpecError) as info:
        client_for(None)
    assert len(info.value.problems) == 4


def test_mock_fills_missing_handlers(client_for: Callable[..., Client],
                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        client = client_for("fx_partial", mock=True)
    assert client.get("/ping").json() == {"from": "fx_partial"}  # the real handler
    thing = client.get("/things/5")
    assert thing.status == 200 and thing.json() == {"id": 7, "from": "example"}
    assert client.post("/things").status == 201
    assert client.get("/things").status == 200


# -- bad handlers arguments ----------------------------------------------------------------

@pytest.mark.parametrize(("target", "match"), [
    ("fx_does_not_exist", "cannot import handlers 'fx_does_not_exist'"),
    ("fx_shop.nope", "cannot import handlers 'fx_shop.nope'"),
    (str(FIXTURES / "missing.py"), "neither a package folder nor a .py file"),
    (str(FIXTURES / "README.md"), "neither a package folder nor a .py file"),
])
def test_bad_target(target: str, match: str) -> None:
    with pytest.raises(SpecError, match=match) as info:
        import_handlers_module(target)
    assert info.value.problems[0][0] == "--handlers"


def test_plain_folder_of_modules(client_for: Callable[..., Client], tmp_path: Path) -> None:
    # No __init__.py: the folder is a namespace package named after it (PEP 420).
    folder = tmp_path / "fx_plain"
    folder.mkdir()
    (folder / "things.py").write_text(
        "def list_things(request):\n    return [{'id': 1, 'from': __name__}]\n\n"
        "def get_thing(request):\n    return {'id': request.path_params['id'], "
        "'from': __name__}\n")
    (folder / "more.py").write_text(
        "from fx_plain.things import list_things  # a sibling's function: the same one\n\n"
        "from brrt_actors import Response\n\n"
        "def make_thing(request):\n    return Response(201, {'id': 2, 'from': __name__})\n\n"
        "def ping(request):\n    return {'from': __name__}\n")
    assert origins(client_for(str(folder))) == {
        "list_things": "fx_plain.things", "get_thing": "fx_plain.things",
        "create_thing": "fx_plain.more", "ping": "fx_plain.more"}


def test_folder_whose_name_is_not_a_python_name(tmp_path: Path) -> None:
    folder = tmp_path / "my-handlers"
    folder.mkdir()
    with pytest.raises(SpecError, match="'my-handlers' is not a Python name"):
        import_handlers_module(str(folder))


def test_submodule_that_cannot_import(tmp_path: Path) -> None:
    package = tmp_path / "fx_broken"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "ok.py").write_text("def ping(request):\n    return {}\n")
    (package / "bad.py").write_text("import fx_no_such_dependency\n")
    with pytest.raises(SpecError, match=r"fx_broken\.bad.*fx_no_such_dependency"):
        resolve_handlers(load_spec(SPEC).operations, str(package))


def test_folder_shadowed_by_an_imported_module(tmp_path: Path) -> None:
    # A folder named like a module already imported must not silently be that module.
    package = tmp_path / "json"
    package.mkdir()
    (package / "__init__.py").write_text("def ping(request):\n    return {}\n")
    with pytest.raises(SpecError, match="already the module"):
        import_handlers_module(str(package))
