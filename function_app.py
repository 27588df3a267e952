"""The deployable function app: an agent and a workflow built from settings, hosted durably.

Model: Azure OpenAI when ``AZURE_OPENAI_ENDPOINT`` is set (managed identity in Azure), OpenAI when
``OPENAI_API_KEY`` is set, else an offline model that says so. Run it locally with ``./dev start``.

- ``Assistant``: an agent with a tool (``POST /api/agents/Assistant/run``).
- ``draft-review``: a workflow where a drafting agent writes and a person approves
  (``POST /api/workflows/draft-review/runs`` with ``{"input": "what to write"}``, then answer the
  pending request at its ``respondUri`` with ``true`` or ``false``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import azure.functions as func
from agent_framework import (
    Agent,
    AgentExecutor,
    AgentExecutorResponse,
    Executor,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    response_handler,
    tool,
)

from durableagent import AgentFunctionApp, chat_client_from_settings

# The model comes from settings: Azure OpenAI, OpenAI, or an offline model that says so.
client = chat_client_from_settings()


@tool
def utc_now() -> str:
    """The current date and time in UTC (ISO 8601)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


assistant = Agent(
    client=client,
    name="Assistant",
    instructions="You are a concise, helpful assistant. Use the utc_now tool when asked about the time.",
    tools=[utc_now],
)

# Function keys in Azure (x-functions-key or ?code=); `./dev start` asks for none, like `func start`.
app = AgentFunctionApp(agents=[assistant], http_auth_level=func.AuthLevel.FUNCTION)


class Approval(Executor):
    """Asks a person to approve the draft; the answer (true/false) decides the output."""

    @handler
    async def review(self, draft: AgentExecutorResponse, ctx: WorkflowContext[Any, dict[str, Any]]) -> None:
        await ctx.request_info(request_data={"draft": draft.agent_response.text}, response_type=bool)

    @response_handler
    async def decided(self, request: dict[str, Any], approved: bool, ctx: WorkflowContext[Any, dict[str, Any]]) -> None:
        await ctx.yield_output({"approved": approved, "draft": request["draft"]})


drafter = AgentExecutor(
    Agent(client=client, name="Drafter", instructions="Write a short, clear draft of what you are asked for."),
    id="draft",
)
approval = Approval(id="approval")
draft_review = (
    WorkflowBuilder(name="draft-review", start_executor=drafter, output_from=[approval])
    .add_edge(drafter, approval)
    .build()
)

app.add_workflow(draft_review)
