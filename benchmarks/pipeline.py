"""The whole in-process pipeline of the pet store, without sockets.

Routing, the API-key check, parameter decoding and validation, the actor hop, the handler,
response validation and JSON encoding, for `GET /pets/{id}`, `GET /pets?limit=10` and
`POST /pets`, called as a WSGI server would call the app.

    taskset -c 0 .venv/bin/python benchmarks/pipeline.py --fast
"""
from gevent import monkey

monkey.patch_all()

import io  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pyperf  # noqa: E402

from brrt_actors import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _environ(method: str, path: str, query: str = "", body: bytes = b"") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "RAW_URI": path + (f"?{query}" if query else ""),
        "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_X_API_KEY": "test123",
        "wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True,
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def main() -> None:
    runner = pyperf.Runner()
    app = create_app(ROOT / "specs" / "petstore.yaml", str(ROOT / "handlers"),
                     environ={"BRRTR_API_KEY__ApiKeyHeader": "test123"})

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        pass

    def call(environ: dict[str, Any]) -> None:
        b"".join(app(environ, start_response))

    get_pet = _environ("GET", "/pets/1")
    runner.bench_func("pipeline GET /pets/{id} (auth + validation + actor)", call, get_pet)
    list_pets = _environ("GET", "/pets", "limit=10")
    runner.bench_func("pipeline GET /pets?limit=10", call, list_pets)
    body = b'{"name": "Rex", "breed": "Poodle", "age": 2}'

    def post() -> None:
        call(_environ("POST", "/pets", body=body))

    runner.bench_func("pipeline POST /pets (JSON body)", post)


if __name__ == "__main__":
    main()
