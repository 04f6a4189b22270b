"""The sample pet store (specs/petstore.yaml + handlers/) through the in-process client."""
from __future__ import annotations

import http.client
import importlib
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PETSTORE_BEARER_SECRET, PETSTORE_OAUTH2_SECRET, Serve

from brrt_actors import create_app
from brrt_actors.security.jwt import mint_token
from brrt_actors.spec import load_spec
from brrt_actors.spec.effective import operation_statuses
from brrt_actors.testing import Client, TestResponse
from brrt_actors.validation import compile_validator

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "petstore.yaml"
CONFIG = ROOT / "specs" / "petstore.config.yaml"
HANDLERS = ROOT / "handlers"
KEY = {"X-API-Key": "test123"}

JOHN = "0b6f1c9e-1b4e-4a47-9a8c-5a1f3c2e7d10"
JANE = "5d3c2a1b-8e7f-4c6d-9b0a-1f2e3d4c5b6a"
CHEW_TOY = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
GUIDE = "c56a4180-65aa-42ec-a945-5fd21dec0538"
NEW_ITEM = "0d1c2b3a-4f5e-4d6c-8b7a-9f8e7d6c5b4a"
TRACE = "11111111-2222-4333-8444-555555555555"


@pytest.fixture()
def client(apps: list[object], petstore_env: dict[str, str]) -> Client:
    app = create_app(SPEC, handlers=str(HANDLERS), environ=petstore_env)
    apps.append(app)
    # The store is module state: every test starts from the seed data.
    importlib.import_module("handlers._store").STORE.reset()
    return Client(app, headers=KEY)


def problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status == status, response
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# -- pets ----------------------------------------------------------------------------------

def test_add_pet_then_get_it(client: Client) -> None:
    created = client.post("/pets", json={"name": "Luna", "breed": "Poodle", "age": 1,
                                         "tags": ["puppy"]})
    assert created.status == 201, created
    pet = created.json()
    assert pet["name"] == "Luna" and pet["breed"] == "Poodle" and pet["id"] >= 4
    assert created.headers["location"] == f"/pets/{pet['id']}"
    fetched = client.get(created.headers["location"])
    assert fetched.status == 200
    assert fetched.json() == pet


def test_add_pet_applies_defaults(client: Client) -> None:
    pet = client.post("/pets", json={"name": "Nemo"}).json()
    assert pet["breed"] == "Mixed" and pet["vaccinated"] is False and pet["tags"] == []
    assert "age" not in pet


def test_add_pet_refuses_bad_bodies(client: Client) -> None:
    body = problem(client.post("/pets", json={"breed": "Dragon", "colour": "red"}), 400)
    assert len(body["errors"]) >= 3  # missing name, breed not in enum, unknown field
    problem(client.post("/pets", data=b"{not json", content_type="application/json"), 400)


def test_unknown_pet_is_404(client: Client) -> None:
    body = problem(client.get("/pets/42"), 404)
    assert body["detail"] == "pet 42 not found"
    assert body["instance"] == "/pets/42"
    assert body["request_id"]


def test_pet_id_must_be_an_integer(client: Client) -> None:
    body = problem(client.get("/pets/abc"), 400)
    assert any(e.get("name") == "id" and e.get("in") == "path" for e in body["errors"])


def test_list_pets_pages(client: Client) -> None:
    assert [p["id"] for p in client.get("/pets").json()] == [1, 2, 3]
    assert [p["id"] for p in client.get("/pets", query={"limit": 2}).json()] == [1, 2]
    assert [p["id"] for p in client.get("/pets", query={"limit": 2, "offset": 2}).json()] == [3]
    assert client.get("/pets", query={"offset": 10}).json() == []


def test_list_pets_filters_by_tags(client: Client) -> None:
    assert [p["id"] for p in client.get("/pets?tags=friendly").json()] == [1, 3]
    assert [p["id"] for p in client.get("/pets?tags=friendly&tags=trained").json()] == [1]
    assert client.get("/pets?tags=grumpy").json() == []


def test_bad_limit_is_a_problem_listing_every_error(client: Client) -> None:
    body = problem(client.get("/pets", query={"limit": 1000}), 400)
    assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", "limit")]
    problem(client.get("/pets", query={"limit": "ten"}), 400)
    body = problem(client.get("/pets", query={"limit": 0, "offset": -1}), 400)
    assert {e["name"] for e in body["errors"]} == {"limit", "offset"}


# -- security ------------------------------------------------------------------------------

