"""`brrt lint`: errors and warnings apart, each with its JSON pointer; exit 1 on errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REFERENCE_PETSTORE, ROOT, SPECS, TEST_SPECS

from brrt_actors.lint import lint_spec

_NO_REFERENCE = (f"not tested: brrt lint on BRRTRouter's pet store; it needs its spec at "
                 f"{REFERENCE_PETSTORE} (kept beside the checkout, never copied here)")

ERRORS = """\
openapi: 3.0.3
info: {title: Errors, version: "1"}
paths:
  /b:
    get:
      operationId: get_b
      responses: {}
  /c:
    post:
      operationId: get_b
      responses: {"200": {description: ok}}
  /d/{x}:
    get:
      operationId: get_d
      responses: {"200": {description: ok}}
components:
  schemas:
    Lonely: {$ref: "#/components/schemas/Nowhere"}
    Broken: {type: string, pattern: "("}
"""

WARNINGS = """\
openapi: 3.0.3
info: {title: Warnings, version: "1"}
security: [{Key: []}]
paths:
  /a/{id}:
    get:
      operationId: get-a
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}, example: "x"}
      responses:
        default:
          description: anything
          content: {application/json: {schema: {type: object}}}
  /c:
    post:
      operationId: post_c
      responses:
        "200":
          description: no schema
          content: {application/json: {example: {a: 1}}}
  /d:
    get:
      operationId: get_d
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Thing"}
              examples:
                bad: {value: {n: "one"}}
components:
  schemas:
    Thing:
      type: object
      properties:
        n: {type: integer, example: "two"}
    Lonely: {type: string}
  securitySchemes:
    Key: {type: apiKey, in: header, name: X-Key}
    Spare: {type: http, scheme: basic}
"""


def _write(tmp_path: Path, text: str) -> Path:
    spec = tmp_path / "linted.yaml"
    spec.write_text(text)
    return spec


def test_errors_have_their_pointers(tmp_path: Path) -> None:
    report = lint_spec(_write(tmp_path, ERRORS))
    assert {(f.pointer, f.rule) for f in report.errors} == {
        ("/paths/~1c/post/operationId", "operation-id"),  # duplicate
        ("/paths/~1d~1{x}/get", "path-parameter"),  # {x} is not declared
        ("/paths/~1b/get/responses", "no-responses"),  # responses: {}
        ("/components/schemas/Lonely/$ref", "unresolved-ref"),  # nothing loads it
        ("/components/schemas/Broken/pattern", "schema"),  # no operation uses it either
    }
    # the examples of the operations wait for a spec that loads; lint says so
    assert ("", "not-checked") in {(f.pointer, f.rule) for f in report.warnings}


def test_warnings_have_their_pointers(tmp_path: Path) -> None:
    report = lint_spec(_write(tmp_path, WARNINGS))
    assert report.errors == []
    assert {(f.pointer, f.rule) for f in report.warnings} == {
        ("/paths/~1a~1{id}/get/operationId", "operation-id-identifier"),
        ("/paths/~1a~1{id}/get/responses", "no-success-response"),
        ("/paths/~1c/post/responses/200/content/application~1json", "no-response-schema"),
        ("/paths/~1a~1{id}/get/parameters/0/example", "invalid-example"),
        ("/paths/~1d/get/responses/200/content/application~1json/examples/bad/value",
         "invalid-example"),
        ("/components/schemas/Thing/properties/n/example", "invalid-example"),
        ("/components/schemas/Lonely", "unused-component"),
        ("/components/securitySchemes/Spare", "unused-security-scheme"),
    }
    named = next(f for f in report.warnings if f.rule == "operation-id-identifier")
    assert "brrt gen names its function 'get_a'" in named.message


def test_json_output_and_exit_codes(tmp_path: Path) -> None:
    linted = _write(tmp_path, ERRORS)
    done = subprocess.run([sys.executable, "-m", "brrt_actors", "lint", str(linted),
                           "--format", "json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["spec"] == str(linted)
    assert {"level", "pointer", "rule", "message"} == set(report["errors"][0])
    assert all(item["level"] == "warning" for item in report["warnings"])
    # warnings only: exit 0
    done = subprocess.run([sys.executable, "-m", "brrt_actors", "lint",
                           str(TEST_SPECS / "codegen_shapes.yaml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
    assert "0 error(s), 3 warning(s)" in done.stdout
    assert "warnings:\n" in done.stdout


def test_an_unreadable_spec_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    done = subprocess.run([sys.executable, "-m", "brrt_actors", "lint", str(missing)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{missing}: file not found" in done.stdout


def test_the_pet_store_has_no_errors() -> None:
    report = lint_spec(SPECS / "petstore.yaml")
    assert report.errors == []


@pytest.mark.reference
@pytest.mark.skipif(not REFERENCE_PETSTORE.exists(), reason=_NO_REFERENCE)
def test_brrtrouter_examples_that_break_their_schemas_are_found() -> None:
    report = lint_spec(REFERENCE_PETSTORE)
    assert report.errors == []
    bad = {f.pointer for f in report.warnings if f.rule == "invalid-example"}
    assert bad == {
        "/paths/~1users/get/responses/200/content/application~1json/examples/"
        "userListExample/value",
        "/paths/~1users~1{user_id}/get/responses/200/content/application~1json/examples/"
        "userExample/value",
    }
