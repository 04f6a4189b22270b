"""An in-process test client: calls a WSGI app directly, no sockets.

    from brrt_actors import create_app
    from brrt_actors.testing import Client

    client = Client(create_app("specs/petstore.yaml", "handlers"))
    response = client.get("/pets/1", headers={"X-API-Key": "test123"})
    assert response.status == 200 and response.json()["id"] == 1

Requests run in the calling greenlet; the app's actors run in their own greenlets, so the
process must be monkey-patched (as the `brrt` entry point and pytest's conftest do).
"""
from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlencode

import ujson

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
FileSpec = tuple[str, bytes] | tuple[str, bytes, str]


class Headers(dict[str, str]):
    """Response headers; look-ups ignore case."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        for name, value in pairs:
            key = name.lower()
            super().__setitem__(key, f"{self[key]}, {value}" if key in self else value)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class TestResponse:
    """What the app answered."""

    __test__ = False  # not a pytest test class

    def __init__(self, status_line: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_line = status_line
        self.status = int(status_line.split(" ", 1)[0])
        self.header_list = headers
        self.headers = Headers(headers)
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return ujson.loads(self.body)

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_line} {self.body[:80]!r}>"


def _multipart(data: Mapping[str, Any], files: Mapping[str, FileSpec]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in data.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            text = item if isinstance(item, str) else ujson.dumps(item)
            out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                      .encode())
            out.write(text.encode() + b"\r\n")
    for name, spec in files.items():
        filename, content = spec[0], spec[1]
        content_type = spec[2] if len(spec) == 3 else "application/octet-stream"
        out.write((f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                   f"filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").encode())
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Client:
    """Call a WSGI app as an HTTP client would, in process."""

    def __init__(self, app: WSGIApp, headers: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.default_headers = dict(headers or {})

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | bytes | str | None = None,
        files: Mapping[str, FileSpec] | None = None,
        content_type: str | None = None,
    ) -> TestResponse:
        """Send one request and return the response.

        Args:
            path: the raw request target; may carry a query string.
            query: extra query parameters (a mapping is URL-encoded, lists repeat keys).
            json: a JSON body. data: form fields (URL-encoded, or multipart with `files`),
                or a raw body. files: multipart files, ``name -> (filename, bytes[, type])``.
        """
        all_headers = {**self.default_headers, **(headers or {})}
        body = b""
        if json is not None:
            body, content_type = ujson.dumps(json).encode(), content_type or "application/json"
        elif files:
            body, content_type = _multipart(data if isinstance(data, Mapping) else {}, files)
        elif isinstance(data, Mapping):
            body = urlencode(data, doseq=True).encode()
            content_type = content_type or "application/x-www-form-urlencoded"
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        target = path
        if query:
            encoded = query if isinstance(query, str) else urlencode(query, doseq=True)
            target += ("&" if "?" in target else "?") + encoded
        raw_path, _, query_string = target.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method.upper(),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(raw_path, encoding="latin-1"),
            "QUERY_STRING": query_string,
            "RAW_URI": quote(raw_path, safe="/%;,=.:@!$&'()*+-_~[]") + (
                f"?{query_string}" if query_string else ""),
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            environ["CONTENT_LENGTH"] = str(len(body))
        if content_type:
            environ["CONTENT_TYPE"] = content_type
        for name, value in all_headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key == "CONTENT_LENGTH":
                environ["CONTENT_LENGTH"] = value
            else:
                environ["HTTP_" + key] = value
        captured: list[Any] = []

        def start_response(status: str, response_headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            captured[:] = [status, response_headers]
            return lambda chunk: None

        result = self.app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return TestResponse(captured[0], captured[1], payload)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("OPTIONS", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)

