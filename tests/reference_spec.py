"""BRRTRouter's pet store spec, which the tests marked `reference` read from beside the checkout.

It is BRRTRouter's ``examples/pet_store/doc/openapi.yaml`` (github.com/microscaler/BRRTRouter,
Apache-2.0), kept unchanged in ``../shared/reference/brrtrouter-petstore.yaml`` and never copied
into this repository. A fresh clone has no ``../shared``: those tests skip, and their reason
says where the spec comes from and what goes untested (README, "Development").
"""
from __future__ import annotations

from pathlib import Path

REFERENCE_PETSTORE = (Path(__file__).resolve().parents[2] / "shared" / "reference"
                      / "brrtrouter-petstore.yaml")
SOURCE = "examples/pet_store/doc/openapi.yaml of github.com/microscaler/BRRTRouter"


def absent_reason(untested: str) -> str:
    """Return the skip reason of a test that needs the spec: what goes untested, and why."""
    return (f"not tested: {untested}. It needs {REFERENCE_PETSTORE}, which is absent: "
            f"BRRTRouter's pet store spec ({SOURCE}), kept beside the checkout, not in it; "
            'the README\'s "Development" section tells how to get it')
