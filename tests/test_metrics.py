"""GET /metrics: per-operation requests and latency, actors, auth, and multi-process mode."""
from __future__ import annotations

import gzip
import http.client
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import gevent
import pytest
from conftest import PETSTORE_ENV, PETSTORE_OAUTH2_SECRET, ROOT
from gevent.event import Event
from prometheus_client.parser import text_string_to_metric_families

from brrt_actors import ConfigError, create_app
from brrt_actors.app import App
from brrt_actors.config import load_settings
from brrt_actors.entrypoints.server import HTTPServer
from brrt_actors.metrics.figures import BUCKETS, OperationMetrics, build_metrics
from brrt_actors.security.jwt import mint_token
from brrt_actors.testing import Client, TestResponse

PETSTORE = ROOT / "specs" / "petstore.yaml"

# A small service: a handler that waits for the test, one that misses its deadline, one that
# fails, one that answers, and a spec-owned path next to the built-ins.
ACTORS_SPEC = """
openapi: 3.1.0
info: {title: Actors, version: "1"}
paths:
  /wait:
    get:
      operationId: wait
      x-brrt-actor: {workers: 1, mailbox: 1, policy: shed, deadline_ms: 10000}
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
  /late:
    get:
      operationId: late
      x-brrt-actor: {workers: 1, deadline_ms: 50}
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
  /boom:
    post:
      operationId: boom
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
  /fine:
    get:
      operationId: fine
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
"""

OWN_METRICS_SPEC = """
openapi: 3.0.3
info: {title: Own metrics, version: "1"}
paths:
  /metrics:
    get:
      operationId: own_metrics
      responses:
        "200": {description: mine, content: {application/json: {schema: {type: object}}}}
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Client, **kwargs: Any) -> Samples:
    """Return every sample of /metrics by (name, sorted labels)."""
    response = client.get("/metrics", **kwargs)
    assert response.status == 200, response
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def parse(text: str) -> Samples:
    """Return every sample of a page of metrics by (name, sorted labels)."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def requests(samples: Samples, operation_id: str, method: str, status: int) -> float | None:
    return value(samples, "brrt_requests_total", operation_id=operation_id, method=method,
                 status=str(status))


@pytest.fixture()
def petstore(apps: list[object]) -> App:
    app = create_app(PETSTORE, "handlers", environ=PETSTORE_ENV)
    apps.append(app)
    return app


@pytest.fixture()
def actors_app(apps: list[object], tmp_path: Path) -> tuple[App, Event]:
    release = Event()

    def wait(request: Any) -> dict[str, Any]:
        release.wait(5)
        return {}

    def late(request: Any) -> dict[str, Any]:
        gevent.sleep(5)
        return {}

    def boom(request: Any) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    path = tmp_path / "actors.yaml"
    path.write_text(ACTORS_SPEC)
    app = create_app(path, {"wait": wait, "late": late, "boom": boom,
                            "fine": lambda request: {}})
    apps.append(app)
    return app, release


# -- the pet store: requests, statuses, latency, auth --------------------------------------

def test_requests_are_counted_per_operation_and_status(petstore: App) -> None:
    client = Client(petstore, headers={"X-API-Key": "test123"})
    for _ in range(3):
        assert client.get("/pets/1").status == 200
    assert client.head("/pets/1").status == 200  # HEAD is served by (and counts as) GET
    assert client.get("/pets", query={"limit": 500}).status == 400
    assert client.get("/pets/987654").status == 404  # the handler's 404
    assert client.get("/no/such/path").status == 404  # no route
    assert client.delete("/pets").status == 405
    assert Client(petstore).get("/pets/1").status == 401
    assert client.post("/pets", json={"name": "Rex"}).status == 201

    samples = scrape(client)

    assert requests(samples, "get_pet", "GET", 200) == 4
    assert requests(samples, "get_pet", "GET", 404) == 1
    assert requests(samples, "get_pet", "GET", 401) == 1
    assert requests(samples, "list_pets", "GET", 400) == 1
    assert requests(samples, "add_pet", "POST", 201) == 1
    assert value(samples, "brrt_unmatched_requests_total", status="404") == 1
    assert value(samples, "brrt_unmatched_requests_total", status="405") == 1
    assert value(samples, "brrt_auth_failures_total", scheme="ApiKeyHeader", status="401") == 1
    assert value(samples, "brrt_requests_in_flight", operation_id="get_pet", method="GET") == 0
    # Nothing counts the scrapes themselves, nor built-ins.
    client.get("/health")
    again = scrape(client)
    assert not [key for key in again if key[0] == "brrt_requests_total"
                and dict(key[1])["operation_id"] not in {"get_pet", "list_pets", "add_pet"}]
    assert sum(v for k, v in again.items() if k[0] == "brrt_requests_total") == 8
    assert value(again, "brrt_unmatched_requests_total", status="404") == 1