def test_missing_api_key_is_401(client: Client) -> None:
    problem(client.get("/pets", headers={"X-API-Key": ""}), 401)
    bare = Client(client.app)
    problem(bare.get("/pets"), 401)
    problem(bare.get("/secure"), 401)
    problem(bare.get("/pets/abc"), 401)  # security comes before parameter errors
    problem(client.get("/pets", headers={"X-API-Key": "wrong"}), 401)


def token(secret: str = PETSTORE_BEARER_SECRET, ttl_s: int = 600, **claims: Any) -> str:
    now = int(time.time())
    return mint_token(secret, {"sub": "alice", "iat": now, "exp": now + ttl_s, **claims})


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_secure_endpoint_says_who_got_in(client: Client) -> None:
    response = client.get("/secure", headers=bearer(token(scope="read write")))
    assert response.status == 200, response
    assert response.json() == {"status": "ok", "scheme": "BearerAuth", "subject": "alice",
                               "scopes": ["read", "write"]}


def test_secure_endpoint_takes_bearer_or_oauth2_with_read(client: Client) -> None:
    # BearerAuth: any valid token, scopes or not.
    assert client.get("/secure", headers=bearer(token())).json()["scheme"] == "BearerAuth"
    # OAuth2: a token of the OAuth2 scheme, with the `read` scope.
    oauth2 = client.get("/secure", headers=bearer(token(PETSTORE_OAUTH2_SECRET, scope="read")))
    assert oauth2.status == 200, oauth2
    assert oauth2.json() == {"status": "ok", "scheme": "OAuth2", "subject": "alice",
                             "scopes": ["read"]}
    # The API key that opens every other operation does not open this one.
    body = problem(client.get("/secure"), 401)
    assert body["detail"] == "missing or invalid credentials"


def test_oauth2_token_without_read_is_403(client: Client) -> None:
    response = client.get("/secure", headers=bearer(token(PETSTORE_OAUTH2_SECRET,
                                                          scope="write")))
    body = problem(response, 403)
    assert body["detail"] == "the credentials lack a required scope"
    assert response.headers["www-authenticate"] == (
        'Bearer realm="OAuth2", error="insufficient_scope", scope="read"')


def test_expired_token_is_401_invalid_token(client: Client) -> None:
    response = client.get("/secure", headers=bearer(token(ttl_s=-3600)))
    body = problem(response, 401)
    # Both schemes saw a token they could not accept; neither says why in the body.
    assert response.headers["www-authenticate"] == (
        'Bearer realm="BearerAuth", error="invalid_token", '
        'Bearer realm="OAuth2", error="invalid_token"')
    assert body["detail"] == "missing or invalid credentials"
    assert "expired" not in response.text.lower()


def test_missing_token_challenges_both_schemes(client: Client) -> None:
    response = Client(client.app).get("/secure")
    problem(response, 401)
    assert response.headers["www-authenticate"] == (
        'Bearer realm="BearerAuth", Bearer realm="OAuth2"')


def test_config_file_supplies_the_key(apps: list[object]) -> None:
    app = create_app(SPEC, handlers=str(HANDLERS), environ={}, config_file=CONFIG)
    apps.append(app)
    assert Client(app, headers=KEY).get("/pets/1").status == 200
    assert Client(app).get("/pets/1").status == 401


def test_config_file_supplies_the_jwt_secrets(apps: list[object]) -> None:
    config = yaml.safe_load(CONFIG.read_text())["security"]
    app = create_app(SPEC, handlers=str(HANDLERS), environ={}, config_file=CONFIG)
    apps.append(app)
    client = Client(app)
    bearer_secret = config["bearer"]["BearerAuth"]["secret"]
    oauth2_secret = config["oauth2"]["OAuth2"]["secret"]
    assert client.get("/secure", headers=bearer(token(bearer_secret))).status == 200
    assert client.get("/secure", headers=bearer(token(oauth2_secret, scope="read"))).status == 200
    assert client.get("/secure", headers=bearer(token(oauth2_secret))).status == 403
    assert client.get("/secure", headers=bearer(token(PETSTORE_BEARER_SECRET))).status == 401


# -- users and posts -----------------------------------------------------------------------

def test_delete_user_then_404(client: Client) -> None:
    assert client.get(f"/users/{JANE}").json()["name"] == "Jane"
    deleted = client.delete(f"/users/{JANE}")
    assert deleted.status == 204 and deleted.body == b""
    body = problem(client.get(f"/users/{JANE}"), 404)
    assert JANE in body["detail"]
    problem(client.delete(f"/users/{JANE}"), 404)
    problem(client.get(f"/users/{JANE}/posts"), 404)
    assert JANE not in [u["id"] for u in client.get("/users").json()["users"]]


