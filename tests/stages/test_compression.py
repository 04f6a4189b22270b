"""Response compression over real sockets: gzip and br, quality values, the threshold, and the
answers never compressed (HEAD, event streams, images, encoded bodies, opted-out operations)."""
from __future__ import annotations

import gzip
import http.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brotli
import pytest
import ujson
from conftest import TEST_SPECS, Serve

from brrt_actors import Request, Response
from brrt_actors.config import compression as compression_config
from brrt_actors.config import load_settings
from brrt_actors.entrypoints.server import HTTPServer
from brrt_actors.errors import ConfigError
from brrt_actors.stages.compression import Negotiation

SPEC = TEST_SPECS / "compression.yaml"
ROWS = [{"id": n, "name": f"pet number {n}", "tags": ["friendly", "trained"]} for n in range(50)]
TEXT = "Feed twice a day. Walk after each meal.\n" * 40


def _handlers() -> dict[str, Callable[[Request], Any]]:
    return {
        "report": lambda request: ROWS[:request.query.get("rows", 50)],
        "text": lambda request: Response(200, TEXT, {"ETag": '"v1"', "Vary": "Origin"},
                                         "text/plain"),
        "packed": lambda request: Response(200, gzip.compress(ujson.dumps(ROWS).encode()),
                                           {"Content-Encoding": "gzip"}, "application/json"),
        "picture": lambda request: Response(200, b"\x89PNG" + b"\0" * 4096),
        "secret": lambda request: ROWS,
        "events": lambda request: [{"n": n} for n in range(100)],
    }


@pytest.fixture()
def server(make_app: Callable[..., Any], serve: Serve) -> HTTPServer:
    return serve(make_app(SPEC, _handlers(), BRRTR_COMPRESSION="on"))


def get(server: HTTPServer, path: str, accept: str | None = "gzip",
        method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Send one request; return the status, the headers (lower-case names) and the raw body."""
    conn = http.client.HTTPConnection(*server.address[:2], timeout=5)
    conn.request(method, path, headers={"Accept-Encoding": accept} if accept else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_json_is_gzipped_when_the_client_accepts_it(server: HTTPServer) -> None:
    status, headers, body = get(server, "/report")
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body) < len(ujson.dumps(ROWS))
    assert ujson.loads(gzip.decompress(body)) == ROWS


def test_brotli_comes_first_when_both_are_accepted_alike(server: HTTPServer) -> None:
    _, headers, body = get(server, "/report", "gzip, deflate, br, zstd")
    assert headers["content-encoding"] == "br"
    assert ujson.loads(brotli.decompress(body)) == ROWS


@pytest.mark.parametrize(("accept", "coding"), [
    ("gzip;q=0.5, br;q=0.1", "gzip"),  # the client's preference wins over the server's
    ("br;q=0, gzip", "gzip"),  # q=0 refuses
    ("gzip;q=0, br;q=0", None),
    ("*;q=0", None),
    ("identity, gzip;q=0.5", None),  # the body as it is, preferred
    ("*", "br"),
    ("x-gzip", "gzip"),
    ("deflate", None),
    ("gzip;q=nonsense", None),
    (None, None),
])
def test_quality_values_are_honoured(server: HTTPServer, accept: str | None,
                                     coding: str | None) -> None:
    _, headers, body = get(server, "/report", accept)
    assert headers.get("content-encoding") == coding
    assert headers["vary"] == "Accept-Encoding"  # the answer depends on the header either way
    if coding is None:
        assert ujson.loads(body) == ROWS


def test_small_bodies_head_and_text(server: HTTPServer) -> None:
    _, headers, body = get(server, "/report?rows=1")  # below min_bytes (256)
    assert "content-encoding" not in headers and headers["vary"] == "Accept-Encoding"
    assert ujson.loads(body) == ROWS[:1]
    status, headers, body = get(server, "/report", method="HEAD")
    assert status == 200 and body == b"" and "content-encoding" not in headers
    assert headers["vary"] == "Accept-Encoding"
    _, headers, body = get(server, "/text")
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Origin, Accept-Encoding"
    assert headers["etag"] == 'W/"v1"'  # the compressed bytes are not the strong ETag's
    assert gzip.decompress(body).decode() == TEXT


@pytest.mark.parametrize("path", ["/packed", "/picture", "/secret", "/events"])
def test_answers_never_compressed(server: HTTPServer, path: str) -> None:
    _, headers, body = get(server, path, "gzip, br")
    assert headers.get("content-encoding") == ("gzip" if path == "/packed" else None)
    assert "vary" not in headers
    if path == "/packed":  # the handler's own encoding, untouched
        assert ujson.loads(gzip.decompress(body)) == ROWS
    if path == "/events":
        assert headers["transfer-encoding"] == "chunked"
        assert body.startswith(b'data: {"n":0}\n\n')


def test_off_by_default(make_app: Callable[..., Any], serve: Serve) -> None:
    server = serve(make_app(SPEC, _handlers()))
    _, headers, body = get(server, "/report")
    assert "content-encoding" not in headers and "vary" not in headers
    assert ujson.loads(body) == ROWS


def test_brtrouters_section_loads_and_bad_values_are_named(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("compression:\n  enabled: true\n  min_bytes: 1024\n  level: 9\n")
    settings = load_settings({}, str(config)).compression
    assert (settings.enabled, settings.min_bytes, settings.level) == (True, 1024, 9)
    config.write_text("compression:\n  level: 12\n  encodings: [zstd]\n")
    with pytest.raises(ConfigError) as raised:
        load_settings({"BRRTR_COMPRESSION_MIN_BYTES": "-1"}, str(config))
    message = str(raised.value)
    assert "compression.level: 12 is not valid; expected an integer from 0 to 9" in message
    assert "compression.encodings" in message and "BRRTR_COMPRESSION_MIN_BYTES" in message


def test_br_without_the_brotli_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compression_config, "brotli_installed", lambda: False)
    assert load_settings({"BRRTR_COMPRESSION": "1"}).compression.encodings == ("gzip",)
    with pytest.raises(ConfigError, match="BRRTR_COMPRESSION_ENCODINGS: lists br, but the "
                                          "brotli package is not installed"):
        load_settings({"BRRTR_COMPRESSION_ENCODINGS": "br,gzip"})


def test_negotiation_cache_is_bounded() -> None:
    negotiation = Negotiation(("gzip",))
    for n in range(1000):
        assert negotiation.choose(f"gzip;q=0.{n % 9 + 1}, x{n}") == "gzip"
    assert len(negotiation._cache) <= 256