def test_latency_histogram_buckets_count_and_sum(petstore: App) -> None:
    client = Client(petstore, headers={"X-API-Key": "test123"})
    started = time.perf_counter()
    for _ in range(5):
        client.get("/pets/1")
    elapsed = time.perf_counter() - started

    samples = scrape(client)

    labels = {"operation_id": "get_pet", "method": "GET", "status": "200"}
    buckets = [value(samples, "brrt_request_duration_seconds_bucket", le=le, **labels)
               for le in [*(repr(bound) for bound in BUCKETS), "+Inf"]]
    assert None not in buckets
    assert buckets == sorted(bucket or 0 for bucket in buckets)  # cumulative
    assert buckets[-1] == 5 == value(samples, "brrt_request_duration_seconds_count", **labels)
    total = value(samples, "brrt_request_duration_seconds_sum", **labels)
    assert total is not None and 0 < total <= elapsed
    assert value(samples, "brrt_request_duration_seconds_bucket", le="10.0", **labels) == 5


def test_observe_puts_each_duration_in_its_bucket() -> None:
    figures = OperationMetrics("op", "GET")
    for seconds in (0.0001, 0.0005, 0.0006, 0.003, 10.0, 11.0):
        figures.observe(200, seconds)
    figures.observe(503, 0.02)

    series = figures.series[200]
    # le=0.0005 holds 0.0001 and 0.0005 (bounds are inclusive); 11 s is only in +Inf.
    assert series[:len(BUCKETS) + 1] == [2, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    assert series[-1] == pytest.approx(0.0001 + 0.0005 + 0.0006 + 0.003 + 10.0 + 11.0)
    assert sum(figures.series[503][:-1]) == 1


def test_auth_failures_per_scheme_401_and_403(petstore: App) -> None:
    client = Client(petstore)
    now = int(time.time())
    write_only = mint_token(PETSTORE_OAUTH2_SECRET,
                            {"sub": "bob", "iat": now, "exp": now + 600, "scope": "write"})
    assert client.get("/secure").status == 401
    assert client.get("/secure", headers={"Authorization": "Bearer nope"}).status == 401
    assert client.get("/secure", headers={"Authorization": f"Bearer {write_only}"}).status == 403
    assert client.get("/pets", headers={"X-API-Key": "wrong"}).status == 401

    samples = scrape(client)

    # /secure takes BearerAuth or OAuth2: a rejection counts for both schemes.
    assert value(samples, "brrt_auth_failures_total", scheme="BearerAuth", status="401") == 2
    assert value(samples, "brrt_auth_failures_total", scheme="OAuth2", status="401") == 2
    assert value(samples, "brrt_auth_failures_total", scheme="OAuth2", status="403") == 1
    assert value(samples, "brrt_auth_failures_total", scheme="ApiKeyHeader", status="401") == 1
    assert requests(samples, "secure_endpoint", "GET", 401) == 2
    assert requests(samples, "secure_endpoint", "GET", 403) == 1


def test_secrets_never_appear_in_metrics(petstore: App) -> None:
    client = Client(petstore, headers={"X-API-Key": "test123"})
    client.get("/pets/1", headers={"X-Request-ID": "req-test123"})
    client.get("/pets", headers={"X-API-Key": "wrong-key-456"})
    client.get("/test123/secret-path")

    text = client.get("/metrics").text

    for secret in ("test123", "wrong-key-456", "secret-path", *PETSTORE_ENV.values()):
        assert secret not in text


def test_process_and_python_metrics_are_there(petstore: App) -> None:
    samples = scrape(Client(petstore))

    rss = value(samples, "process_resident_memory_bytes")
    assert rss is not None and rss > 1_000_000
    assert value(samples, "process_cpu_seconds_total") is not None
    assert any(name == "python_info" for name, _ in samples)


# -- the actors: gauges and counters -------------------------------------------------------

def test_flood_shed_503_and_actor_gauges(actors_app: tuple[App, Event]) -> None:
    app, release = actors_app
    client = Client(app)
    results: list[gevent.Greenlet[..., TestResponse]] = []
    for _ in range(6):
        results.append(gevent.spawn(client.get, "/wait"))
        gevent.sleep(0.01)  # the first is taken by the worker, the second waits in the mailbox
    rejected = [greenlet.get(timeout=5) for greenlet in results[2:]]
    assert [response.status for response in rejected] == [503] * 4

    during = scrape(client)
    release.set()
    gevent.joinall(results, timeout=5)
    after = scrape(client)

    assert value(during, "brrt_actor_busy_workers", operation_id="wait") == 1
    assert value(during, "brrt_actor_mailbox_depth", operation_id="wait") == 1
    assert value(during, "brrt_actor_workers", operation_id="wait") == 1
    assert value(during, "brrt_actor_mailbox_capacity", operation_id="wait") == 1
    assert value(during, "brrt_requests_in_flight", operation_id="wait", method="GET") == 2
    assert value(after, "brrt_actor_rejected_total", operation_id="wait") == 4
    assert requests(after, "wait", "GET", 503) == 4
    assert requests(after, "wait", "GET", 200) == 2
    assert value(after, "brrt_actor_completed_total", operation_id="wait") == 2
    assert value(after, "brrt_actor_busy_workers", operation_id="wait") == 0
    assert value(after, "brrt_actor_mailbox_depth", operation_id="wait") == 0
    assert value(after, "brrt_requests_in_flight", operation_id="wait", method="GET") == 0


def test_deadline_504_handler_error_500_and_restart(actors_app: tuple[App, Event]) -> None:
    app, _ = actors_app
    client = Client(app)
    assert client.get("/late").status == 504
    assert client.post("/boom").status == 500
    app.actors["fine"].workers[0].kill()  # a worker that dies is restarted
    assert client.get("/fine").status == 200

    samples = scrape(client)

    assert value(samples, "brrt_actor_deadline_exceeded_total", operation_id="late") == 1
    assert requests(samples, "late", "GET", 504) == 1
    assert value(samples, "brrt_actor_handler_errors_total", operation_id="boom") == 1
    assert requests(samples, "boom", "POST", 500) == 1
    assert value(samples, "brrt_actor_worker_restarts_total", operation_id="fine") == 1
    assert value(samples, "brrt_actor_worker_restarts_total", operation_id="late") == 0
    gevent.sleep(0.01)
    assert value(scrape(client), "brrt_actor_cancelled_total", operation_id="late") == 1


ODD_SPEC = r"""
openapi: 3.0.3
info: {title: Odd, version: "1"}
paths:
  /odd:
    get:
      operationId: 'odd"id\x'
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
"""


Family = tuple[str, str, str, list[tuple[str, list[tuple[str, str]], float]]]


def _families(text: str) -> list[Family]:
    return sorted((family.name, family.type, family.documentation,
                   sorted((sample.name, sorted(sample.labels.items()), sample.value)
                          for sample in family.samples))
                  for family in text_string_to_metric_families(text))


def test_fast_text_gives_what_prometheus_client_gives(petstore: App, apps: list[object],
                                                       tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    client = Client(petstore, headers={"X-API-Key": "test123"})
    client.get("/pets/1")
    client.get("/pets", query={"limit": 500})
    client.get("/nowhere")
    Client(petstore).get("/secure")
    path = tmp_path / "odd.yaml"
    path.write_text(ODD_SPEC)
    odd = create_app(path, {'odd"id\\x': lambda request: {}})
    apps.append(odd)
    Client(odd).get("/odd")
    assert petstore.metrics is not None
    petstore.metrics.watch_connections(lambda: {"open": 3, "idle": 2, "limit": 8,
                                                "evicted": 5})

    for app in (petstore, odd):
        assert app.metrics is not None and app.metrics.collector is not None
        fast = app.metrics.collector.render_text().decode()
        reference = generate_latest(app.metrics.collector).decode()
        assert _families(fast) == _families(reference)
    assert 'operation_id="odd\\"id\\\\x"' in fast
    assert petstore.metrics.collector is not None  # the connections were compared too
    assert b"\nbrrt_http_connections_evicted_total 5.0\n" in (
        petstore.metrics.collector.render_text())


# -- the HTTP server's connections ---------------------------------------------------------

def test_connection_families_add_up_the_watched_servers(petstore: App) -> None:
    assert petstore.metrics is not None
    names = {name for name, _ in scrape(Client(petstore))}
    # Served by someone else's server (here, the test client): nothing to show.
    assert not {name for name in names if name.startswith("brrt_http_connections")}

    petstore.metrics.watch_connections(lambda: {"open": 3, "idle": 1, "limit": 10,
                                                "evicted": 2})
    petstore.metrics.watch_connections(lambda: {"open": 1, "idle": 1, "limit": 10,
                                                "evicted": 0})
    samples = scrape(Client(petstore))

    assert value(samples, "brrt_http_connections") == 4
    assert value(samples, "brrt_http_connections_idle") == 2
    assert value(samples, "brrt_http_connections_limit") == 20
    assert value(samples, "brrt_http_connections_evicted_total") == 2


def test_brrt_serve_shows_its_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    from brrt_actors.entrypoints import commands as runner

    # NOTE: `brrt serve` as it runs, except that it returns once serving, for the test to
    # talk to the server it built and wired to the app.
    served: list[HTTPServer] = []
    monkeypatch.setattr(HTTPServer, "serve_forever", lambda self: served.append(self))
    env = {**PETSTORE_ENV, "BRRTR_MAX_CONNECTIONS": "4"}
    assert runner.serve_spec(PETSTORE, "handlers", host="127.0.0.1", port=0, environ=env) == 0
    server = served[0]
    clients: list[http.client.HTTPConnection] = []

    def get(path: str, client: http.client.HTTPConnection | None = None) -> str:
        if client is None:
            client = http.client.HTTPConnection(*server.address, timeout=2)
            clients.append(client)
        client.request("GET", path, headers={"X-API-Key": "test123"})
        response = client.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return body

    try:
        with gevent.Timeout(10):
            for _ in range(3):
                get("/pets/1")  # each connection stays open, idle, after its answer
            before = parse(get("/metrics"))
            # The pool is full: 4 connections, all idle; a new one closes the oldest.
            after = parse(get("/metrics"))
            get("/pets/1", clients[-1])  # the newcomer itself was not closed
    finally:
        for client in clients:
            client.close()
        server.stop(1)

    assert value(before, "brrt_http_connections") == 4  # 3 idle ones and the scraper
    assert value(before, "brrt_http_connections_idle") == 3
    assert value(before, "brrt_http_connections_limit") == 4
    assert value(before, "brrt_http_connections_evicted_total") == 0
    assert value(after, "brrt_http_connections") == 4
    assert value(after, "brrt_http_connections_idle") == 3
    assert value(after, "brrt_http_connections_evicted_total") == 1


# -- the endpoint ---------------------------------------------------------------------------

def test_head_metrics(petstore: App) -> None:
    response = Client(petstore).head("/metrics")

    assert response.status == 200 and response.body == b""
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["Cache-Control"] == "no-store"


def test_post_metrics_is_405(petstore: App) -> None:
    response = Client(petstore).post("/metrics")

    assert response.status == 405 and response.headers["Allow"] == "GET, HEAD"


def test_openmetrics_and_gzip_on_request(petstore: App) -> None:
    client = Client(petstore)
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text",
                                               "Accept-Encoding": "gzip"})

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.body).decode()
    assert "# TYPE brrt_actor_workers gauge" in text and text.endswith("# EOF\n")


