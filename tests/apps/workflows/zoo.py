"""Workflows covering Agent Framework's semantics, built fresh by each caller.

The durable app registers them; the differential tests also run each one in-process with
``workflow.run()`` and compare outputs and events.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_framework import (
    Agent,
    AgentExecutor,
    AgentExecutorResponse,
    Case,
    Default,
    Executor,
    RunContext,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEvent,
    WorkflowExecutor,
    executor,
    handler,
    register_checkpoint_type,
    response_handler,
    step,
    workflow,
)

from durableagent.testing import OfflineChatClient

# -- sequential chain -------------------------------------------------------------------------------


class Upper(Executor):
    @handler
    async def run(self, text: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(text.upper())


class Reverse(Executor):
    @handler
    async def run(self, text: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(text[::-1])


class Finish(Executor):
    @handler
    async def run(self, text: str, ctx: WorkflowContext[Any, str]) -> None:
        await ctx.add_event(WorkflowEvent("data", data={"length": len(text)}, executor_id=self.id))
        await ctx.yield_output(f"done:{text}")


def sequential() -> Workflow:
    upper, reverse, finish = Upper(id="upper"), Reverse(id="reverse"), Finish(id="finish")
    return WorkflowBuilder(name="sequential", start_executor=upper).add_chain([upper, reverse, finish]).build()


# -- fan-out / fan-in with shared state ------------------------------------------------------------


class Split(Executor):
    @handler
    async def run(self, text: str, ctx: WorkflowContext[str]) -> None:
        ctx.set_state("original", text)
        await ctx.send_message(text)


class Count(Executor):
    def __init__(self, id: str, letter: str) -> None:
        super().__init__(id=id)
        self.letter = letter

    @handler
    async def run(self, text: str, ctx: WorkflowContext[dict[str, int]]) -> None:
        await asyncio.sleep(0.01 if self.letter == "a" else 0)
        await ctx.send_message({self.letter: text.count(self.letter)})


class Merge(Executor):
    @handler
    async def run(self, counts: list[dict[str, int]], ctx: WorkflowContext[Any, dict[str, Any]]) -> None:
        merged: dict[str, Any] = {}
        for item in counts:
            merged.update(item)
        merged["original"] = ctx.get_state("original")
        await ctx.yield_output(merged)


def fan_out_in() -> Workflow:
    split = Split(id="split")
    counters = [Count(f"count-{c}", c) for c in "abc"]
    merge = Merge(id="merge")
    return (
        WorkflowBuilder(name="fanout", start_executor=split)
        .add_fan_out_edges(split, counters)
        .add_fan_in_edges(counters, merge)
        .build()
    )


# -- switch-case and conditional edges (one condition async) ---------------------------------------


@dataclass
class Ticket:
    kind: str
    amount: int


# Objects that cross supersteps live in checkpoints; Agent Framework decodes only allowed types.
register_checkpoint_type(Ticket)


class Intake(Executor):
    @handler
    async def run(self, ticket: Ticket, ctx: WorkflowContext[Ticket]) -> None:
        await ctx.send_message(ticket)


class Route(Executor):
    def __init__(self, id: str) -> None:
        super().__init__(id=id)

    @handler
    async def run(self, ticket: Ticket, ctx: WorkflowContext[Any, str]) -> None:
        await ctx.yield_output(f"{self.id}:{ticket.kind}:{ticket.amount}")


async def _is_large(ticket: Ticket) -> bool:
    await asyncio.sleep(0)
    return ticket.amount >= 100


def routing() -> Workflow:
    intake = Intake(id="intake")
    refunds, sales, other, audit = Route("refunds"), Route("sales"), Route("other"), Route("audit")
    return (
        WorkflowBuilder(name="routing", start_executor=intake)
        .add_switch_case_edge_group(
            intake,
            [
                Case(condition=lambda t: t.kind == "refund", target=refunds),
                Case(condition=lambda t: t.kind == "sale", target=sales),
                Default(target=other),
            ],
        )
        .add_edge(intake, audit, condition=_is_large)
        .build()
    )


# -- human in the loop --------------------------------------------------------------------------------


@dataclass
class Draft:
    text: str


register_checkpoint_type(Draft)


class Writer(Executor):
    @handler
    async def run(self, topic: str, ctx: WorkflowContext[Draft]) -> None:
        await ctx.send_message(Draft(f"draft about {topic}"))


class Approver(Executor):
    @handler
    async def run(self, draft: Draft, ctx: WorkflowContext[Any, str]) -> None:
        await ctx.request_info(request_data=draft, response_type=bool)

    @response_handler
    async def decided(self, draft: Draft, approved: bool, ctx: WorkflowContext[Any, str]) -> None:
        await ctx.yield_output(f"{'published' if approved else 'rejected'}: {draft.text}")


def approval() -> Workflow:
    writer, approver = Writer(id="writer"), Approver(id="approver")
    return WorkflowBuilder(name="approval", start_executor=writer).add_edge(writer, approver).build()


class Slow(Executor):
    """Runs ``n`` supersteps in a loop while the approver's request is already pending."""

    @handler
    async def run(self, n: int, ctx: WorkflowContext[int, str]) -> None:
        await asyncio.sleep(0.3)
        if n > 0:
            await ctx.send_message(n - 1)
        else:
            await ctx.yield_output("slow branch done")


