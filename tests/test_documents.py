"""What the repository's own prose says holds: the README's examples, the files it names.

The README's error examples are sent, as written, to the pet store served on a real socket,
and its answers compared with the README's (all but the request id, new for each request).
"""
from __future__ import annotations

import http.client
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import ujson
from conftest import Serve
from reference_spec import REFERENCE_PETSTORE, absent_reason

from brrt_actors import create_app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{8}")


def readme_section(title: str) -> str:
    """Return the text of the README's section `## <title>` (up to the next one)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def console_examples(section: str) -> list[tuple[str, Any]]:
    """Return the (command, answer as JSON) pairs of the section's ```console blocks."""
    examples: list[tuple[str, Any]] = []
    for block in FENCE.findall(section):
        for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            lines = chunk.splitlines()
            command = [lines.pop(0)]
            while command[-1].endswith("\\"):
                command[-1] = command[-1][:-1]
                command.append(lines.pop(0))
            examples.append((" ".join(command), ujson.loads("\n".join(lines))))
    return examples


def send_curl(command: str, base_url: str) -> tuple[int, str, Any]:
    """Send what the curl `command` would, to `base_url` instead of its host; return the answer."""
    words = shlex.split(command)
    assert words.pop(0) == "curl", command
    method, headers, body, url = None, {}, None, None
    while words:
        word = words.pop(0)
        if word == "-s":
            continue
        if word == "-X":
            method = words.pop(0)
        elif word == "-H":
            name, _, value = words.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = words.pop(0).encode()
        elif not word.startswith("-") and url is None:
            url = word
        else:
            pytest.fail(f"this test does not know curl's {word!r} (in {command!r}): teach it")
    assert url is not None, command
    target = urlsplit(url)
    served = urlsplit(base_url)
    connection = http.client.HTTPConnection(served.hostname or "", served.port, timeout=10)
    try:
        connection.request(method or ("POST" if body is not None else "GET"),
                           target.path + (f"?{target.query}" if target.query else ""),
                           body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), ujson.loads(
            response.read())
    finally:
        connection.close()


def test_the_readme_error_examples_are_what_the_server_answers(
        serve: Serve, petstore_env: dict[str, str]) -> None:
    examples = console_examples(readme_section("What the runtime answers by itself"))
    assert len(examples) == 2
    url = serve(create_app(ROOT / "specs" / "petstore.yaml", "handlers",
                           environ=petstore_env)).url
    for command, shown in examples:
        status, content_type, answer = send_curl(command, url)
        assert (status, content_type) == (shown["status"], "application/problem+json")
        assert REQUEST_ID.fullmatch(answer.pop("request_id"))
        assert REQUEST_ID.fullmatch(shown.pop("request_id"))
        assert answer == shown, command


def test_the_readme_says_where_the_reference_spec_comes_from() -> None:
    # A fresh clone skips the tests marked `reference`: the README's Development section and
    # the skip reason both say where BRRTRouter's spec comes from and what goes untested.
    development = readme_section("Development")
    assert "github.com/microscaler/BRRTRouter" in development
    assert "examples/pet_store/doc/openapi.yaml" in development
    assert "../shared/reference/brrtrouter-petstore.yaml" in development
    assert "-m reference" in development
    reason = absent_reason("something")
    assert "not tested: something" in reason
    assert str(REFERENCE_PETSTORE) in reason and "github.com/microscaler/BRRTRouter" in reason


def test_the_files_pyproject_names_exist() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    named = set(re.findall(r"[\w./-]+\.(?:md|cfg|ini|toml|txt)\b", text))
    assert named, "pyproject.toml names no file: this test checks nothing"
    assert {name for name in named if not (ROOT / name).is_file()} == set()