def test_a_spec_operation_on_metrics_wins(apps: list[object], tmp_path: Path) -> None:
    path = tmp_path / "own.yaml"
    path.write_text(OWN_METRICS_SPEC)
    app = create_app(path, {"own_metrics": lambda request: {"mine": True}})
    apps.append(app)
    client = Client(app)

    assert client.get("/metrics").json() == {"mine": True}
    assert client.get("/metrics").json() == {"mine": True}
    # ... and is counted like any operation (the registry is still there for users).
    assert app.metrics is not None
    assert app.metrics.operations[0].series[200][-1] > 0
    assert sum(app.metrics.operations[0].series[200][:-1]) == 2


def test_metrics_can_be_switched_off(apps: list[object]) -> None:
    app = create_app(PETSTORE, "handlers", environ={**PETSTORE_ENV, "BRRTR_METRICS": "off"})
    apps.append(app)
    client = Client(app, headers={"X-API-Key": "test123"})

    assert app.metrics is None
    assert client.get("/metrics").status == 404
    assert client.get("/pets/1").status == 200
    pipeline = app.router.lookup("/pets/1")
    assert pipeline is not None
    assert pipeline.methods["GET"].arounds == ()  # nothing measures


@pytest.mark.parametrize(("raw", "expected"), [("off", False), ("0", False), ("No", False),
                                               ("on", True), ("true", True), (" 1 ", True)])
