"""`brrt gen`: write (or check) a runnable service for a spec, never clobbering user code.

What is written under the output folder::

    handlers/__init__.py      yours (written once)
    handlers/<tag>.py         yours: one stub per operation; later runs only append stubs
    handlers/models.py        generated: TypedDicts of the schemas, the request Protocols
    handlers/operations.py    generated: the operation table (read back to list removed ones)
    handlers/aliases.py       generated, when an operation's name is not a Python identifier
    locustfile.py             generated
    config.yaml, README.md    yours (written once)

Generated files start with a line saying so and are rewritten on every run; `check` compares
them (and the stubs new operations would get) with what is on disk.
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brrt_actors.codegen.plan import OperationPlan, ServicePlan, plan_service
from brrt_actors.codegen.render import render
from brrt_actors.codegen.types import Model, render_type
from brrt_actors.errors import ConfigError
from brrt_actors.security.scheme_settings import how_to_configure, scheme_kind
from brrt_actors.spec.model import SecurityScheme

__all__ = ["GenReport", "generate"]

_TYPING_NAMES = ("Any", "Literal", "NotRequired", "Protocol", "TypeAlias", "TypedDict")
_WEIGHTS = {"GET": 10, "HEAD": 10, "POST": 3, "PUT": 3, "PATCH": 3}


@dataclass(slots=True)
class GenReport:
    """What `generate` did (or, with ``check``, would do)."""

    written: list[str] = field(default_factory=list)  # generated files (re)written
    created: list[str] = field(default_factory=list)  # user-owned files created
    added: dict[str, list[str]] = field(default_factory=dict)  # user module -> new stubs
    deleted: list[str] = field(default_factory=list)  # generated files no longer needed
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # operations gone from the spec
    aliases: dict[str, str] = field(default_factory=dict)  # handler name -> module.function
    stale: list[str] = field(default_factory=list)  # with check: what differs

    @property
    def changed(self) -> bool:
        return bool(self.written or self.created or self.added or self.deleted)


def generate(spec_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
             package: str = "handlers", check: bool = False) -> GenReport:
    """Write the service of `spec_path` under `out_dir` (with `check`, only compare).

    Raises:
        SpecError: the spec cannot be served as written.
        ConfigError: `package` is not a Python identifier, or Jinja2 is missing.
    """
    if not package.isidentifier():
        raise ConfigError([("--package", f"{package!r} is not a Python package name")])
    plan = plan_service(spec_path)
    out = Path(out_dir)
    layout = _Layout(plan, Path(spec_path), out, package)
    report = GenReport(aliases={name: f"{op.module}.{op.function}"
                                for name, op in plan.aliases.items()})
    pkg = out / package
    existing = _user_functions(pkg)
    report.removed = _removed(pkg / "operations.py", plan, existing)
    for path, text in layout.generated().items():
        _put(path, text, report.written, report, check)
    if not plan.aliases and (pkg / "aliases.py").exists():
        report.deleted.append(str(pkg / "aliases.py"))
        if check:
            report.stale.append(f"{pkg / 'aliases.py'}: no longer generated")
        else:
            (pkg / "aliases.py").unlink()
    for path, text in layout.owned().items():
        if not path.exists():
            _put(path, text, report.created, report, check)
    for module, stubs in layout.stubs(existing).items():
        path = pkg / f"{module}.py"
        names = [op.function for op in stubs]
        if not path.exists():
            _put(path, layout.module_text(module, stubs), report.created, report, check)
            continue
        report.added[str(path)] = names
        if check:
            report.stale.append(f"{path}: no handler for {', '.join(names)} yet")
        else:
            path.write_text(_appended(path.read_text(encoding="utf-8"), stubs, layout),
                            encoding="utf-8")
    return report


def _put(path: Path, text: str, bucket: list[str], report: GenReport, check: bool) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        report.unchanged.append(str(path))
        return
    bucket.append(str(path))
    if check:
        report.stale.append(f"{path}: {'differs' if path.exists() else 'missing'}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


class _Layout:
    """The text of every file, from the plan."""

    def __init__(self, plan: ServicePlan, spec_path: Path, out: Path, package: str) -> None:
        self.plan = plan
        self.package = package
        self.out = out
        relative = Path(os.path.relpath(spec_path.resolve(), out.resolve())).as_posix()
        self.values: dict[str, Any] = {
            "spec": plan.spec, "spec_name": spec_path.name, "spec_path": relative,
            "package": package, "handlers_path": package,
            "locustfile_path": "locustfile.py", "config_path": "config.yaml",
            "aliases": plan.aliases, "operations": plan.operations,
        }
        self.modules: dict[str, list[OperationPlan]] = {}
        seen: set[str] = set()
        for op in plan.operations:
            if op.function not in seen:  # operations sharing a handler share its stub
                seen.add(op.function)
                self.modules.setdefault(op.module, []).append(op)

    def generated(self) -> dict[Path, str]:
        pkg = self.out / self.package
        files = {
            pkg / "models.py": self.models_text(),
            pkg / "operations.py": render("operations.py.jinja", **self.values),
            self.out / "locustfile.py": self.locustfile_text(),
        }
        if self.plan.aliases:
            modules = sorted({op.module for op in self.plan.aliases.values()})
            files[pkg / "aliases.py"] = render("aliases.py.jinja", modules=modules,
                                               **self.values)
        return files

    def owned(self) -> dict[Path, str]:
        pkg = self.out / self.package
        schemes = self.plan.spec.security_schemes
        tags = {module: self._what(module) for module in self.modules}
        return {
            pkg / "__init__.py": render("package_init.py.jinja", **self.values),
            self.out / "config.yaml": render("config.yaml.jinja",
                                             schemes=_scheme_sections(schemes), **self.values),
            self.out / "README.md": render("README.md.jinja", schemes=sorted(schemes),
                                           modules=sorted(self.modules), module_tags=tags,
                                           **self.values),
        }

    def _what(self, module: str) -> str:
        tags = sorted({op.operation.tags[0] for op in self.modules[module]
                       if op.operation.tags})
        return ("the operations tagged " + ", ".join(tags)) if tags else \
            "the operations without a tag"

    def stubs(self, existing: dict[str, str]) -> dict[str, list[OperationPlan]]:
        """Return the stubs to write by module: every function no user module defines."""
        return {module: missing for module, ops in self.modules.items()
                if (missing := [op for op in ops if op.function not in existing])}

    def stub_text(self, op: OperationPlan) -> str:
        summary = op.operation.summary.strip().splitlines()[0] if op.operation.summary.strip() \
            else f"Answer {op.operation.method} {op.operation.path}"
        summary += "" if summary.endswith((".", "!", "?")) else "."
        summary = summary.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        return render("stub.py.jinja", op=op, summary=summary).rstrip("\n")

    def module_text(self, module: str, stubs: list[OperationPlan]) -> str:
        return render("handlers_module.py.jinja", title=self.plan.spec.title,
                      what=self._what(module), typing_names=_typing_names(stubs),
                      uses_response=any(op.uses_response for op in stubs),
                      stubs=[self.stub_text(op) for op in stubs])

    def models_text(self) -> str:
        code = [_model_code(model) for model in self.plan.models]
        body = "\n".join(code) + "".join(
            text for op in self.plan.operations for _, text in op.attributes)
        used = [name for name in _TYPING_NAMES
                if name == "Protocol" or re.search(rf"\b{name}\b", body)]
        if "Any" not in used:
            used.insert(0, "Any")  # BaseRequest uses it
        return render("models.py.jinja", typing_names=used, model_code=code, **self.values)

    def locustfile_text(self) -> str:
        tasks: list[dict[str, Any]] = []
        names: set[str] = set()
        for op in self.plan.operations:
            name, number = op.function, 2
            while name in names or name.startswith("_"):
                name, number = f"{op.function}_{number}", number + 1
            names.add(name)
            sample = op.sample
            event_stream = "text/event-stream" in str(op.answer)
            tasks.append({
                "name": name, "operation": op.operation.operation_id,
                "method": op.operation.method, "path": op.operation.path,
                "weight": 1 if event_stream else _WEIGHTS.get(op.operation.method, 1),
                "sample": {
                    "method": sample.method, "target": sample.target,
                    "name": op.operation.path, "headers": sample.headers,
                    "body": sample.body,
                    "credentials": [[c.scheme, c.kind, c.location, c.name, c.scopes]
                                    for c in sample.credentials],
                },
            })
        return render("locustfile.py.jinja", tasks=tasks, **self.values)


def _model_code(model: Model) -> str:
    doc = model.doc.replace("\\", "\\\\").replace('"""', "'''")
    if model.alias is not None:
        comment = f"#: {doc}\n" if doc else ""
        return f"{comment}{model.name}: TypeAlias = {_quoted(render_type(model.alias))}"
    fields = model.fields or []
    if model.class_syntax:
        lines = [f"class {model.name}(TypedDict):"]
        if doc:
            lines.extend([f'    """{doc}"""', ""] if fields else [f'    """{doc}"""'])
        elif not fields:
            lines.append("    pass")
        lines.extend(f"    {f.key}: {_field_type(f.type, f.required)}" for f in fields)
        return "\n".join(lines)
    comment = f"#: {doc}\n" if doc else ""
    items = "".join(f"    {_quoted(f.key)}: {_quoted(_field_type(f.type, f.required))},\n"
                    for f in fields)
    return f'{comment}{model.name} = TypedDict("{model.name}", {{\n{items}}})'


