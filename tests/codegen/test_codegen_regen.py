"""`brrt gen` again after the spec changed: user code is never clobbered; `--check` for CI."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT, TEST_SPECS

from brrt_actors.codegen import generate
from brrt_actors.config import load_settings
from brrt_actors.entrypoints.commands import generate_service

SHAPES = TEST_SPECS / "codegen_shapes.yaml"


def _spec_copy(tmp_path: Path) -> Path:
    spec = tmp_path / "api.yaml"
    spec.write_text(SHAPES.read_text())
    return spec


def _edit(spec: Path, *, add: bool = False, rename: bool = False,
          drop_aliases: bool = False) -> None:
    document = yaml.safe_load(spec.read_text())
    paths = document["paths"]
    if add:
        paths["/nodes/{id}/kids"] = {"delete": {
            "operationId": "prune", "tags": ["trees"], "summary": "Prune a node.",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {"204": {"description": "pruned"}}}}
    if rename:
        paths["/matrix"]["get"]["operationId"] = "matrix_v2"
    if drop_aliases:
        paths["/nodes/{id}"]["get"]["operationId"] = "get_node"
        paths["/nodes"]["post"]["operationId"] = "classify"
    spec.write_text(yaml.safe_dump(document, sort_keys=False))


def test_regenerating_keeps_user_code_adds_stubs_and_lists_removed(tmp_path: Path) -> None:
    spec, out = _spec_copy(tmp_path), tmp_path / "svc"
    generate(spec, out, package="svc_a")
    trees = out / "svc_a" / "trees.py"
    edited = trees.read_text().replace('"""One node of the tree, with its children.',
                                       '"""Mine: my own words.') + "\n\ndef helper() -> int:\n" \
                                                                  "    return 1\n"
    trees.write_text(edited)
    (out / "config.yaml").write_text("# mine\n")
    _edit(spec, add=True, rename=True)

    report = generate(spec, out, package="svc_a")

    text = trees.read_text()
    assert text.startswith(edited.rstrip("\n"))  # every byte of the user's code is kept
    assert "\n\n\ndef prune(request: models.PruneRequest) -> Response:\n" in text
    assert report.added == {str(trees): ["prune"], str(out / "svc_a" / "shapes.py"):
                            ["matrix_v2"]}
    assert report.removed == ["matrix: shapes.matrix is no longer used"]
    assert (out / "config.yaml").read_text() == "# mine\n"  # user-owned, written once
    assert '"prune": {' in (out / "svc_a" / "operations.py").read_text()
    assert "class PruneRequest(BaseRequest, Protocol):" in \
        (out / "svc_a" / "models.py").read_text()


def test_stub_imports_are_added_to_a_module_that_lacks_them(tmp_path: Path) -> None:
    spec, out = _spec_copy(tmp_path), tmp_path / "svc"
    generate(spec, out, package="svc_b")
    trees = out / "svc_b" / "trees.py"
    trees.write_text('"""Mine."""\nfrom __future__ import annotations\n\nimport os\n\n\n'
                     "def get_node(request: object) -> object:\n    return os.sep\n\n\n"
                     "def class_(request: object) -> object:\n    return 1\n")
    _edit(spec, add=True)
    generate(spec, out, package="svc_b")
    text = trees.read_text()
    assert text.startswith('"""Mine."""\nfrom __future__ import annotations\n\nimport os\n'
                           "from . import models\nfrom brrt_actors import Response\n")
    compile(text, str(trees), "exec")


def test_check_says_what_is_stale_and_exits_1(tmp_path: Path) -> None:
    spec, out = _spec_copy(tmp_path), tmp_path / "svc"
    assert generate_service(spec, out, io.StringIO(), package="svc_c") == 0
    printed = io.StringIO()
    assert generate_service(spec, out, printed, package="svc_c", check=True) == 0
    assert printed.getvalue().endswith(f"{out}: up to date\n")

    _edit(spec, add=True, drop_aliases=True)
    before = {path: path.read_text() for path in out.rglob("*") if path.is_file()}
    printed = io.StringIO()
    assert generate_service(spec, out, printed, package="svc_c", check=True) == 1
    text = printed.getvalue()
    assert f"stale: {out / 'svc_c' / 'models.py'}: differs" in text
    assert f"stale: {out / 'svc_c' / 'trees.py'}: no handler for classify, prune yet" in text
    assert "removed from the spec: class: trees.class_ is no longer used" in text
    assert f"stale: {out / 'svc_c' / 'aliases.py'}: no longer generated" in text
    assert {path: path.read_text() for path in out.rglob("*") if path.is_file()} == before

    assert generate_service(spec, out, io.StringIO(), package="svc_c") == 0
    assert not (out / "svc_c" / "aliases.py").exists()
    assert generate_service(spec, out, io.StringIO(), package="svc_c", check=True) == 0


def test_the_command_line_generates_and_checks(tmp_path: Path) -> None:
    out = tmp_path / "svc"
    done = subprocess.run([sys.executable, "-m", "brrt_actors", "gen", str(SHAPES), "--out",
                           str(out), "--package", "svc_d"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "name 'get-node' cannot be a Python function name: trees.get_node handles it" \
        in done.stdout
    assert f"created {out / 'svc_d' / 'trees.py'}" in done.stdout
    (out / "svc_d" / "models.py").write_text("# edited\n")
    done = subprocess.run([sys.executable, "-m", "brrt_actors", "gen", str(SHAPES), "--out",
                           str(out), "--package", "svc_d", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"stale: {out / 'svc_d' / 'models.py'}: differs" in done.stdout


def test_a_spec_with_errors_generates_nothing(tmp_path: Path) -> None:
    printed = io.StringIO()
    code = generate_service(TEST_SPECS / "broken_three.yaml", tmp_path / "svc", printed)
    assert code == 1
    assert "problem(s); nothing generated" in printed.getvalue()
    assert "/paths/~1no-id/get: operationId is missing" in printed.getvalue()
    assert not (tmp_path / "svc").exists()


def test_the_config_skeleton_loads_and_lists_every_scheme(tmp_path: Path) -> None:
    out = tmp_path / "svc"
    generate(TEST_SPECS / "codegen_params.yaml", out, package="svc_e")
    config = out / "config.yaml"
    text = config.read_text()
    for line in ("#   api_keys:", "#     ApiKeyCookie:  # API key in cookie token;",
                 "#     ApiKeyQuery:", "#   basic:", "#     Basic:", "#   bearer:",
                 "#     Bearer:  # or env BRRTR_JWT_SECRET__Bearer", "#   oauth2:",
                 "#     OAuth:", "#       algorithms: [HS256]"):
        assert line in text
    settings = load_settings({}, str(config))
    assert settings.port == 8080


def test_a_package_name_must_be_an_identifier(tmp_path: Path) -> None:
    printed = io.StringIO()
    assert generate_service(SHAPES, tmp_path / "svc", printed, package="my-handlers") == 1
    assert "--package: 'my-handlers' is not a Python package name" in printed.getvalue()
    assert not (tmp_path / "svc").exists()