def test_metrics_switch_values(raw: str, expected: bool) -> None:
    assert load_settings({"BRRTR_METRICS": raw}).metrics is expected


def test_metrics_switch_in_config_file_and_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server: {metrics: off}\n")
    assert load_settings({}, str(path)).metrics is False
    with pytest.raises(ConfigError, match=r"BRRTR_METRICS.*on or off"):
        load_settings({"BRRTR_METRICS": "sometimes"})


def test_each_app_has_its_own_registry(apps: list[object]) -> None:
    first = create_app(PETSTORE, "handlers", environ=PETSTORE_ENV)
    second = create_app(PETSTORE, "handlers", environ=PETSTORE_ENV)
    apps.extend([first, second])
    Client(first, headers={"X-API-Key": "test123"}).get("/pets/1")

    assert requests(scrape(Client(first)), "get_pet", "GET", 200) == 1
    assert requests(scrape(Client(second)), "get_pet", "GET", 200) is None


_START = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, sys
    from brrt_actors import create_app
    from brrt_actors.testing import Client

    app = create_app("specs/petstore.yaml", "handlers", environ=json.loads(sys.argv[1]))
    assert Client(app).get("/health").status == 200
    print(json.dumps("prometheus_client" in sys.modules))
    response = Client(app).get("/metrics")
    assert response.status == 200 and "process_cpu_seconds_total" in response.text, response
    assert "brrt_requests_total" in response.text and "python_info" in response.text
    app.stop(1)
