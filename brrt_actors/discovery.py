"""Finding the user's handler functions: a package, a module, or a path to either.

A folder needs no ``__init__.py``: a plain folder of modules is imported as a namespace
package (PEP 420) named after the folder.

Every public function of the package and of its submodules is a candidate, matched to an
operation by its name (the operationId, or the operation's `x-handler`).
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from brrt_actors.errors import SpecError
from brrt_actors.spec.model import Operation

Handler = Callable[..., Any]
HandlersArg = str | Path | ModuleType | Mapping[str, Handler] | None


def _import_path(path: Path) -> ModuleType:
    path = path.resolve()
    if path.is_dir():
        if not path.name.isidentifier():
            raise SpecError([("--handlers", f"{path}: a handlers folder is imported by its "
                                            f"name, and {path.name!r} is not a Python name; "
                                            "rename the folder (letters, digits, _)")])
        parent = str(path.parent)
        if parent not in sys.path:
            sys.path.insert(0, parent)
        module = _import_name(path.name)
        # NOTE: a package of the same name imported earlier (or the standard library's, for a
        # folder named like `json`) would silently stand in for the folder asked for. A
        # folder without __init__.py is a namespace package (PEP 420): it must be that
        # folder alone.
        origin = getattr(module, "__file__", None)
        if origin is not None:
            found = Path(origin).resolve().parent == path
        else:
            found = [Path(p).resolve() for p in getattr(module, "__path__", ())] == [path]
        if not found:
            where = origin or list(getattr(module, "__path__", ())) or module
            raise SpecError([("--handlers", f"{path} is imported as {path.name!r}, but that "
                                            f"name is already the module {where!r}; "
                                            "rename the folder")])
        return module
    if path.suffix != ".py" or not path.is_file():
        raise SpecError([("--handlers", f"{path} is neither a package folder nor a .py file")])
    module_name = f"brrt_handlers_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpecError([("--handlers", f"cannot import {path}")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    parent = str(path.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)  # so the file can import its neighbours
    spec.loader.exec_module(module)
    return module


def import_handlers_module(target: str | Path | ModuleType) -> ModuleType:
    """Import the handlers package or module named (or located) by `target`."""
    if isinstance(target, ModuleType):
        return target
    text = str(target)
    looks_like_path = isinstance(target, Path) or "/" in text or text.endswith(".py")
    if looks_like_path or Path(text).exists():
        return _import_path(Path(text))
    return _import_name(text)


def _import_name(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as ex:
        # NOTE: only import failures become a start error; any other exception raised by the
        # user's module keeps its traceback.
        raise SpecError([("--handlers", f"cannot import handlers {name!r}: {ex}")]) from ex


def _modules_of(root: ModuleType) -> Iterable[ModuleType]:
    yield root
    search = getattr(root, "__path__", None)
    if search is None:
        return
    for info in pkgutil.walk_packages(search, prefix=root.__name__ + "."):
        yield _import_name(info.name)


def collect_functions(root: ModuleType,
                      wanted: Collection[str] | None = None) -> dict[str, Handler]:
    """Return every public function of `root` and its submodules by name.

    Args:
        root: the handlers package or module.
        wanted: only these names (the operations' handler names); None for all.

    Raises:
        SpecError: when two different functions share a wanted name (every clash listed).
    """
    found: dict[str, Handler] = {}
    where: dict[str, str] = {}
    clashes: list[tuple[str, str]] = []
    for module in _modules_of(root):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or (wanted is not None and name not in wanted):
                continue
            if name in found and found[name] is not function:
                clashes.append(("--handlers", f"two different functions named {name!r}: "
                                              f"in {where[name]} and in {module.__name__}; "
                                              "keep one (or rename one and point its "
                                              "operation at it with x-handler)"))
                continue
            found[name] = function
            where.setdefault(name, module.__name__)
    if clashes:
        raise SpecError(clashes)
    return found


def resolve_handlers(operations: Iterable[Operation], handlers: HandlersArg,
                     ) -> tuple[dict[str, Handler], list[Operation]]:
    """Match each operation to its handler.

    A package or module is searched for each operation's handler name (its `x-handler`, else
    its operationId); a mapping may be keyed by operationId or by handler name.

    Returns:
        The handlers by operationId, and the operations that have none.
    """
    operations = list(operations)
    by_id: Mapping[str, Handler] = {}
    if handlers is None:
        by_name: Mapping[str, Handler] = {}
    elif isinstance(handlers, Mapping):
        by_id = by_name = handlers
    else:
        # NOTE: only the names operations ask for can clash; two modules may well each
        # have a public helper of the same name.
        by_name = collect_functions(import_handlers_module(handlers),
                                    {op.handler_name for op in operations})
    resolved: dict[str, Handler] = {}
    missing: list[Operation] = []
    for operation in operations:
        function = by_id.get(operation.operation_id) or by_name.get(operation.handler_name)
        if function is None:
            missing.append(operation)
        else:
            resolved[operation.operation_id] = function
    return resolved, missing


def missing_handlers_error(missing: list[Operation]) -> SpecError:
    """Return the start error that lists every operation without a handler."""
    return SpecError([
        (op.pointer, f"no handler for operation {op.operation_id!r} ({op.method} {op.path}): "
                     f"define a function named {op.handler_name!r} in the handlers, "
                     "or serve with --mock")
        for op in missing
    ])


#: What a handlers package may name security providers by scheme under (`declared_providers`).
PROVIDERS_ATTRIBUTE = "SECURITY_PROVIDERS"


def declared_providers(handlers: HandlersArg) -> dict[str, Any]:
    """Return the security providers a handlers package or module gives, by scheme name.

    A package (or module) passed as handlers may define ``SECURITY_PROVIDERS = {"Scheme":
    provider}``: the app built from it uses those providers for those schemes. It is read
    for that one app only; nothing is registered globally.

    Raises:
        SpecError: ``SECURITY_PROVIDERS`` is not a mapping of scheme names.
    """
    if handlers is None or isinstance(handlers, Mapping):
        return {}
    module = import_handlers_module(handlers)
    given = getattr(module, PROVIDERS_ATTRIBUTE, None)
    if given is None:
        return {}
    if not isinstance(given, Mapping) or not all(isinstance(name, str) for name in given):
        raise SpecError([(f"{module.__name__}.{PROVIDERS_ATTRIBUTE}",
                          "must be a mapping of security scheme names to providers")])
    return dict(given)
