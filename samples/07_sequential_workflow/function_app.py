"""A sequential workflow: a product brief becomes a finished product description, one step after the other.

    prepare  ->  Writer (agent)  ->  handoff  ->  Editor (agent)  ->  publish

``prepare``, ``handoff`` and ``publish`` are plain executors (Python code); ``Writer`` and ``Editor`` are
Agent Framework agents wrapped in ``AgentExecutor``. Each step is one superstep: the durable run executes it in
an activity and checkpoints the workflow after it. Only ``publish`` produces the workflow's output.

``POST /api/workflows/ProductCopy/runs`` with ``{"input": {"product": "...", "features": ["..."]}}`` starts
a run; ``GET /api/workflows/ProductCopy/runs/{runId}`` reads its state and output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from agent_framework import (
    Agent,
    AgentExecutor,
    AgentExecutorRequest,
    AgentExecutorResponse,
    Executor,
    Message,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    register_checkpoint_type,
)

from durableagent import AgentFunctionApp, chat_client_from_settings

WORKFLOW_NAME = "ProductCopy"

WRITER_INSTRUCTIONS = (
    "You are a copywriter for an online tool shop. Write a product description of at most 80 words from the "
    "brief you are given: plain, vivid English, concrete benefits, no clichés. Answer with the text only."
)
EDITOR_INSTRUCTIONS = (
    "You are a copy editor. Tighten the product description you are given: fix grammar, cut filler, keep every "
    "fact and stay under 80 words. Answer with the edited text only."
)


@dataclass
class ProductBrief:
    """The workflow's input: ``{"product": "...", "features": [...], "audience": "..."}``."""

    product: str
    features: list[str] = field(default_factory=list)
    audience: str = "home and trade users"


# Objects that cross supersteps are stored in checkpoints; Agent Framework only decodes allowed types.
register_checkpoint_type(ProductBrief)


class Prepare(Executor):
    """Checks the brief and turns it into the Writer's prompt."""

    @handler
    async def prepare(self, brief: ProductBrief, ctx: WorkflowContext[AgentExecutorRequest]) -> None:
        if not brief.product.strip():
            raise ValueError("The brief needs a product name.")
        ctx.set_state("product", brief.product.strip())  # shared state: read again by publish
        features = "\n".join(f"- {f}" for f in brief.features) or "- (no features given)"
        prompt = (
            f"Product: {brief.product.strip()}\nAudience: {brief.audience}\nFeatures:\n{features}\n\n"
            "Write the product description."
        )
        # AgentExecutorRequest is what an AgentExecutor takes (a plain str works too, as a fresh conversation).
        await ctx.send_message(AgentExecutorRequest(messages=[Message("user", [prompt])]))


class Handoff(Executor):
    """Keeps the draft and hands it to the Editor as a fresh request (the Editor need not see the brief)."""

    @handler
    async def handoff(self, drafted: AgentExecutorResponse, ctx: WorkflowContext[AgentExecutorRequest]) -> None:
        draft = drafted.agent_response.text
        ctx.set_state("draft", draft)
        prompt = f"Edit this product description:\n\n{draft}"
        await ctx.send_message(AgentExecutorRequest(messages=[Message("user", [prompt])]))


class Publish(Executor):
    """Yields the finished description as the workflow's output."""

    @handler
    async def publish(self, edited: AgentExecutorResponse, ctx: WorkflowContext[Any, dict[str, Any]]) -> None:
        text = edited.agent_response.text.strip()
        await ctx.yield_output(
            {
                "product": ctx.get_state("product"),
                "description": text,
                "words": len(text.split()),
                "draft": ctx.get_state("draft"),
            }
        )


client = chat_client_from_settings()
writer = AgentExecutor(Agent(client=client, name="Writer", instructions=WRITER_INSTRUCTIONS), id="writer")
editor = AgentExecutor(Agent(client=client, name="Editor", instructions=EDITOR_INSTRUCTIONS), id="editor")
prepare, handoff, publish = Prepare(id="prepare"), Handoff(id="handoff"), Publish(id="publish")

# output_from: only publish's yield is a workflow output (the agents' own responses are not).
product_copy = (
    WorkflowBuilder(name=WORKFLOW_NAME, start_executor=prepare, output_from=[publish])
    .add_chain([prepare, writer, handoff, editor, publish])
    .build()
)

app = AgentFunctionApp(workflows=[product_copy], http_auth_level=func.AuthLevel.FUNCTION)