""")


def test_prometheus_client_loads_at_the_first_scrape_not_at_start() -> None:
    # NOTE: a fresh process: this one imported prometheus_client long ago.
    # benchmarks/start_time.py measures what this saves.
    done = subprocess.run([sys.executable, "-c", _START, json.dumps(PETSTORE_ENV)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is False


def test_the_registry_is_built_on_first_use(apps: list[object]) -> None:
    app = create_app(PETSTORE, "handlers", environ=PETSTORE_ENV)
    apps.append(app)
    assert app.metrics is not None
    registry = app.metrics.registry
    assert registry is app.metrics.registry  # one registry, kept
    assert {"process_cpu_seconds", "python_info", "python_gc_objects_collected"} <= {
        family.name for family in registry.collect()}


# -- multi-process mode ---------------------------------------------------------------------

def test_multiprocess_dir_must_be_set_before_import(tmp_path: Path) -> None:
    from brrt_actors.actor_system import ActorSystem

    with pytest.raises(ConfigError, match=r"PROMETHEUS_MULTIPROC_DIR: .*not a folder"):
        build_metrics(ActorSystem(), str(tmp_path / "missing"))
    # This test process imported prometheus_client without the variable: refuse, loudly.
    with pytest.raises(ConfigError, match="after prometheus_client was imported"):
        build_metrics(ActorSystem(), str(tmp_path))


_WORKER = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, sys
    from brrt_actors import create_app
    from brrt_actors.testing import Client

    env = json.loads(sys.argv[1])
    count, scrape = int(sys.argv[2]), sys.argv[3] == "scrape"
    app = create_app("specs/petstore.yaml", "handlers", environ=env)
    assert app.metrics is not None and app.metrics.multiprocess
    client = Client(app, headers={"X-API-Key": "test123"})
    for _ in range(count):
        assert client.get("/pets/1").status == 200
    assert Client(app).get("/pets").status == 401
    assert client.get("/nowhere").status == 404
    if scrape:
        response = client.get("/metrics")
        assert response.status == 200
        sys.stdout.write(response.text)
    app.stop(1)
""")


