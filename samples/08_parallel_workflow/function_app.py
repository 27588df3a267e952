"""A parallel workflow: three reviewer agents read the same announcement at once, one report collects them.

                 +-> Legal (agent) -----+
    dispatch ----+-> Brand (agent) -----+--> collect
                 +-> Clarity (agent) ---+

``dispatch`` fans the text out (one superstep runs the three reviewers concurrently); ``collect`` is a
fan-in executor: it runs once, when every reviewer has answered, with the list of their responses, and
yields one report as the workflow's output.

``POST /api/workflows/AnnouncementReview/runs`` with ``{"input": "<announcement text>"}`` starts a run.
"""

from __future__ import annotations

import re
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
)

from durableagent import AgentFunctionApp, chat_client_from_settings

WORKFLOW_NAME = "AnnouncementReview"
MAX_TEXT_CHARS = 4000

# What each reviewer looks for; they share the rest of their instructions.
REVIEWERS = {
    "legal": "legal risk: unsupported claims, missing conditions on offers, promises about safety or warranties",
    "brand": "brand voice: friendly, plain and confident, no hype words and no exclamation marks",
    "clarity": "clarity: a reader must understand what changes, for whom and from when, in one reading",
}
INSTRUCTIONS = (
    "You review customer announcements of an online tool shop for {focus}. Keep your review under 60 words. "
    "End with a last line that reads exactly 'VERDICT: APPROVE' when the text can go out as it is, or "
    "'VERDICT: REVISE' when it must change."
)

_VERDICT = re.compile(r"VERDICT:\s*(APPROVE|REVISE)\s*$", re.IGNORECASE)


class Dispatch(Executor):
    """Checks the text, keeps it in shared state and sends it to every reviewer (fan-out)."""

    @handler
    async def dispatch(self, text: str, ctx: WorkflowContext[AgentExecutorRequest]) -> None:
        text = text.strip()
        if not text or len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"The announcement must have 1 to {MAX_TEXT_CHARS} characters.")
        ctx.set_state("text", text)
        # Every fan-out target receives this message; each reviewer runs its own agent on it.
        await ctx.send_message(AgentExecutorRequest(messages=[Message("user", [text])]))


def _review(response: AgentExecutorResponse) -> dict[str, str]:
    """One reviewer's notes and verdict; a review without a verdict line counts as REVISE."""
    text = response.agent_response.text.strip()
    match = _VERDICT.search(text)
    notes = text[: match.start()].strip() if match else text
    return {"reviewer": response.executor_id, "verdict": match[1].lower() if match else "revise", "notes": notes}


class Collect(Executor):
    """Fan-in: gets every reviewer's response at once and yields the combined report."""

    @handler
    async def collect(self, responses: list[AgentExecutorResponse], ctx: WorkflowContext[Any, dict[str, Any]]) -> None:
        # Reviewers finish in any order: report them in the order they are declared.
        reviews = sorted((_review(r) for r in responses), key=lambda r: list(REVIEWERS).index(r["reviewer"]))
        await ctx.yield_output(
            {
                "text": ctx.get_state("text"),
                "approved": all(r["verdict"] == "approve" for r in reviews),
                "revise": [r["reviewer"] for r in reviews if r["verdict"] == "revise"],
                "reviews": reviews,
            }
        )


client = chat_client_from_settings()
reviewers = [
    AgentExecutor(
        Agent(client=client, name=f"{name.title()}Reviewer", instructions=INSTRUCTIONS.format(focus=focus)), id=name
    )
    for name, focus in REVIEWERS.items()
]
dispatch, collect = Dispatch(id="dispatch"), Collect(id="collect")

announcement_review = (
    WorkflowBuilder(name=WORKFLOW_NAME, start_executor=dispatch, output_from=[collect])
    .add_fan_out_edges(dispatch, reviewers)
    .add_fan_in_edges(reviewers, collect)
    .build()
)

app = AgentFunctionApp(workflows=[announcement_review], http_auth_level=func.AuthLevel.FUNCTION)