def _field_type(t: Any, required: bool) -> str:
    text = render_type(t)
    return text if required else f"NotRequired[{text}]"


def _quoted(text: str) -> str:
    if '"' in text and "'" not in text and "\\" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scheme_sections(schemes: dict[str, SecurityScheme]) -> list[tuple[str, list[Any]]]:
    sections: dict[str, list[dict[str, Any]]] = {}
    for name, scheme in sorted(schemes.items()):
        kind = scheme_kind(scheme)
        section, lines = _SKELETONS.get(kind, ("", []))
        note = how_to_configure(scheme)
        if kind == "apiKey":
            note = f"API key in {scheme.location} {scheme.parameter_name}; or env " \
                   f"BRRTR_API_KEY__{name}"
        elif kind in ("bearer", "oauth2"):
            note = f"or env BRRTR_JWT_SECRET__{name}"
        sections.setdefault(section or "(not built in)", []).append(
            {"name": name, "note": note, "lines": lines})
    return list(sections.items())


_JWT_LINES = ["secret: ...                  # HS256: at least 32 random bytes",
              "algorithms: [HS256]",
              "# public_key_file: key.pem    # RS256 / ES256 ... instead of a secret",
              "# iss: https://issuer.example/",
              "# aud: my-api"]
_SKELETONS: dict[str, tuple[str, list[str]]] = {
    "apiKey": ("api_keys", ["key: ...                     # or keys: [k1, k2]"]),
    "bearer": ("bearer", _JWT_LINES),
    "oauth2": ("oauth2", _JWT_LINES),
    "openIdConnect": ("oidc", ["aud: my-api                  # discovery_url: the spec's "
                               "openIdConnectUrl"]),
    "basic": ("basic", ["users: {}                    # name: hash from "
                        "`brrt hash-password`"]),
}


