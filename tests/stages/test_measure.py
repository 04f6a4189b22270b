"""The measurement around the stages: every answer counts under the status the client got."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from brrt_actors.errors import HTTPError
from brrt_actors.metrics.figures import OperationMetrics
from brrt_actors.stages.measure import Measured


def test_measured_run_counts_http_errors_and_bugs() -> None:
    figures = OperationMetrics("op", "GET")

    def failing(error: Exception) -> Callable[[Any], Any]:
        def serve(request: Any) -> Any:
            assert figures.in_flight == 1
            raise error

        return Measured(figures)(serve)

    with pytest.raises(HTTPError):
        failing(HTTPError(418))(None)
    with pytest.raises(KeyError):
        failing(KeyError("bug"))(None)  # the app answers it with 500

    assert sorted(figures.series) == [418, 500]
    assert figures.in_flight == 0
