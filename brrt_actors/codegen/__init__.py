"""`brrt gen`: a runnable service for a spec (handler stubs, typed models, a locustfile).

`generate` writes it (or, with ``check``, tells what is stale); `plan_service` computes every
file's content without writing. Needs Jinja2 (the ``gen`` extra).
"""
from __future__ import annotations

from brrt_actors.codegen.generator import GenReport, generate
from brrt_actors.codegen.names import handler_functions, python_name
from brrt_actors.codegen.plan import ServicePlan, plan_service

__all__ = ["GenReport", "ServicePlan", "generate", "handler_functions", "plan_service",
           "python_name"]