def test_user_id_must_be_a_uuid(client: Client) -> None:
    problem(client.get("/users/abc-123"), 400)


def test_list_users_pages(client: Client) -> None:
    page = client.get("/users", query={"limit": 1, "offset": 1}).json()
    assert page["total"] == 3
    assert [u["name"] for u in page["users"]] == ["Jane"]


def test_head_and_options_user(client: Client) -> None:
    head = client.head(f"/users/{JOHN}")
    assert head.status == 200 and head.body == b""
    assert client.head("/users/00000000-0000-4000-8000-000000000000").status == 404
    options = client.options(f"/users/{JOHN}")
    assert options.status == 204
    assert set(options.headers["allow"].replace(" ", "").split(",")) == {
        "GET", "HEAD", "DELETE", "OPTIONS"}


def test_posts_of_a_user(client: Client) -> None:
    posts = client.get(f"/users/{JOHN}/posts").json()
    assert [p["id"] for p in posts] == ["post-1", "post-2"]
    assert client.get(f"/users/{JOHN}/posts", query={"limit": 1}).json() == posts[:1]
    assert client.get(f"/users/{JOHN}/posts/post-2").json()["title"] == "Max at the beach"
    problem(client.get(f"/users/{JANE}/posts/post-2"), 404)  # not hers
    problem(client.get(f"/users/{JOHN}/posts/hello"), 400)  # post ids look like post-<n>


# -- items and search ----------------------------------------------------------------------

def test_post_item_creates_then_replaces(client: Client) -> None:
    created = client.post(f"/items/{NEW_ITEM}", json={"name": "Ball", "price": 2.5})
    assert created.status == 201
    assert created.headers["location"] == f"/items/{NEW_ITEM}"
    assert created.json() == {"id": NEW_ITEM, "name": "Ball", "price": 2.5}
    replaced = client.post(f"/items/{NEW_ITEM}", json={"name": "Big ball"})
    assert replaced.status == 200 and replaced.json()["name"] == "Big ball"
    assert client.get(f"/items/{NEW_ITEM}").json()["name"] == "Big ball"
    problem(client.get("/items/00000000-0000-4000-8000-000000000000"), 404)


def test_search_with_pipe_delimited_tags_and_deep_object_filters(client: Client) -> None:
    def names(target: str, **kwargs: Any) -> list[str]:
        response = client.get(target, **kwargs)
        assert response.status == 200, response
        return [item["name"] for item in response.json()["results"]]

    assert names("/search") == ["Chew toy", "Cat tree", "Leash"]
    assert names("/search?tags=dog") == ["Chew toy", "Leash"]
    assert names("/search?tags=dog|rubber") == ["Chew toy"]
    assert names("/search?filters[category]=accessories") == ["Leash"]
    assert names("/search?filters[category]=toys&filters[name]=Chew%20toy") == ["Chew toy"]
    assert names("/search?q=TREE") == ["Cat tree"]
    assert names("/search?tags=dog&filters[category]=furniture") == []
    traced = client.get("/search?q=leash", headers={"X-Trace-Id": TRACE,
                                                    "Cookie": "session=abc"})
    assert traced.json() == {"results": [client.get("/search?q=leash").json()["results"][0]],
                             "total": 1, "trace_id": TRACE}
    problem(client.get("/search", headers={"X-Trace-Id": "not-a-uuid"}), 400)


# -- forms, files, parameter styles, events --------------------------------------------------

def test_form(client: Client) -> None:
    response = client.post("/form", data={"name": "Ann", "age": "34", "newsletter": "true"})
    assert response.status == 200, response
    assert response.json() == {"ok": True, "name": "Ann", "age": 34, "newsletter": True}
    assert client.post("/form", data={"name": "Bob"}).json() == {"ok": True, "name": "Bob"}
    problem(client.post("/form", data={"age": "old"}), 400)


def test_multipart_upload_then_download(client: Client) -> None:
    content = b"\x89PNG not really"
    uploaded = client.post("/upload", data={"description": "Max at the beach"},
                           files={"file": ("max.png", content, "image/png")})
    assert uploaded.status == 201, uploaded
    info = uploaded.json()
    assert info["filename"] == "max.png" and info["content_type"] == "image/png"
    assert info["size"] == len(content) and info["description"] == "Max at the beach"
    assert uploaded.headers["location"] == info["url"] == f"/download/{info['id']}"
    assert client.get(info["url"]).json() == info
    raw = client.get(info["url"], headers={"Accept": "application/octet-stream"})
    assert raw.status == 200 and raw.body == content
    assert raw.headers["content-type"] == "application/octet-stream"
    problem(client.post("/upload", data={"description": "no file"},
                        files={"other": ("x.txt", b"x")}), 400)


