"""Background work through the agent's queue trigger, with the outcome posted to a reply queue.

- ``POST /api/tasks`` (the app's own function) puts a run request on the agent's queue with a queue
  output binding and answers ``202`` at once with a task id.
- The agent's generated queue trigger (``summarizer-runs``) runs the agent and posts the outcome to the
  reply queue the request names (``summaries``).
- ``collect_summary`` (the app's own queue trigger) takes the outcomes off the reply queue and records them
  in a small Durable Entity, one per task; ``GET /api/tasks/{taskId}`` reads it.

Anything that can write to a storage queue can use the agent the same way: a message on ``summarizer-runs``
is the same JSON as the body of ``POST /api/agents/Summarizer/run``.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp, chat_client_from_settings

RUN_QUEUE = "summarizer-runs"  # the agent's own queue: "<agent name, lower-cased>-runs"
REPLY_QUEUE = "summaries"  # where the agent posts each outcome
TASK_ENTITY = "task_result"
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_TEXT_CHARACTERS = 20_000

summarizer = Agent(
    client=chat_client_from_settings(),
    name="Summarizer",
    instructions=(
        "Summarize the text you are given in at most three short bullet points, in the text's own language. "
        "Answer with the bullet points only."
    ),
)

app = AgentFunctionApp(agents=[summarizer], http_auth_level=func.AuthLevel.FUNCTION)


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json", headers=headers)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@app.function_name(name="submit_task")
@app.route(route="tasks", methods=["POST"])
@app.queue_output(arg_name="run_request", queue_name=RUN_QUEUE, connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def submit_task(
    req: func.HttpRequest, run_request: func.Out[str], client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Queue a text for summarizing: ``{"text": "..."}`` or a ``text/plain`` body. Answers 202 with the task."""
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    try:
        text = req.get_json().get("text") if content_type == "application/json" else req.get_body().decode()
    except (ValueError, AttributeError):
        text = None
    if not isinstance(text, str) or not text.strip():
        return _json_response({"error": {"code": "text_required", "message": 'Send {"text": "..."}.'}}, 400)
    if len(text) > MAX_TEXT_CHARACTERS:
        return _json_response({"error": {"code": "text_too_long", "message": "The text is too long."}}, 413)
    task_id = uuid.uuid4().hex
    # Record the task first, so GET answers "queued" (not "unknown") as soon as this request returns.
    await client.signal_entity(df.EntityId(TASK_ENTITY, task_id), "submit", {"submittedAt": _now()})
    # The same JSON as a POST /api/agents/Summarizer/run body. The task id is the session (each task is
    # a fresh conversation) and the correlation id (a redelivered message never runs the model twice).
    run_request.set(
        json.dumps(
            {
                "message": f"Summarize this text:\n\n{text.strip()}",
                "sessionId": task_id,
                "correlationId": task_id,
                "replyQueue": REPLY_QUEUE,
            }
        )
    )
    status_uri = req.url.split("?")[0].rstrip("/") + f"/{task_id}"
    return _json_response(
        {"taskId": task_id, "status": "queued", "statusUri": status_uri},
        status=202,
        headers={"Location": status_uri, "Retry-After": "1"},
    )


@app.function_name(name="collect_summary")
@app.queue_trigger(arg_name="reply", queue_name=REPLY_QUEUE, connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def collect_summary(reply: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    """Record one outcome from the reply queue: ``{agent, correlationId, status, response?, error?, turn}``."""
    outcome = reply.get_json()
    task_id = str(outcome.get("correlationId") or "")
    if not _TASK_ID.match(task_id):
        raise ValueError(f"reply {reply.id} has no usable correlationId")  # retried, then poison queue
    await client.signal_entity(df.EntityId(TASK_ENTITY, task_id), "complete", {**outcome, "completedAt": _now()})


@app.entity_trigger(context_name="context", entity_name=TASK_ENTITY)
def task_result(context: df.DurableEntityContext) -> None:
    """One task: ``submit`` records it as queued, ``complete`` stores the agent's outcome."""
    state = context.get_state(lambda: None) or {}
    payload = context.get_input() or {}
    if context.operation_name == "submit":
        if "status" not in state:  # a late "submit" never hides an outcome that arrived first
            state = {"status": "queued", **payload}
    elif context.operation_name == "complete":
        state = {
            **state,
            "status": "done" if payload.get("status") == "success" else "failed",
            "summary": payload.get("response"),
            "error": payload.get("error"),
            "completedAt": payload.get("completedAt"),
        }
    context.set_state(state)


@app.function_name(name="get_task")
@app.route(route="tasks/{taskId}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def get_task(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """200 with the summary when done (or failed), 202 while queued, 404 for an unknown task."""
    task_id = req.route_params.get("taskId", "")
    if not _TASK_ID.match(task_id):
        return _json_response({"error": {"code": "invalid_task_id", "message": "Not a task id."}}, 400)
    result = await client.read_entity_state(df.EntityId(TASK_ENTITY, task_id))
    state = result.entity_state if result.entity_exists else None
    if isinstance(state, str):
        state = json.loads(state)
    if not state:
        return _json_response({"error": {"code": "task_not_found", "message": f"No task '{task_id}'."}}, 404)
    body = {"taskId": task_id, **state}
    if state.get("status") == "queued":
        return _json_response(body, status=202, headers={"Retry-After": "1"})
    return _json_response(body)
