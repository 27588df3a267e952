"""Human approval: an agent drafts an announcement, a person approves it over HTTP before it is published.

    Writer (agent) --> review --request_info--> (a person answers) --> published | rejected
         ^                |
         +-- feedback ----+   (a rejection with feedback asks the Writer for a revision, up to MAX_ROUNDS)

``review`` calls ``ctx.request_info(DraftReview, Decision)``: the run stops, checkpointed, with a pending
request (``GET .../runs/{runId}`` lists it with its ``respondUri``), and the orchestration waits for the answer
without using compute. ``POST .../runs/{runId}/requests/{requestId}`` with a ``Decision`` as JSON resumes it in
the ``@response_handler``.

Nobody answers? The workflow is registered with ``request_timeout`` (app setting ``APPROVAL_TIMEOUT_SECONDS``,
one day by default) and ``timeout_response=TIMEOUT_DECISION``: when the time is up the request is answered
with that rejection and the run ends as ``rejected`` by ``"timeout"``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
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
    response_handler,
)

from durableagent import AgentFunctionApp, chat_client_from_settings

WORKFLOW_NAME = "AnnouncementApproval"
APPROVAL_TIMEOUT = timedelta(seconds=float(os.environ.get("APPROVAL_TIMEOUT_SECONDS") or 24 * 3600))
MAX_ROUNDS = 3
# The answer a request gets when nobody answers in time (JSON, like an answer over HTTP).
TIMEOUT_DECISION = {"approved": False, "reviewer": "timeout", "feedback": ""}

WRITER_INSTRUCTIONS = (
    "You write short customer announcements for an online tool shop: at most 60 words, friendly and plain, "
    "no exclamation marks. When you get feedback, rewrite the whole announcement. Answer with the text only."
)


@dataclass
class DraftReview:
    """What the reviewer is asked to decide on (the request's ``data``)."""

    draft: str
    round: int


@dataclass
class Decision:
    """The answer: ``{"approved": true}``, or ``{"approved": false, "feedback": "..."}`` for a revision."""

    approved: bool
    feedback: str = ""
    reviewer: str = ""


# Pending requests and their answers are stored in checkpoints: allow their types.
register_checkpoint_type(DraftReview)
register_checkpoint_type(Decision)


class Review(Executor):
    """Asks a person to approve each draft; publishes, asks for a revision, or gives up."""

    @handler
    async def ask(self, drafted: AgentExecutorResponse, ctx: WorkflowContext[AgentExecutorRequest]) -> None:
        round_ = int(ctx.get_state("round", 0)) + 1
        ctx.set_state("round", round_)
        # A readable request id (one per round) instead of a random one: "review-1", "review-2", ...
        await ctx.request_info(
            DraftReview(drafted.agent_response.text, round_), Decision, request_id=f"review-{round_}"
        )

    @response_handler
    async def decided(
        self,
        request: DraftReview,
        decision: Decision,
        ctx: WorkflowContext[AgentExecutorRequest, dict[str, Any]],
    ) -> None:
        if not decision.approved and decision.feedback.strip() and request.round < MAX_ROUNDS:
            revise = f"Revise your announcement. Reviewer feedback: {decision.feedback.strip()}"
            await ctx.send_message(AgentExecutorRequest(messages=[Message("user", [revise])]))
            return
        await ctx.yield_output(
            {
                "status": "published" if decision.approved else "rejected",
                "text": request.draft,
                "rounds": request.round,
                "reviewer": decision.reviewer or "anonymous",
                "feedback": decision.feedback,
            }
        )


writer = AgentExecutor(
    Agent(client=chat_client_from_settings(), name="Writer", instructions=WRITER_INSTRUCTIONS), id="writer"
)
review = Review(id="review")

announcement_approval = (
    WorkflowBuilder(name=WORKFLOW_NAME, start_executor=writer, output_from=[review])
    .add_edge(writer, review)
    .add_edge(review, writer)  # the revision loop
    .build()
)

app = AgentFunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.add_workflow(announcement_approval, request_timeout=APPROVAL_TIMEOUT, timeout_response=TIMEOUT_DECISION)
