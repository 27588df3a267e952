"""The benchmark's workflow: a linear chain of trivial executors, one superstep each.

Shared by the durable app (``function_app.py``) and the in-process side of
``benchmarks/workflows_bench.py``, so both run exactly the same graph.
"""

from __future__ import annotations

from typing import Any

from agent_framework import Executor, Workflow, WorkflowBuilder, WorkflowContext, handler

NAME = "Chain"


class Pass(Executor):
    """Adds one mark to the message and sends it on."""

    @handler
    async def forward(self, message: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(message + ".")


class Finish(Executor):
    """Yields the message as the workflow's output."""

    @handler
    async def finish(self, message: str, ctx: WorkflowContext[Any, str]) -> None:
        await ctx.yield_output(message)


def build(supersteps: int) -> Workflow:
    """A workflow of ``supersteps`` executors in a line (the last one yields the output)."""
    executors: list[Executor] = [Pass(id=f"pass{i}") for i in range(supersteps - 1)]
    executors.append(Finish(id="finish"))
    builder = WorkflowBuilder(name=NAME, start_executor=executors[0], max_iterations=supersteps + 10)
    if len(executors) > 1:
        builder = builder.add_chain(executors)
    return builder.build()
