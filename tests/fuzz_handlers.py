"""Handlers of tests/specs/fuzz_styles.yaml: each echoes what the runtime decoded.

The spec's 200 responses declare the request's own schemas, so schemathesis' response checks
prove that every style decoded to values of the declared types.
"""
from __future__ import annotations

from typing import Any

from brrt_actors.handler import Request, UploadedFile


def _path(request: Request) -> dict[str, Any]:
    return dict(request.path_params)


def _query(request: Request) -> dict[str, Any]:
    return dict(request.query)


path_simple = path_simple_explode = _path
path_label = path_label_explode = _path
path_matrix = path_matrix_explode = _path
query_form = query_form_flat = query_delimited = query_deep = _query


def header_params(request: Request) -> dict[str, Any]:
    return dict(request.header_params)


def cookie_params(request: Request) -> dict[str, Any]:
    declared = ("word", "num", "ints")
    return {name: request.cookies[name] for name in declared if name in request.cookies}


def body_json(request: Request) -> Any:
    return request.body


def body_form(request: Request) -> Any:
    return request.body


def body_multipart(request: Request) -> dict[str, Any]:
    body: dict[str, Any] = request.body
    upload = body["file"]
    echo: dict[str, Any] = {"size": upload.size if isinstance(upload, UploadedFile)
                            else len(str(upload).encode())}
    for name in ("count", "tags"):
        if name in body:
            echo[name] = body[name]
    return echo