class Kickoff(Executor):
    @handler
    async def run(self, topic: str, ctx: WorkflowContext[Any]) -> None:
        await ctx.send_message(Draft(f"draft about {topic}"), target_id="approver")
        await ctx.send_message(6, target_id="slow")


def busy_approval() -> Workflow:
    kickoff, approver, slow = Kickoff(id="kickoff"), Approver(id="approver"), Slow(id="slow")
    return (
        WorkflowBuilder(name="busyapproval", start_executor=kickoff)
        .add_edge(kickoff, approver)
        .add_edge(kickoff, slow)
        .add_edge(slow, slow)
        .build()
    )


# -- loops (many supersteps) -----------------------------------------------------------------------


class Counter(Executor):
    @handler
    async def run(self, remaining: int, ctx: WorkflowContext[int, int]) -> None:
        total = ctx.get_state("total", 0) + 1
        ctx.set_state("total", total)
        if remaining > 1:
            await ctx.send_message(remaining - 1)
        else:
            await ctx.yield_output(total)


def looping() -> Workflow:
    counter = Counter(id="counter")
    return (
        WorkflowBuilder(name="looping", start_executor=counter, max_iterations=1000).add_edge(counter, counter).build()
    )


# -- crash tests: slow steps that log every execution ------------------------------------------


def _log_tick(line: str) -> None:
    path = os.environ.get("TICK_LOG")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Tick(Executor):
    @handler
    async def run(self, remaining: int, ctx: WorkflowContext[int, int]) -> None:
        await asyncio.sleep(float(os.environ.get("TICK_SECONDS", "0")))
        _log_tick(f"graph {remaining}")
        ctx.set_state("ticks", ctx.get_state("ticks", 0) + 1)
        if remaining > 1:
            await ctx.send_message(remaining - 1)
        else:
            await ctx.yield_output(ctx.get_state("ticks"))


def ticking() -> Workflow:
    tick = Tick(id="tick")
    return WorkflowBuilder(name="ticking", start_executor=tick, max_iterations=1000).add_edge(tick, tick).build()


@step
async def slow_square(i: int) -> int:
    await asyncio.sleep(float(os.environ.get("TICK_SECONDS", "0")))
    _log_tick(f"step {i}")
    return i * i


@workflow(name="slowsteps")
async def slow_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await slow_square(i)
    return total


# -- failure ----------------------------------------------------------------------------------------


@executor(id="explode")
async def explode(text: str, ctx: WorkflowContext[str]) -> None:
    raise RuntimeError(f"cannot handle {text}")


def failing() -> Workflow:
    return WorkflowBuilder(name="failing", start_executor=explode).build()


# -- sub-workflow ---------------------------------------------------------------------------------------


class Wrap(Executor):
    @handler
    async def run(self, text: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(f"[{text}]")


class Unwrap(Executor):
    @handler
    async def run(self, text: str, ctx: WorkflowContext[Any, str]) -> None:
        await ctx.yield_output(f"outer got {text}")


class Inner(Executor):
    @handler
    async def run(self, text: str, ctx: WorkflowContext[Any, str]) -> None:
        await ctx.yield_output(text.replace("[", "<").replace("]", ">"))


def nested() -> Workflow:
    inner_start = Inner(id="inner")
    inner = WorkflowBuilder(name="inner", start_executor=inner_start).build()
    wrap, sub, unwrap = Wrap(id="wrap"), WorkflowExecutor(inner, id="sub"), Unwrap(id="unwrap")
    return WorkflowBuilder(name="nested", start_executor=wrap).add_chain([wrap, sub, unwrap]).build()


# -- agent executors (their responses are workflow outputs) ----------------------------------------


def agents() -> Workflow:
    writer = AgentExecutor(Agent(client=OfflineChatClient(), name="WriterAgent", instructions="Write."), id="write")
    editor = AgentExecutor(Agent(client=OfflineChatClient(), name="EditorAgent", instructions="Edit."), id="edit")
    return WorkflowBuilder(name="agents", start_executor=writer, output_from=[editor]).add_edge(writer, editor).build()


def agent_text(response: AgentExecutorResponse) -> str:
    return response.agent_response.text


# -- functional -------------------------------------------------------------------------------------------


@step
async def shout(text: str) -> str:
    return text.upper()


@step
async def count_words(text: str) -> int:
    return len(text.split())


@workflow(name="functional")
async def functional(text: str, ctx: RunContext) -> dict[str, Any]:
    loud = await shout(text)
    words, again = await asyncio.gather(count_words(loud), shout(text + "!"))
    ctx.set_state("words", words)
    approved = await ctx.request_info({"question": f"publish {loud}?"}, response_type=bool, request_id="publish")
    return {"loud": loud, "again": again, "words": ctx.get_state("words"), "approved": approved}


@step
async def pause(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@workflow(name="lateask")
async def late_ask(seconds: float, ctx: RunContext) -> str:
    """Asks a question with a known request id after a pause, so answers can come early."""
    await pause(seconds)
    go = await ctx.request_info({"question": "go?"}, response_type=bool, request_id="go")
    return "went" if go else "stayed"


GRAPH_BUILDERS: dict[str, Callable[[], Workflow]] = {
    "sequential": sequential,
    "fanout": fan_out_in,
    "routing": routing,
    "approval": approval,
    "busyapproval": busy_approval,
    "looping": looping,
    "failing": failing,
    "nested": nested,
    "agents": agents,
    "ticking": ticking,
}
