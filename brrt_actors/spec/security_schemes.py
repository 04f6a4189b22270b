"""Reading a document's security schemes and security requirements (part of `load_spec`).

The schemes are ``components.securitySchemes``; the requirements are the document's and each
operation's ``security`` lists, checked against the schemes' names. Problems are reported
through the loader (`SpecReader`) with the others, never raised one by one.
"""
from __future__ import annotations

from typing import Any, Protocol

from brrt_actors.spec.model import SecurityRequirements, SecurityScheme
from brrt_actors.spec.refs import Documents, Location, child

__all__ = ["SpecReader", "read_security_requirements", "read_security_schemes"]

_SCHEME_TYPES = ("apiKey", "http", "oauth2", "openIdConnect", "mutualTLS")


class SpecReader(Protocol):
    """What reading the schemes needs of the loader: the documents and its problem reporter."""

    docs: Documents

    def where(self, loc: Location) -> str:
        """The JSON pointer (and file) of `loc`, as problems name it."""
    def error(self, loc: Location, message: str) -> None:
        """Report a problem at `loc`."""
    def resolved(self, value: Any, loc: Location) -> tuple[dict[str, Any], Location] | None:
        """`value` with its `$ref` followed, when it is a mapping (else reported: None)."""


def read_security_schemes(reader: SpecReader, document: dict[str, Any]
                          ) -> tuple[dict[str, SecurityScheme], set[str]]:
    """Read ``components.securitySchemes``.

    Returns:
        The schemes read, by name, and every declared name (a scheme with problems too: a
        requirement naming it is not also reported as naming an undefined scheme).
    """
    components = document.get("components") or {}
    loc = child(reader.docs.root, "components", "securitySchemes")
    raw = components.get("securitySchemes") if isinstance(components, dict) else None
    if raw is None:
        return {}, set()
    if not isinstance(raw, dict):
        reader.error(loc, "must be a mapping of scheme names to security schemes")
        return {}, set()
    schemes: dict[str, SecurityScheme] = {}
    for name, value in raw.items():
        found = reader.resolved(value, child(loc, name))
        if found is not None:
            scheme = _security_scheme(reader, name, *found)
            if scheme is not None:
                schemes[name] = scheme
    return schemes, set(raw)


def _security_scheme(reader: SpecReader, name: str, node: dict[str, Any],
                     loc: Location) -> SecurityScheme | None:
    kind = node.get("type")
    if kind not in _SCHEME_TYPES:
        reader.error(child(loc, "type"), f"type must be one of {', '.join(_SCHEME_TYPES)}")
        return None
    scheme = SecurityScheme(name=name, type=kind, pointer=reader.where(loc), raw=node)
    if kind == "apiKey":
        scheme.location = node.get("in")
        scheme.parameter_name = node.get("name")
        if scheme.location not in ("header", "query", "cookie"):
            reader.error(child(loc, "in"), "must be header, query or cookie")
        if not isinstance(scheme.parameter_name, str) or not scheme.parameter_name:
            reader.error(child(loc, "name"), "must name the header, query parameter or cookie")
    elif kind == "http":
        http = node.get("scheme")
        if not isinstance(http, str) or not http:
            reader.error(child(loc, "scheme"), "must name the HTTP scheme (bearer, basic ...)")
        else:
            scheme.scheme = http.lower()
        bearer_format = node.get("bearerFormat")
        scheme.bearer_format = bearer_format if isinstance(bearer_format, str) else None
    return scheme


def read_security_requirements(reader: SpecReader, value: Any, loc: Location,
                               scheme_names: set[str]) -> SecurityRequirements:
    """Read a ``security`` list: each requirement's scheme names must be in `scheme_names`."""
    if not isinstance(value, list):
        reader.error(loc, "must be a list of security requirements ([] for public)")
        return []
    requirements: SecurityRequirements = []
    for index, requirement in enumerate(value):
        at = child(loc, index)
        if not isinstance(requirement, dict):
            reader.error(at, "must be a mapping of scheme names to scope lists")
            continue
        for name, scopes in requirement.items():
            if name not in scheme_names:
                known = ", ".join(sorted(scheme_names)) or "none"
                reader.error(child(at, name), f"security scheme '{name}' is not defined in "
                                              "components.securitySchemes; define it or fix "
                                              f"the name (defined: {known})")
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                reader.error(child(at, name), "must be a list of scope names ([] for none)")
        requirements.append({name: list(scopes) if isinstance(scopes, list) else []
                             for name, scopes in requirement.items()})
    return requirements
