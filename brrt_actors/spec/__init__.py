"""Loading OpenAPI documents: references, schema translation, the operation model."""
from __future__ import annotations

from .loader import load_spec, load_spec_document
from .model import (
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