def _worker(tmp_path: Path, count: int, scrape_it: bool) -> subprocess.Popen[str]:
    env = {key: val for key, val in os.environ.items() if not key.startswith("BRRTR_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, json.dumps(PETSTORE_ENV), str(count),
         "scrape" if scrape_it else "-"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_multiprocess_mode_sums_every_process(tmp_path: Path) -> None:
    first, second = _worker(tmp_path, 3, False), _worker(tmp_path, 5, False)
    for process in (first, second):
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    third = _worker(tmp_path, 2, True)
    out, err = third.communicate(timeout=60)
    assert third.returncode == 0, err
    assert sorted(path.name.split("_")[0] for path in tmp_path.glob("counter_*.db")) == [
        "counter"] * 3  # one file per process

    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(out) for sample in family.samples}

    assert requests(samples, "get_pet", "GET", 200) == 3 + 5 + 2
    assert value(samples, "brrt_request_duration_seconds_count", operation_id="get_pet",
                 method="GET", status="200") == 10
    assert requests(samples, "list_pets", "GET", 401) == 3
    assert value(samples, "brrt_auth_failures_total", scheme="ApiKeyHeader", status="401") == 3
    assert value(samples, "brrt_unmatched_requests_total", status="404") == 3
    # Counters of the actors are summed over the processes, living or not ...
    assert value(samples, "brrt_actor_completed_total", operation_id="get_pet") == 10
    # ... gauges only over the living: the scraping process's own 4 workers.
    assert value(samples, "brrt_actor_workers", operation_id="get_pet") == 4
    assert value(samples, "brrt_requests_in_flight", operation_id="get_pet", method="GET") == 0


def test_multiprocess_mode_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      apps: list[object]) -> None:
    # The same code path in this process: prometheus_client chooses its storage at import,
    # so give it the file-backed value class for the duration of the test.
    from prometheus_client import CollectorRegistry, generate_latest, values
    from prometheus_client.multiprocess import MultiProcessCollector

    from brrt_actors.metrics import multiprocess as multiprocess_metrics

    value_class = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", value_class)
    monkeypatch.setattr(multiprocess_metrics, "_SHARED", [])
    monkeypatch.setattr(multiprocess_metrics, "SYNC_INTERVAL_S", 0.01)
    app = create_app(PETSTORE, "handlers", environ=PETSTORE_ENV)
    connections = {"open": 3, "idle": 2, "limit": 100, "evicted": 4}

    def files() -> Samples:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
        return parse(generate_latest(registry).decode())

    try:
        assert app.metrics is not None and app.metrics.multiprocess
        assert not [name for name, _ in files() if name.startswith("brrt_http_")]
        app.metrics.watch_connections(lambda: connections)
        assert value(files(), "brrt_http_connections_limit") == 100  # at once
        connections["evicted"] += 2
        client = Client(app, headers={"X-API-Key": "test123"})
        client.get("/pets/1")
        client.get("/pets/1", headers={"X-API-Key": "bad"})
        client.get("/pets", query={"limit": 500})
        client.delete("/pets")
        gevent.sleep(0.05)  # the background sync copies the actors' figures

        synced = files()
        assert value(synced, "brrt_actor_completed_total", operation_id="get_pet") == 1
        assert value(synced, "brrt_actor_workers", operation_id="get_pet") == 4
        assert value(synced, "brrt_http_connections_evicted_total") == 6  # 4, then 2 more

        samples = scrape(client)
        app.stop(0.5)
        stopped = files()
    finally:
        app.stop(0.5)
        close = getattr(value_class, "close_all_files", None)  # prometheus_client >= 0.21
        if close is not None:
            close()

    assert requests(samples, "get_pet", "GET", 200) == 1
    assert requests(samples, "get_pet", "GET", 401) == 1
    assert requests(samples, "list_pets", "GET", 400) == 1
    assert value(samples, "brrt_request_duration_seconds_count", operation_id="get_pet",
                 method="GET", status="200") == 1
    assert value(samples, "brrt_auth_failures_total", scheme="ApiKeyHeader", status="401") == 1
    assert value(samples, "brrt_unmatched_requests_total", status="405") == 1
    assert value(samples, "brrt_actor_completed_total", operation_id="get_pet") == 1
    assert not [name for name, _ in samples if name.startswith("process_")]
    assert value(samples, "brrt_http_connections") == 3
    assert value(samples, "brrt_http_connections_idle") == 2
    assert value(samples, "brrt_http_connections_limit") == 100
    assert value(samples, "brrt_http_connections_evicted_total") == 6
    # A stopped process no longer counts in the live gauges; its counter stays.
    assert value(stopped, "brrt_http_connections") == 0
    assert value(stopped, "brrt_http_connections_limit") == 0
    assert value(stopped, "brrt_actor_workers", operation_id="get_pet") == 0
    assert value(stopped, "brrt_http_connections_evicted_total") == 6
