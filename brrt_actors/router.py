"""The router: a radix tree over path segments, built once from the spec.

Lookup walks one tree node per path segment: a dict hit for a static segment, else the
node's single parameter edge. Static segments win over `{param}` segments at the same
depth; when a static branch dead-ends, the lookup backtracks to the parameter edge. The
cost of a lookup depends on the depth of the path, not on the number of routes.

Path parameters are returned raw (still percent-encoded): decoding happens after the
match, in the parameter stage, so that an encoded ``/`` or ``,`` stays part of a value.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from brrt_actors.errors import SpecError

T = TypeVar("T")


@dataclass(slots=True)
class _ParamEdge(Generic[T]):
    """A segment that is (or contains) one `{name}`: `prefix{name}suffix`."""

    name: str
    prefix: str
    suffix: str
    node: _Node[T]


@dataclass(slots=True, eq=False)
class _Node(Generic[T]):
    static: dict[str, _Node[T]] = field(default_factory=dict)
    params: list[_ParamEdge[T]] = field(default_factory=list)  # usually 0 or 1
    # The node's one way on when it has no static child and one bare `{param}` edge: any
    # non-empty segment takes it, so there is nothing to backtrack to (see `Router.lookup`).
    sole: _ParamEdge[T] | None = None
    # Filled on nodes where a route ends: method -> target, and the Allow header value.
    methods: dict[str, T] = field(default_factory=dict)
    allow: str = ""
    template: str = ""


@dataclass(slots=True)
class Match(Generic[T]):
    """A path that matched a route template (its methods may or may not fit)."""

    template: str
    methods: dict[str, T]
    allow: str  # the Allow header value for this path
    raw_params: dict[str, str]


def split_template(template: str) -> list[str]:
    """Split a path template into segments ("/a/{b}" -> ["a", "{b}"])."""
    if not template.startswith("/"):
        raise SpecError([("", f"path template {template!r} must start with '/'")])
    return template[1:].split("/")


def _param_edge_parts(segment: str, template: str) -> tuple[str, str, str] | None:
    """Return (prefix, name, suffix) of a segment with one parameter, or None if static."""
    start = segment.find("{")
    if start < 0:
        if "}" in segment:
            raise SpecError([("", f"path {template!r}: unbalanced '}}' in segment {segment!r}")])
        return None
    end = segment.find("}", start)
    if end < 0 or segment.find("{", start + 1) >= 0:
        raise SpecError([("", f"path {template!r}: segment {segment!r} must hold exactly "
                                 "one {parameter} (several in one segment are not supported)")])
    name = segment[start + 1:end]
    if not name:
        raise SpecError([("", f"path {template!r}: empty parameter name in segment {segment!r}")])
    return segment[:start], name, segment[end + 1:]


class Router(Generic[T]):
    """Map (method, raw path) to a route target, built once at start.

    Use `add` for every (method, template, target), then `lookup` per request.
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        # The routes without parameters, by their whole path: nothing beats them (static
        # segments win everywhere), so one dict hit answers them.
        self._static_routes: dict[str, _Node[T]] = {}
        # The nodes reached by static segments alone whose one way on is a bare `{param}`
        # that ends a route, by the path of those segments ("/pets" for "/pets/{id}"):
        # built at the first lookup after an `add` (see `_tail_routes`).
        self._tails: dict[str, _Node[T]] | None = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, method: str, template: str, target: T) -> None:
        """Register `target` for `method` on `template` (e.g. "/pets/{id}")."""
        node = self._root
        has_params = False
        for segment in split_template(template):
            parts = _param_edge_parts(segment, template)
            if parts is None:
                node.sole = None
                node = node.static.setdefault(segment, _Node())
                continue
            has_params = True
            prefix, name, suffix = parts
            for edge in node.params:
                if edge.prefix == prefix and edge.suffix == suffix:
                    if edge.name != name:
                        raise SpecError([("", f"path {template!r}: parameter {{{name}}} sits "
                                                 f"where another path has {{{edge.name}}}; "
                                                 "use one name")])
                    node = edge.node
                    break
            else:
                child: _Node[T] = _Node()
                node.params.append(_ParamEdge(name, prefix, suffix, child))
                # NOTE: most specific first: longer literal prefix/suffix before bare {param}.
                node.params.sort(key=lambda e: -(len(e.prefix) + len(e.suffix)))
                only = node.params[0]
                node.sole = (only if len(node.params) == 1 and not node.static
                             and not only.prefix and not only.suffix else None)
                node = child
        self._tails = None  # NOTE: `sole` and the routes' ends may have changed
        if method in node.methods:
            raise SpecError([("", f"{method} {template} is declared twice")])
        if node.template and node.template != template:
            raise SpecError([("", f"paths {node.template!r} and {template!r} are the same route")])
        node.template = template
        node.methods[method] = target
        node.allow = ", ".join(sorted(node.methods))
        if not has_params:
            self._static_routes[template] = node
        self._size += 1

    def finish(self, implicit: Callable[[frozenset[str]], Iterable[str]]) -> None:
        """Compute each route's Allow header, adding the methods the runtime answers itself.

        Args:
            implicit: given a route's declared methods, returns the extra ones (HEAD where
                there is GET, OPTIONS ...).
        """

        def visit(node: _Node[T]) -> None:
            if node.methods:
                declared = frozenset(node.methods)
                node.allow = ", ".join(sorted(declared | set(implicit(declared))))
            for child in node.static.values():
                visit(child)
            for edge in node.params:
                visit(edge.node)

        visit(self._root)

    def lookup(self, path: str) -> Match[T] | None:
        """Return the route matching the raw `path`, or None (404)."""
        found = self._static_routes.get(path)
        if found is not None:
            return Match(found.template, found.methods, found.allow, {})
        tails = self._tails if self._tails is not None else self._tail_routes()
        head, _, last = path.rpartition("/")
        found = tails.get(head)
        if found is not None and last:
            # PERF: "/pets/12345" by one dict hit: the walk below would take the same
            # static nodes, then the one bare parameter (Router.lookup 0.72 -> 0.4 µs).
            edge = found.sole
            assert edge is not None
            end = edge.node
            return Match(end.template, end.methods, end.allow, {edge.name: last})
        if path[:1] != "/":
            return None
        segments = path[1:].split("/")
        params: dict[str, str] = {}
        node = self._root
        # PERF: no recursion while each node offers one way on (static children only, or
        # `sole`): a dead end there is a miss, as no choice was made above it; the first node
        # with a choice hands over to `_match`. Router.lookup of the pet store's /pets/{id}
        # 0.97 -> 0.79 µs, /pets 0.62 -> 0.24 µs (the dict hit above); /api/rN/{id} of
        # benchmarks/router.py's table 1.14 -> 0.91 µs (CPU-time minima, taskset -c 1).
        for index, segment in enumerate(segments):
            sole = node.sole
            if sole is not None:
                if not segment:  # NOTE: an empty segment never fills a parameter
                    return None
                params[sole.name] = segment
                node = sole.node
            elif not node.params:
                child = node.static.get(segment)
                if child is None:
                    return None
                node = child
            else:
                found = self._match(node, segments, index, params)
                if found is None:
                    return None
                node = found
                break
        if not node.methods:
            return None
        return Match(node.template, node.methods, node.allow, params)

    def _tail_routes(self) -> dict[str, _Node[T]]:
        # NOTE: exact for `lookup`: a path of static segments is walked the same way with
        # or without choices on the way (static first, and it reaches this node), and a
        # `sole` node has no static child, so a non-empty last segment fills its parameter.
        tails: dict[str, _Node[T]] = {}

        def visit(node: _Node[T], prefix: str) -> None:
            if node.sole is not None and node.sole.node.methods:
                tails[prefix] = node
            for segment, child in node.static.items():
                visit(child, f"{prefix}/{segment}")

        visit(self._root, "")
        self._tails = tails
        return tails

    def _match(self, node: _Node[T], segments: list[str], index: int,
               params: dict[str, str]) -> _Node[T] | None:
        # PERF: iterative on static segments; recursion only where a parameter edge
        # makes backtracking possible.
        count = len(segments)
        while index < count:
            segment = segments[index]
            child = node.static.get(segment)
            if not node.params:
                if child is None:
                    return None
                node = child
                index += 1
                continue
            if child is not None:
                found = self._match(child, segments, index + 1, params)
                if found is not None:
                    return found
            for edge in node.params:
                value = self._edge_value(edge, segment)
                if value is None:
                    continue
                found = self._match(edge.node, segments, index + 1, params)
                if found is not None:
                    params[edge.name] = value
                    return found
            return None
        return node if node.methods else None

    @staticmethod
    def _edge_value(edge: _ParamEdge[T], segment: str) -> str | None:
        prefix, suffix = edge.prefix, edge.suffix
        if not prefix and not suffix:
            # NOTE: an empty segment never fills a parameter ("/pets/" is not "/pets/{id}").
            return segment or None
        if len(segment) <= len(prefix) + len(suffix):
            return None
        if not segment.startswith(prefix) or not segment.endswith(suffix):
            return None
        return segment[len(prefix):len(segment) - len(suffix)]

    def routes(self) -> list[tuple[str, str, T]]:
        """Return (method, template, target) for every route, sorted by template."""
        out: list[tuple[str, str, T]] = []

        def visit(node: _Node[T]) -> None:
            for method, target in node.methods.items():
                out.append((method, node.template, target))
            for child in node.static.values():
                visit(child)
            for edge in node.params:
                visit(edge.node)

        visit(self._root)
        return sorted(out, key=lambda r: (r[1], r[0]))
