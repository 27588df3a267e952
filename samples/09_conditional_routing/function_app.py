"""Conditional routing: an agent classifies a support ticket (structured output), a switch-case routes it.

    classify (agent, response_format=TicketTriage) --switch-case--> escalation | billing | shipping | technical
                                                                     | general (default)

The classifier is an ``AgentExecutor`` whose agent has a pydantic ``response_format``: the model is asked for
JSON that follows ``TicketTriage`` and ``AgentResponse.value`` is the parsed object. The switch-case edge
group evaluates its conditions on that value, in order; the first that holds picks the one desk that gets
the ticket (``Default`` takes the rest). Each desk is a plain executor that yields the routing decision.

``POST /api/workflows/TicketRouting/runs`` with ``{"input": "<ticket text>"}`` starts a run.
"""

from __future__ import annotations

from typing import Any, Literal

import azure.functions as func
from agent_framework import (
    Agent,
    AgentExecutor,
    AgentExecutorResponse,
    Case,
    Default,
    Executor,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    register_checkpoint_type,
)
from pydantic import BaseModel, Field

from durableagent import AgentFunctionApp, chat_client_from_settings

WORKFLOW_NAME = "TicketRouting"

CLASSIFIER_INSTRUCTIONS = (
    "You triage customer support tickets of an online tool shop. Pick the category that fits best: billing "
    "(payments, invoices, refunds), shipping (delivery, parcels, returns in transit), technical (a product does "
    "not work or how to use it) or other. Mark a ticket urgent when the customer is charged wrongly right now, "
    "is in danger, or cannot work at all. Summarize the problem in one neutral sentence."
)

# Who handles what, and how soon they answer (hours).
DESKS = {
    "escalation": {"team": "Duty manager", "slaHours": 1},
    "billing": {"team": "Accounts", "slaHours": 8},
    "shipping": {"team": "Logistics", "slaHours": 24},
    "technical": {"team": "Tool experts", "slaHours": 24},
    "general": {"team": "Customer service", "slaHours": 48},
}


class TicketTriage(BaseModel):
    """The classifier's answer (its JSON schema goes to the model as ``response_format``)."""

    category: Literal["billing", "shipping", "technical", "other"]
    urgent: bool
    summary: str = Field(description="The customer's problem in one sentence.")


# The parsed answer travels inside the AgentResponse, which checkpoints store: allow its type.
register_checkpoint_type(TicketTriage)


def triage_of(response: AgentExecutorResponse) -> TicketTriage:
    """The classifier's parsed answer (raises when the model's text does not fit the schema)."""
    value = response.agent_response.value
    if not isinstance(value, TicketTriage):
        raise ValueError(f"The classifier gave no TicketTriage: {response.agent_response.text!r}")
    return value


class Desk(Executor):
    """One destination of the switch-case: records who takes the ticket, as the workflow's output."""

    @handler
    async def take(self, classified: AgentExecutorResponse, ctx: WorkflowContext[Any, dict[str, Any]]) -> None:
        triage = triage_of(classified)
        ticket = next(m.text for m in classified.full_conversation if m.role == "user")
        await ctx.yield_output(
            {
                "desk": self.id,
                **DESKS[self.id],
                "category": triage.category,
                "urgent": triage.urgent,
                "summary": triage.summary,
                "ticket": ticket,
            }
        )


classifier = Agent(
    client=chat_client_from_settings(),
    name="Classifier",
    instructions=CLASSIFIER_INSTRUCTIONS,
    default_options={"response_format": TicketTriage},
)
classify = AgentExecutor(classifier, id="classify")
desks: dict[str, Executor] = {name: Desk(id=name) for name in DESKS}

ticket_routing = (
    WorkflowBuilder(name=WORKFLOW_NAME, start_executor=classify, output_from=list(desks.values()))
    .add_switch_case_edge_group(
        classify,
        [
            # Evaluated in order: an urgent ticket goes to escalation whatever its category.
            Case(condition=lambda r: triage_of(r).urgent, target=desks["escalation"]),
            Case(condition=lambda r: triage_of(r).category == "billing", target=desks["billing"]),
            Case(condition=lambda r: triage_of(r).category == "shipping", target=desks["shipping"]),
            Case(condition=lambda r: triage_of(r).category == "technical", target=desks["technical"]),
            Default(target=desks["general"]),
        ],
    )
    .build()
)

app = AgentFunctionApp(workflows=[ticket_routing], http_auth_level=func.AuthLevel.FUNCTION)
