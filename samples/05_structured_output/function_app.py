"""Structured output: a run with ``response_schema`` answers with a parsed JSON object.

``Triage`` sorts support tickets. A caller sends the ticket with a JSON Schema for the answer
(``TICKET_TRIAGE_SCHEMA`` below: category, priority, summary); the model is asked for JSON that follows
it, and ``POST /api/agents/Triage/run`` answers with the parsed object in ``response``.
``GET /api/triage/schema`` serves the schema, so clients need not keep their own copy.
"""

from __future__ import annotations

import json

import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp, chat_client_from_settings

# Strict-mode friendly: every property required, no others allowed.
TICKET_TRIAGE_SCHEMA = {
    "title": "TicketTriage",
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "shipping", "technical", "account", "other"]},
        "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
        "summary": {"type": "string", "description": "The customer's problem in one sentence."},
    },
    "required": ["category", "priority", "summary"],
    "additionalProperties": False,
}

triage = Agent(
    client=chat_client_from_settings(),
    name="Triage",
    instructions=(
        "You triage customer support tickets of an online tool shop. Pick the category that fits best. "
        "Priority: urgent when the customer cannot work or is charged wrongly right now, high for a broken "
        "product or a lost parcel, medium for questions that block an order, low otherwise. "
        "Summarize the problem in one neutral sentence."
    ),
)

app = AgentFunctionApp(agents=[triage], http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name(name="triage_schema")
@app.route(route="triage/schema", methods=["GET"])
def triage_schema(req: func.HttpRequest) -> func.HttpResponse:
    """The JSON Schema to send as ``response_schema`` with a ticket."""
    return func.HttpResponse(json.dumps(TICKET_TRIAGE_SCHEMA), mimetype="application/json")