def test_download_seeded_file(client: Client) -> None:
    info = client.get(f"/download/{GUIDE}").json()
    assert info["filename"] == "pet-care-guide.txt"
    problem(client.get("/download/00000000-0000-4000-8000-000000000000"), 404)


def test_matrix_and_label(client: Client) -> None:
    assert client.get("/matrix/;coords=1,2,3").json() == {"coords": [1, 2, 3], "sum": 6}
    assert client.get("/labels/.red").json() == {"color": "red"}
    problem(client.get("/matrix/;coords=1,x"), 400)


def test_events_stream_is_finite(client: Client) -> None:
    client.post("/pets", json={"name": "Luna"})
    response = client.get("/events", query={"count": 2})
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block]
    assert len(events) == 2
    assert events[-1].startswith("id: 4\nevent: pet.created\ndata: ")
    assert '"name": "Luna"' in events[-1]
    # NOTE: without `count` the stream is live (tests/test_sse.py reads it over a socket).
    assert len([b for b in client.get("/events", query={"count": 3}).text.split("\n\n")
                if b]) == 3


def test_register_webhook(client: Client) -> None:
    response = client.post("/webhooks", json={"url": "https://example.com/hook"})
    assert response.status == 201
    hook = response.json()
    assert re.fullmatch(r"sub_[0-9a-f]{8}", hook["subscription_id"])
    assert hook["events"] == ["pet.created", "pet.updated"]
    problem(client.post("/webhooks", json={"url": "https://example.com/hook",
                                           "events": ["pet.eaten"]}), 400)


# -- the whole spec ------------------------------------------------------------------------

GOOD_REQUESTS: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("list_pets", "GET", "/pets", {}, 200),
    ("add_pet", "POST", "/pets", {"json": {"name": "Luna"}}, 201),
    ("get_pet", "GET", "/pets/1", {}, 200),
    ("list_users", "GET", "/users", {}, 200),
    ("get_user", "GET", f"/users/{JOHN}", {}, 200),
    ("head_user", "HEAD", f"/users/{JOHN}", {}, 200),
    ("options_user", "OPTIONS", f"/users/{JOHN}", {}, 204),
    ("list_user_posts", "GET", f"/users/{JOHN}/posts", {}, 200),
    ("get_post", "GET", f"/users/{JOHN}/posts/post-1", {}, 200),
    ("delete_user", "DELETE", f"/users/{JOHN}", {}, 204),
    ("admin_settings", "GET", "/admin/settings", {}, 200),
    ("get_item", "GET", f"/items/{CHEW_TOY}", {}, 200),
    ("post_item", "POST", f"/items/{CHEW_TOY}", {"json": {"name": "Chew toy 2"}}, 200),
    ("stream_events", "GET", "/events?count=3", {}, 200),  # NOTE: without count: live
    ("download_file", "GET", f"/download/{GUIDE}", {}, 200),
    ("submit_form", "POST", "/form", {"data": {"name": "Ann"}}, 200),
    ("upload_file", "POST", "/upload", {"files": {"file": ("a.txt", b"hello", "text/plain")}},
     201),
    ("get_matrix", "GET", "/matrix/;coords=4", {}, 200),
    ("get_label", "GET", "/labels/.blue", {}, 200),
    ("search", "GET", "/search?tags=dog", {}, 200),
    ("secure_endpoint", "GET", "/secure", {"headers": bearer(token(ttl_s=86400))}, 200),
    ("register_webhook", "POST", "/webhooks", {"json": {"url": "https://example.com/h"}}, 201),
]


def test_good_requests_cover_every_operation() -> None:
    document = yaml.safe_load(SPEC.read_text())
    declared = {op["operationId"] for item in document["paths"].values()
                for op in item.values() if isinstance(op, dict) and "operationId" in op}
    assert declared == {row[0] for row in GOOD_REQUESTS}
    assert len(declared) == 22


@pytest.mark.parametrize(("operation_id", "method", "target", "kwargs", "status"), GOOD_REQUESTS,
                         ids=[row[0] for row in GOOD_REQUESTS])
def test_every_operation_answers_a_good_request(client: Client, operation_id: str, method: str,
                                                target: str, kwargs: dict[str, Any],
                                                status: int) -> None:
    # Response validation is on: an answer that broke the spec would be a 500 here.
    response = client.request(method, target, **kwargs)
    assert response.status == status, response


def test_spec_leaves_health_to_the_runtime(client: Client) -> None:
    document = yaml.safe_load(SPEC.read_text())
    assert "/health" not in document["paths"]
    assert [server["url"] for server in document["servers"]] == ["/"]
    assert client.get("/health").status == 200


