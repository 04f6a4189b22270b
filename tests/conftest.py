"""Test setup: gevent monkey-patching first, as the entry point does."""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
TEST_SPECS = Path(__file__).resolve().parent / "specs"
REFERENCE_PETSTORE = ROOT.parent / "shared" / "reference" / "brrtrouter-petstore.yaml"

# Settings and secrets come from the environment; tests pass their own environ instead.
for _name in list(os.environ):
    if _name.startswith("BRRTR_"):
        del os.environ[_name]


# The secrets of the pet store's security schemes, as the environment gives them.
PETSTORE_BEARER_SECRET = "test-bearer-secret-0123456789abcdef"
PETSTORE_OAUTH2_SECRET = "test-oauth2-secret-0123456789abcdef"
PETSTORE_ENV = {
    "BRRTR_API_KEY__ApiKeyHeader": "test123",
    "BRRTR_JWT_SECRET__BearerAuth": PETSTORE_BEARER_SECRET,
    "BRRTR_JWT_SECRET__OAuth2": PETSTORE_OAUTH2_SECRET,
}


@pytest.fixture()
def petstore_env() -> dict[str, str]:
    """The environment the pet store needs: its API key and its JWT secrets."""
    return dict(PETSTORE_ENV)


@pytest.fixture()
def apps() -> Iterator[list[object]]:
    """Collect apps built by a test and stop their actors afterwards."""
    built: list[object] = []
    yield built
    for app in built:
        app.stop(0.5)  # type: ignore[attr-defined]
