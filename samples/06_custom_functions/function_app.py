"""Your own functions beside the agents: ``AgentFunctionApp`` is a ``DFApp``, so everything Azure Functions
and Durable Functions offer is still there.

- ``GET /api/about``: an HTTP function of the app's own (it lists the agents and the last heartbeat).
- ``heartbeat``: a timer trigger that records each beat in a Durable Entity of the app's own.
- ``POST /api/reports``: starts ``text_report``, a durable orchestration that fans out one activity per
  text and adds up the results; it answers with the usual check-status links.
- ``Assistant``: an agent, with the generated ``/api/agents/Assistant/...`` routes, as in sample 01.

App settings (optional):
    HEARTBEAT_SCHEDULE: six-field NCRONTAB of the heartbeat (default every five minutes).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Generator
from datetime import datetime, timezone
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp, chat_client_from_settings

HEARTBEAT_SCHEDULE = os.environ.get("HEARTBEAT_SCHEDULE") or "0 */5 * * * *"
HEARTBEAT_ENTITY = df.EntityId("heartbeat", "app")
MAX_REPORT_TEXTS = 100

assistant = Agent(
    client=chat_client_from_settings(),
    name="Assistant",
    instructions="You are a concise, helpful assistant.",
)

app = AgentFunctionApp(agents=[assistant], http_auth_level=func.AuthLevel.FUNCTION)


def _json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


# 1. An HTTP function of your own --------------------------------------------------------------------


@app.function_name(name="about")
@app.route(route="about", methods=["GET"])
@app.durable_client_input(client_name="client")
async def about(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """What this app hosts, and when the heartbeat timer last ran."""
    beat = await client.read_entity_state(HEARTBEAT_ENTITY)
    heartbeat = beat.entity_state if beat.entity_exists else None
    if isinstance(heartbeat, str):
        heartbeat = json.loads(heartbeat)
    return _json_response(
        {
            "app": "06_custom_functions",
            "agents": sorted(app.agents),
            "heartbeat": heartbeat or {"beats": 0, "last": None},
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )


# 2. A timer of your own, with a Durable Entity of your own -----------------------------------------


@app.function_name(name="heartbeat_timer")
@app.timer_trigger(schedule=HEARTBEAT_SCHEDULE, arg_name="timer")
@app.durable_client_input(client_name="client")
async def heartbeat_timer(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Record a beat; ``past_due`` says the host was down when the beat was due."""
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    await client.signal_entity(HEARTBEAT_ENTITY, "beat", {"at": at, "pastDue": timer.past_due})
    logging.info("Heartbeat at %s (past due: %s)", at, timer.past_due)


@app.entity_trigger(context_name="context", entity_name="heartbeat")
def heartbeat(context: df.DurableEntityContext) -> None:
    state = context.get_state(lambda: {"beats": 0, "last": None})
    if context.operation_name == "beat":
        state = {"beats": state["beats"] + 1, "last": context.get_input()}
    context.set_state(state)


# 3. A durable orchestration of your own ------------------------------------------------------------


@app.function_name(name="start_report")
@app.route(route="reports", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_report(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start ``text_report`` for ``{"texts": ["...", ...]}``; answers 202 with the check-status links."""
    try:
        texts = req.get_json().get("texts")
    except (ValueError, AttributeError):
        texts = None
    if (
        not isinstance(texts, list)
        or not texts
        or len(texts) > MAX_REPORT_TEXTS
        or not all(isinstance(t, str) for t in texts)
    ):
        message = f'Send {{"texts": [...]}} with 1-{MAX_REPORT_TEXTS} strings.'
        return _json_response({"error": {"code": "texts_required", "message": message}}, 400)
    instance_id = await client.start_new("text_report", client_input=texts)
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def text_report(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Fan out one ``count_words`` per text, then fan in the totals."""
    texts: list[str] = context.get_input() or []
    counts = yield context.task_all([context.call_activity("count_words", text) for text in texts])
    return {
        "documents": len(texts),
        "words": sum(c["words"] for c in counts),
        "characters": sum(c["characters"] for c in counts),
        "per_document": counts,
    }


@app.activity_trigger(input_name="text")
def count_words(text: str) -> dict[str, int]:
    return {"words": len(re.findall(r"\w+", text)), "characters": len(text)}
