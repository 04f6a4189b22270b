"""Static files through real sockets: files, index.html, HEAD, 304s, MIME types, the path
traversal guard, spec operations and built-ins winning, streaming, and `brrt serve --static-dir`.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Serve
from http_app import HTTP_SPEC, Reply, assert_socket_problem, call

from brrt_actors import build_app
from brrt_actors.config import load_settings
from brrt_actors.entrypoints.cli import _parser
from brrt_actors.entrypoints.server import HTTPServer
from brrt_actors.errors import ConfigError

MakeApp = Callable[..., Any]
SCRIPT = b"export const answer = 42;\n"


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """A folder to serve, a secret beside it, and symlinks in and out of it."""
    folder = tmp_path / "site"
    (folder / "css").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>home</title>")
    (folder / "app.js").write_bytes(SCRIPT)
    (folder / "css" / "style.css").write_text("body { margin: 0 }")
    (folder / "css" / "index.html").write_text("css index")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "data.bin").write_bytes(os.urandom(5000))
    (folder / "caf\u00e9.txt").write_text("accents")
    (folder / ".env").write_text("SECRET=1")
    (folder / "items").write_text("a file named like an operation's path")
    (folder / "health").write_text("a file named like a built-in")
    (tmp_path / "secret.txt").write_text("outside the folder")
    (folder / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "alias.js").symlink_to(folder / "app.js")
    os.mkfifo(folder / "pipe")  # opening it for reading would wait for a writer
    return folder


@pytest.fixture()
def server(make_app: MakeApp, serve: Serve, site: Path) -> HTTPServer:
    return serve(make_app(BRRTR_STATIC_DIR=str(site)))


def test_a_file_with_its_type_length_and_validators(server: HTTPServer) -> None:
    reply = call(server, "/static/app.js")
    assert reply.status == 200 and reply.body == SCRIPT
    assert reply.headers["content-type"] == "text/javascript; charset=utf-8"
    assert reply.headers["content-length"] == str(len(SCRIPT))
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', reply.headers["etag"])
    assert reply.headers["last-modified"].endswith(" GMT")
    assert call(server, "/static/css/style.css").headers["content-type"] == (
        "text/css; charset=utf-8")
    assert call(server, "/static/logo.png").headers["content-type"] == "image/png"
    assert call(server, "/static/data.bin").headers["content-type"] == (
        "application/octet-stream")
    assert call(server, "/static/caf%C3%A9.txt").body == b"accents"
    assert call(server, "/static/alias.js").body == SCRIPT  # a symlink inside the folder


def test_etag_and_date_revalidation_answer_304(server: HTTPServer) -> None:
    first = call(server, "/static/app.js")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    reply = call(server, "/static/app.js", headers={"If-None-Match": etag})
    assert reply.status == 304 and reply.body == b"" and reply.headers["etag"] == etag
    assert call(server, "/static/app.js", headers={"If-None-Match": f'W/{etag}, "x"'}
                ).status == 304
    assert call(server, "/static/app.js", headers={"If-None-Match": '"other"'}).status == 200
    assert call(server, "/static/app.js", headers={"If-Modified-Since": modified}).status == 304
    past = formatdate(time.time() - 86400 * 400, usegmt=True)
    assert call(server, "/static/app.js", headers={"If-Modified-Since": past}).status == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    assert call(server, "/static/app.js", headers={"If-None-Match": '"other"',
                                                    "If-Modified-Since": modified}).status == 200


def test_head_answers_the_headers_without_the_body(server: HTTPServer) -> None:
    reply = call(server, "/static/app.js", "HEAD")
    assert reply.status == 200 and reply.body == b""
    assert reply.headers["content-length"] == str(len(SCRIPT))
    assert reply.headers["content-type"] == "text/javascript; charset=utf-8"


def test_index_html_for_the_prefix_and_folders(server: HTTPServer) -> None:
    reply = call(server, "/static/")
    assert reply.status == 200 and b"<title>home</title>" in reply.body
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    reply = call(server, "/static?v=2")
    assert reply.status == 301 and reply.headers["location"] == "/static/?v=2"
    assert call(server, "/static/css/").body == b"css index"
    reply = call(server, "/static/css")
    assert reply.status == 301 and reply.headers["location"] == "/static/css/"


@pytest.mark.parametrize("target", [
    "/static/../setup.cfg", "/static/%2e%2e/setup.cfg", "/static/%2e%2e%2fsetup.cfg",
    "/static/..%2Fsetup.cfg", "/static/css/..%5c..%5csetup.cfg", "/static/./app.js",
    "/static/app.js%00.png", "/static/%ff.txt",
])
def test_traversal_and_malformed_paths_are_refused(server: HTTPServer, target: str) -> None:
    reply = call(server, target)
    assert_socket_problem(reply, 400)
    assert b"[metadata]" not in reply.body


@pytest.mark.parametrize("target", [
    "/static/leak.txt", "/static/.env", "/static/missing.js", "/static/css//style.css",
    "/static/pipe",
])
def test_symlinks_out_hidden_and_missing_files_are_not_found(server: HTTPServer,
                                                              target: str) -> None:
    reply = call(server, target)
    assert_socket_problem(reply, 404)
    assert b"outside the folder" not in reply.body and b"SECRET" not in reply.body


def test_only_get_and_head(server: HTTPServer) -> None:
    reply = call(server, "/static/app.js", "POST")
    assert_socket_problem(reply, 405)
    assert reply.headers["allow"] == "GET, HEAD"


def test_spec_operations_and_built_ins_win(make_app: MakeApp, serve: Serve, site: Path) -> None:
    server = serve(make_app(BRRTR_STATIC_DIR=str(site), BRRTR_STATIC_PREFIX="/"))
    assert call(server, "/items").json() == [{"id": 1, "name": "one"}]
    assert call(server, "/health").json() == {"status": "ok"}
    assert call(server, "/app.js").body == SCRIPT
    assert b"<title>home</title>" in call(server, "/").body


def test_files_are_streamed_in_bounded_pieces(make_app: MakeApp, site: Path) -> None:
    app = make_app(BRRTR_STATIC_DIR=str(site), BRRTR_STATIC_CHUNK_BYTES="1024")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/static/data.bin",
               "RAW_URI": "/static/data.bin", "QUERY_STRING": "", "wsgi.input": io.BytesIO()}
    body = app(environ, lambda status, headers: None)
    assert not isinstance(body, list | tuple)  # never read whole
    pieces = list(body)
    body.close()
    assert [len(piece) for piece in pieces] == [1024, 1024, 1024, 1024, 904]
    assert b"".join(pieces) == (site / "data.bin").read_bytes()


def test_settings_and_a_missing_folder(tmp_path: Path) -> None:
    settings = load_settings({"BRRTR_STATIC_PREFIX": "/assets/"}, static_dir="ui")
    assert (settings.static_dir, settings.static_prefix) == ("ui", "/assets")
    with pytest.raises(ConfigError, match="BRRTR_STATIC_PREFIX"):
        load_settings({"BRRTR_STATIC_PREFIX": "/a/../b"})
    with pytest.raises(ConfigError, match=r"--static-dir .*is not a readable folder"):
        build_app(HTTP_SPEC, {}, mock=True, environ={"BRRTR_STATIC_DIR": str(tmp_path / "no")})
    assert _parser().parse_args(["serve", "spec.yaml", "--static-dir", "ui"]).static_dir == "ui"


@pytest.mark.slow
def test_brrt_serve_static_dir(site: Path, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("BRRTR_") and name != "PORT"}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "brrt_actors", "serve", "specs/petstore.yaml", "--mock",
             "--dev", "--port", "0", "--static-dir", str(site)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"listening on http://[^\s:/]+:(\d+)", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        server: Any = type("Address", (), {"address": ("127.0.0.1", int(found.group(1)))})
        reply: Reply = call(server, "/static/app.js")
        assert reply.status == 200 and reply.body == SCRIPT
    finally:
        process.kill()
        process.wait(timeout=20)
