"""Mock mode: answer every operation from its spec alone.

`generate_value` builds a value that validates against a translated (draft-07,
self-contained) schema; `build_mock_handler` turns an operation into a handler that serves
its first success response with the declared example — only when that example validates
against the response schema, otherwise with a generated value and a note saying so — or what
the client asks for with ``Prefer: code=N``, ``Prefer: example=NAME`` and ``Accept``
(`negotiation`). `headers` fills the declared response headers; `credentials` tells at start
what a client must send to each security scheme.

Everything is deterministic (no randomness): the same spec always gives the same answers.
"""
from __future__ import annotations

from brrt_actors.mock.handler import MockHandler, build_mock_handler
from brrt_actors.mock.values import MockError, generate_value

__all__ = ["MockError", "MockHandler", "build_mock_handler", "generate_value"]
