"""An agent drafts, a person decides: human review in a durable orchestration, with a deadline.

- ``POST /api/reviews`` with ``{"brief": "..."}`` starts ``content_review`` (202, check-status links).
- ``content_review`` asks the ``Copywriter`` agent for a draft, publishes it in the custom status and
  waits for a decision or the deadline, whichever comes first. "approve" ends it; "revise" with feedback
  sends the feedback to the Copywriter in the same session (the agent sees its earlier drafts), and the
  new draft is reviewed again, up to ``MAX_REVISIONS`` times.
- ``GET /api/reviews/{instanceId}`` shows the review: state, revision, the draft, the deadline.
- ``POST /api/reviews/{instanceId}/decision`` with ``{"decision": "approve"}`` or
  ``{"decision": "revise", "feedback": "..."}`` checks the body and raises the event.

While it waits, the orchestration is not running anywhere: it costs nothing until the decision or the
deadline's durable timer wakes it up, and it survives restarts of the app.

App settings (optional):
    REVIEW_TIMEOUT_SECONDS: how long each draft waits for a decision (default 86400, one day).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp, chat_client_from_settings

ORCHESTRATOR = "content_review"
MAX_REVISIONS = 3
MAX_BRIEF_CHARS = 2000
MAX_FEEDBACK_CHARS = 2000
MAX_REVIEW_TIMEOUT_SECONDS = 30 * 24 * 60 * 60


def _review_timeout_seconds() -> float:
    """``REVIEW_TIMEOUT_SECONDS``, checked when the app starts (a bad value stops it with a clear error)."""
    seconds = float(os.environ.get("REVIEW_TIMEOUT_SECONDS") or 24 * 60 * 60)
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_REVIEW_TIMEOUT_SECONDS:
        raise ValueError(f"REVIEW_TIMEOUT_SECONDS must be more than 0 and at most {MAX_REVIEW_TIMEOUT_SECONDS}")
    return seconds


REVIEW_TIMEOUT_SECONDS = _review_timeout_seconds()

INSTRUCTIONS = (
    "You write short marketing texts for an online tool shop: plain, vivid English, concrete details, no "
    "clichés, at most 80 words. When a reviewer asks for changes, revise your latest draft: change what they "
    "ask for, keep the rest. Always answer with the complete text only."
)
DRAFT_PROMPT = "Write a first draft for this brief:\n\n{brief}"
REVISE_PROMPT = "The reviewer asks for changes to your latest draft:\n\n{feedback}\n\nAnswer with the revised text."

copywriter = Agent(client=chat_client_from_settings(), name="Copywriter", instructions=INSTRUCTIONS)
app = AgentFunctionApp(agents=[copywriter], http_auth_level=func.AuthLevel.FUNCTION)

# Characters an instance id may have; anything else is answered with 404 without asking the task hub.
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def decision_event(revision: int) -> str:
    """The event that carries the decision on draft ``revision``: ``ReviewDecision-1``, ``-2``, ...

    One name per draft, waited for once: a decision that arrives late or twice (a double click) is
    raised under an old draft's name, which nothing waits for any more, so it can never be taken for the
    decision on a later draft. (With one name for every draft that would happen: the Python SDK hands an
    event that arrived while nothing waited for its name to every later wait of that name.)
    """
    return f"ReviewDecision-{revision}"


def _json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def _error(status: int, code: str, message: str) -> func.HttpResponse:
    return _json_response({"error": {"code": code, "message": message}}, status)


class BadDecision(ValueError):
    """A decision that cannot be used; the route answers 400 with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_decision(body: Any) -> dict[str, Any]:
    """``{"decision", "feedback", "revision"}`` from a parsed JSON body (``revision`` may be ``None``).

    Raises:
        BadDecision: Not an object, or a field is missing, unknown or wrong.
    """
    if not isinstance(body, dict):
        raise BadDecision("invalid_json", "The body must be a JSON object.")
    unknown = sorted(set(body) - {"decision", "feedback", "revision"})
    if unknown:
        raise BadDecision("unknown_field", f"Unknown field(s): {', '.join(unknown)}.")
    decision = body.get("decision")
    if decision not in ("approve", "revise"):
        raise BadDecision("invalid_decision", "'decision' must be 'approve' or 'revise'.")
    feedback = body.get("feedback")
    if feedback is not None and not isinstance(feedback, str):
        raise BadDecision("invalid_feedback", "'feedback' must be a string.")
    feedback = (feedback or "").strip()
    if decision == "revise" and not feedback:
        raise BadDecision("feedback_required", "Say what to change: 'revise' needs 'feedback'.")
    if len(feedback) > MAX_FEEDBACK_CHARS:
        raise BadDecision("invalid_feedback", f"'feedback' is longer than {MAX_FEEDBACK_CHARS} characters.")
    revision = body.get("revision")
    if revision is not None and (type(revision) is not int or revision < 1):
        raise BadDecision("invalid_revision", "'revision' must be a positive integer: the draft you reviewed.")
    return {"decision": decision, "feedback": feedback or None, "revision": revision}


# Start a review ----------------------------------------------------------------------------------