# -- user modules ----------------------------------------------------------------------------

_GENERATED_MODULES = frozenset({"models", "operations", "aliases"})


def _user_functions(pkg: Path) -> dict[str, str]:
    """Return every top-level function of the user's modules: name -> module."""
    found: dict[str, str] = {}
    if not pkg.is_dir():
        return found
    for path in sorted(pkg.rglob("*.py")):
        if path.parent == pkg and path.stem in _GENERATED_MODULES:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError) as ex:
            raise ConfigError([(str(path), f"cannot be read as Python ({ex}); fix it, "
                                           "brrt gen adds stubs to it")]) from ex
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(node.name, path.stem)
    return found


def _removed(table: Path, plan: ServicePlan, existing: dict[str, str]) -> list[str]:
    """List the operations of the previous run that left the spec, with their functions."""
    if not table.exists():
        return []
    try:
        tree = ast.parse(table.read_text(encoding="utf-8"))
        previous: dict[str, dict[str, str]] = next(
            ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.AnnAssign) and node.value is not None
            and isinstance(node.target, ast.Name) and node.target.id == "OPERATIONS")
    except (SyntaxError, ValueError, StopIteration):
        return []
    current = {op.operation.operation_id for op in plan.operations}
    still_used = {op.function for op in plan.operations}
    lines = []
    for operation_id, entry in previous.items():
        if operation_id in current:
            continue
        function = entry.get("function", "")
        where = existing.get(function)
        if where is not None and function not in still_used:
            lines.append(f"{operation_id}: {where}.{function} is no longer used")
        else:
            lines.append(f"{operation_id}: removed")
    return lines


def _appended(text: str, stubs: list[OperationPlan], layout: _Layout) -> str:
    """Return the module `text` with `stubs` appended and the imports they need added."""
    tree = ast.parse(text)
    wanted: list[str] = []
    if not _imports(tree, None, "models", level=1):
        wanted.append("from . import models")
    if any(op.uses_response for op in stubs) and not _imports(tree, "brrt_actors", "Response"):
        wanted.append("from brrt_actors import Response")
    wanted.extend(f"from typing import {name}" for name in _typing_names(stubs)
                  if not _imports(tree, "typing", name))
    lines = text.splitlines()
    if wanted:
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        if imports:
            at = max(node.end_lineno or node.lineno for node in imports)
        elif tree.body and isinstance(tree.body[0], ast.Expr) \
                and isinstance(tree.body[0].value, ast.Constant):
            at = tree.body[0].end_lineno or 1
        else:
            at = 0
        lines[at:at] = wanted
    body = "\n".join(lines).rstrip("\n")
    return body + "".join(f"\n\n\n{layout.stub_text(op)}" for op in stubs) + "\n"


def _typing_names(stubs: list[OperationPlan]) -> list[str]:
    return sorted({name for op in stubs for name in op.typing_names})


def _imports(tree: ast.Module, module: str | None, name: str, level: int = 0) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == module
               and node.level == level and any(alias.name == name for alias in node.names)
               for node in tree.body)
