"""The orchestration of a workflow run: its history is the run's sequence of checkpoints.

Each step is one activity (one superstep of a graph workflow, or a functional workflow up to its
next request for input); the activity result names the checkpoint the step ended on. When the run
is idle with requests pending, the orchestration waits for answers (HTTP answers are recorded in
blob storage first, then announced by an external event, so none is lost to a continue-as-new) and
hands them to the next step. Long runs continue as new every ``supersteps_per_execution`` steps, so
the history of one execution stays bounded whatever the number of supersteps.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from . import _wakeups
from ._workflow_step import FAIL_ON_TIMEOUT, WorkflowSpec, waiter_key

ANSWER_EVENT = "workflow-answer"


def orchestrator_name(workflow: str) -> str:
    return f"workflow-{workflow}"


def _settling(context: Any, spec: WorkflowSpec) -> None:
    """Wake a request in this process that waits for this run: the episode ending now settles it.

    The host commits the run's new status only after the orchestrator function returns, so the
    waiter reads the status again (and keeps polling briefly if the commit is not visible yet).
    Replayed episodes settled nothing new: they stay quiet.
    """
    if not getattr(context, "is_replaying", False):
        _wakeups.notify(waiter_key(spec.name), str(context.instance_id))


def step_activity_name(workflow: str) -> str:
    return f"workflow-{workflow}-step"


def answers_activity_name(workflow: str) -> str:
    return f"workflow-{workflow}-answers"


class WorkflowRunError(Exception):
    """A workflow run failed: an executor raised, the run did not converge, or a request timed out.

    Its text is ``failure_text``: the status route reads the code and message back from the
    orchestration's output with ``failure_from_output``, and shows nothing else of it.
    """


# Marks our failure record inside the orchestration's output (which the host prefixes with its own words).
_FAILURE_MARK = "durableagent-failure "
_UNKNOWN_FAILURE = {"code": "workflow_failed", "message": "The workflow run failed."}


def failure_text(code: str, message: str) -> str:
    """The text of a ``WorkflowRunError``: a stable code and our own message, as JSON after a marker."""
    return _FAILURE_MARK + json.dumps({"code": code, "message": message})


def failure_from_output(output: Any) -> dict[str, str]:
    """The ``{code, message}`` a failed run recorded, or a generic one when the failure was not ours."""
    text = output if isinstance(output, str) else ""
    at = text.find(_FAILURE_MARK)
    if at < 0:
        return dict(_UNKNOWN_FAILURE)
    try:
        value, _ = json.JSONDecoder().raw_decode(text, at + len(_FAILURE_MARK))
    except ValueError:
        return dict(_UNKNOWN_FAILURE)
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("code"), str)
        or not isinstance(value.get("message"), str)
    ):
        return dict(_UNKNOWN_FAILURE)
    return {"code": value["code"], "message": value["message"]}


def start_input(packed_input: dict[str, Any] | None = None, checkpoint_id: str | None = None) -> dict[str, Any]:
    """The orchestration input of a new run (from a packed message, or from an existing checkpoint)."""
    return {"input": packed_input, "checkpointId": checkpoint_id, "step": 0, "outputs": [], "since": {}}


def orchestrate(context: Any, spec: WorkflowSpec) -> Any:
    """Generator body of the workflow's orchestrator function."""
    state: dict[str, Any] = dict(context.get_input() or {})
    outputs: list[Any] = list(state.get("outputs", []))
    since: dict[str, str] = dict(state.get("since", {}))
    checkpoint_id: str | None = state.get("checkpointId")
    step = int(state.get("step", 0))
    answers: dict[str, Any] | None = None
    steps_here = 0
    while True:
        request = {"runId": context.instance_id, "step": step, "checkpointId": checkpoint_id, "answers": answers}
        if checkpoint_id is None:
            request["input"] = state.get("input")
        result = yield context.call_activity(step_activity_name(spec.name), request)
        step += 1
        steps_here += 1
        outputs.extend(result["outputs"])
        if result["error"]:
            error = result["error"]
            # Older step results had "type" and the exception's text: report those generically.
            code = str(error.get("code") or "workflow_failed")
            message = str(error.get("message") or "") if "code" in error else "The workflow run failed."
            _settling(context, spec)
            raise WorkflowRunError(failure_text(code, message))
        checkpoint_id = result["checkpointId"]
        pending: dict[str, Any] = result["pending"]
        context.set_custom_status(_status("running", step, result, pending))
        if result["hasMessages"]:
            answers = None
            if steps_here >= spec.supersteps_per_execution:
                carried = {"checkpointId": checkpoint_id, "step": step, "outputs": outputs, "since": since}
                context.continue_as_new(carried)
                return None
            continue
        if not pending:
            _settling(context, spec)
            return {"outputs": outputs, "steps": step, "checkpointId": checkpoint_id}
        now = context.current_utc_datetime
        since = {rid: since.get(rid, now.isoformat()) for rid in pending}
        answers = yield from _wait_for_answers(context, spec, step, result, pending, since)


def _wait_for_answers(
    context: Any, spec: WorkflowSpec, step: int, result: dict[str, Any], pending: dict[str, Any], since: dict[str, str]
) -> Any:
    """Answers to some of the pending requests: recorded ones, announced ones, or timeout answers."""
    while True:
        lookup = {
            "workflow": spec.name,
            "runId": context.instance_id,
            "requestIds": sorted(pending),
            "checkpointId": result["checkpointId"],
        }
        recorded = yield context.call_activity(answers_activity_name(spec.name), lookup)
        if recorded:
            return recorded
        context.set_custom_status(_status("waiting_for_input", step, result, pending))
        _settling(context, spec)
        announced = context.wait_for_external_event(ANSWER_EVENT)
        if spec.request_timeout is None:
            yield announced
            continue
        deadlines = {rid: datetime.fromisoformat(t) + spec.request_timeout for rid, t in since.items()}
        first = min(deadlines.values())
        timer = context.create_timer(first)
        winner = yield context.task_any([announced, timer])
        if winner is not timer:
            timer.cancel()
            continue
        expired = sorted(rid for rid, deadline in deadlines.items() if deadline <= first + timedelta(microseconds=1))
        if spec.timeout_response is FAIL_ON_TIMEOUT:
            _settling(context, spec)
            raise WorkflowRunError(
                failure_text("request_timed_out", f"No answer to request(s) {', '.join(expired)} came in time.")
            )
        return {rid: spec.timeout_response for rid in expired}


def _status(state: str, step: int, result: dict[str, Any], pending: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": state,
        "step": step,
        "checkpointId": result["checkpointId"],
        "iteration": result["iteration"],
        "pendingRequestIds": sorted(pending),
    }