@app.function_name(name="start_review")
@app.route(route="reviews", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_review(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start ``content_review`` for ``{"brief": "..."}``; answers 202 with the check-status links."""
    try:
        body = req.get_json()
    except ValueError:
        body = None
    brief = body.get("brief") if isinstance(body, dict) else None
    if not isinstance(brief, str) or not brief.strip() or len(brief) > MAX_BRIEF_CHARS:
        return _error(400, "brief_required", f'Send {{"brief": "..."}} with 1-{MAX_BRIEF_CHARS} characters.')
    # The timeout travels in the input: an orchestrator must not read settings (every replay must see
    # the same values, and a setting can change while a review waits).
    job = {"brief": brief.strip(), "timeoutSeconds": REVIEW_TIMEOUT_SECONDS}
    instance_id = await client.start_new(ORCHESTRATOR, client_input=job)
    return client.create_check_status_response(req, instance_id)


# The orchestration ---------------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def content_review(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Draft, then review rounds: approve, revise (at most ``MAX_REVISIONS`` times) or time out."""
    job = context.get_input()
    timeout = timedelta(seconds=float(job["timeoutSeconds"]))
    # Every call uses the instance's default session (@Copywriter@orch-<instance id>): one conversation.
    writer = app.get_agent(context, "Copywriter")
    reviews: list[dict[str, Any]] = []

    context.set_custom_status({"state": "drafting", "revision": 1})
    response = yield writer.run(DRAFT_PROMPT.format(brief=job["brief"]))
    revision = 1
    while True:
        draft = response.text
        deadline = context.current_utc_datetime + timeout  # replay-safe "now"
        context.set_custom_status(
            {
                "state": "awaiting_review",
                "revision": revision,
                "draft": draft,
                "deadline": deadline.isoformat(),
                "revisionsLeft": MAX_REVISIONS - (revision - 1),
                "event": decision_event(revision),
            }
        )
        timer = context.create_timer(deadline)
        event = context.wait_for_external_event(decision_event(revision))
        winner = yield context.task_any([event, timer])
        if winner is not event:
            outcome = "timed_out"
            break
        timer.cancel()
        decision = _event_decision(event.result)
        reviews.append({"revision": revision, "decision": decision["decision"], "feedback": decision["feedback"]})
        if decision["decision"] == "approve":
            outcome = "approved"
            break
        if revision > MAX_REVISIONS:
            outcome = "revision_limit_reached"
            break
        context.set_custom_status({"state": "revising", "revision": revision + 1, "feedback": decision["feedback"]})
        response = yield writer.run(REVISE_PROMPT.format(feedback=decision["feedback"]))
        revision += 1

    context.set_custom_status({"state": outcome, "revision": revision})
    return {
        "outcome": outcome,
        "approved": outcome == "approved",
        "draft": draft,
        "revision": revision,
        "reviews": reviews,
        "sessionId": response.session_id,
    }


def _event_decision(data: Any) -> dict[str, Any]:
    """The decision an event carries. The route checked it; one raised by hand may be anything.

    Raises:
        ValueError: The event is not a decision (the review fails and says so).
    """
    if isinstance(data, str):
        # client.raise_event JSON-encodes the data twice (Azure/azure-functions-durable-python#295), so
        # the route's event arrives as JSON text; raised through sendEventPostUri it arrives as an object.
        with contextlib.suppress(ValueError):  # not JSON: parse_decision says what is wrong
            data = json.loads(data)
    try:
        return parse_decision(data)
    except BadDecision as exc:
        raise ValueError(f"The review event is not a decision: {exc}") from None


# Read a review, decide on it ----------------------------------------------------------------------


async def _find_review(client: df.DurableOrchestrationClient, instance_id: str) -> Any:
    """The status of a ``content_review`` instance, or ``None``."""
    if not _INSTANCE_ID.match(instance_id):
        return None
    status = await client.get_status(instance_id)
    # An unknown id gives an empty status (falsy); ids of other orchestrations are not reviews either.
    if not status or status.name != ORCHESTRATOR:
        return None
    return status


@app.function_name(name="get_review")
@app.route(route="reviews/{instanceId}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def get_review(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """What the reviewer needs: the state, the draft to decide on, the deadline (and the output when done)."""
    instance_id = req.route_params["instanceId"]
    status = await _find_review(client, instance_id)
    if status is None:
        return _error(404, "review_not_found", f"There is no review '{instance_id}'.")
    return _json_response(
        {
            "id": instance_id,
            "runtimeStatus": status.runtime_status.value if status.runtime_status else None,
            "review": status.custom_status,
            "output": status.output,
        }
    )


@app.function_name(name="submit_decision")
@app.route(route="reviews/{instanceId}/decision", methods=["POST"])
@app.durable_client_input(client_name="client")
async def submit_decision(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Approve the draft under review or ask for changes; answers 202 once the decision is on its way."""
    try:
        body = json.loads(req.get_body())
    except ValueError:  # also UnicodeDecodeError
        body = None
    try:
        decision = parse_decision(body)
    except BadDecision as exc:
        return _error(400, exc.code, str(exc))
    instance_id = req.route_params["instanceId"]
    status = await _find_review(client, instance_id)
    if status is None:
        return _error(404, "review_not_found", f"There is no review '{instance_id}'.")
    review = status.custom_status if isinstance(status.custom_status, dict) else {}
    running = status.runtime_status == df.OrchestrationRuntimeStatus.Running
    if not running or review.get("state") != "awaiting_review":
        state = review.get("state") or (status.runtime_status.value if status.runtime_status else "unknown")
        return _error(409, "not_awaiting_review", f"Review '{instance_id}' is not waiting for a decision ({state}).")
    current = review["revision"]
    if decision["revision"] not in (None, current):
        return _error(
            409, "stale_revision", f"Draft {decision['revision']} is no longer under review; draft {current} is."
        )
    decision["revision"] = current
    try:
        await client.raise_event(instance_id, decision_event(current), decision)
    except Exception:  # the review ended between the check and the event (410 from the extension)
        return _error(409, "not_awaiting_review", f"Review '{instance_id}' is not waiting for a decision.")
    return _json_response({"id": instance_id, **decision}, 202)
