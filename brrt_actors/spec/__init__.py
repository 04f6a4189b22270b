"""Loading OpenAPI documents: references, schema translation, the operation model."""
from __future__ import annotations

from brrt_actors.spec.loader import load_spec, load_spec_document
from brrt_actors.spec.model import (
    MISSING,
    MediaType,
    Operation,
    Parameter,
    RequestBody,
    ResponseSpec,
    SecurityScheme,
    Spec,
)

__all__ = [
    "MISSING",
    "MediaType",
    "Operation",
    "Parameter",
    "RequestBody",
    "ResponseSpec",
    "SecurityScheme",
    "Spec",
    "load_spec",
    "load_spec_document",
]