def test_mock_mode_serves_every_operation(apps: list[object], petstore_env: dict[str, str]
                                          ) -> None:
    app = create_app(SPEC, mock=True, environ=petstore_env)
    apps.append(app)
    mock = Client(app, headers=KEY)
    for _, method, target, kwargs, _ in GOOD_REQUESTS:
        response = mock.request(method, target, **kwargs)
        assert 200 <= response.status < 300, (target, response)


def test_added_records_are_bounded_and_the_seed_data_stays(client: Client,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    store = importlib.import_module("handlers._store").STORE
    monkeypatch.setattr(store, "max_records", 2)
    store.reset()
    ids = [client.post("/pets", json={"name": f"P{n}"}).json()["id"] for n in range(3)]
    assert client.get(f"/pets/{ids[0]}").status == 404  # the oldest added one is forgotten
    assert [client.get(f"/pets/{pet_id}").status for pet_id in ids[1:]] == [200, 200]
    assert [pet["id"] for pet in client.get("/pets").json()] == [1, 2, 3, *ids[1:]]
    events = [block for block in client.get("/events", query={"count": 5}).text.split("\n\n")
              if block]
    assert [event.split("\n", 1)[0] for event in events] == ["id: 5", "id: 6"]
    hooks = [client.post("/webhooks", json={"url": f"https://example.com/{n}"}).json()
             for n in range(3)]
    assert list(store.webhooks) == [hook["subscription_id"] for hook in hooks[1:]]


# -- what the runtime answers, declared; text and numbers no answer could carry (issue 9) ----

def test_every_operation_declares_the_statuses_the_runtime_answers_for_it() -> None:
    spec = load_spec(SPEC)
    for operation in spec.operations:
        declared = {key.upper() for key in operation.responses}
        missing = [status for status in operation_statuses(operation)
                   if str(status) not in declared and f"{str(status)[0]}XX" not in declared]
        assert missing == [], operation.operation_id
    add_pet = next(op for op in spec.operations if op.operation_id == "add_pet")
    assert operation_statuses(add_pet) == (400, 401, 413, 415, 500, 503, 504)


def test_the_runtimes_answers_validate_against_the_declared_problem(client: Client) -> None:
    spec = load_spec(SPEC)
    add_pet = next(op for op in spec.operations if op.operation_id == "add_pet")
    answers = {400: client.post("/pets", json={"name": 5, "colour": "red"}),
               401: client.post("/pets", json={"name": "Rex"}, headers={"X-API-Key": "no"}),
               415: client.post("/pets", data=b"name=Rex", content_type="text/plain")}
    for status, response in answers.items():
        schema = add_pet.responses[str(status)].content["application/problem+json"].schema
        assert schema is not None
        assert compile_validator(schema).errors(problem(response, status)) == [], status


def send(server: Any, method: str, target: str, body: bytes | None = None) -> tuple[int, Any]:
    """One request over a real socket; the answer's status and its body, read as strict JSON."""
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        headers = {**KEY, "Content-Type": "application/json"} if body is not None else KEY
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    # NOTE: strict: UTF-8 that is valid, JSON without NaN or Infinity.
    return response.status, json.loads(data.decode("utf-8"), parse_constant=_not_json)


def _not_json(word: str) -> Any:
    raise AssertionError(f"{word} is not JSON")


def test_hostile_text_and_numbers_are_400_and_the_store_keeps_serving(
        apps: list[object], petstore_env: dict[str, str], serve: Serve) -> None:
    importlib.import_module("handlers._store").STORE.reset()
    server = serve(create_app(SPEC, handlers=str(HANDLERS), environ=petstore_env))
    status, body = send(server, "POST", "/pets", b'{"name":"Evil\\ud800","breed":"Poodle"}')
    assert (status, [e["pointer"] for e in body["errors"]]) == (400, ["/name"])
    status, body = send(server, "POST", f"/items/{NEW_ITEM}", b'{"name":"x","price":1e400}')
    assert (status, [e["pointer"] for e in body["errors"]]) == (400, ["/price"])
    assert send(server, "POST", "/pets", b'{"name":"x","age":NaN}')[0] == 400
    assert send(server, "POST", "/pets", b'{"\\udc00":1,"name":"x"}')[0] == 400
    status, pets = send(server, "GET", "/pets")
    assert status == 200 and [pet["name"] for pet in pets] == ["Max", "Bella", "Rocky"]
    assert send(server, "GET", f"/items/{NEW_ITEM}")[0] == 404  # never stored
    assert send(server, "GET", "/search")[0] == 200
