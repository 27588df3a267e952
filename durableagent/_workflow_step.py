"""One durable step of a workflow run, executed by Agent Framework itself inside an activity.

A graph workflow step is exactly one superstep: restore the run's last checkpoint, let Agent
Framework's runner execute one superstep (edges, conditions, fan-in, shared state, sub-workflows
and agent executors all behave as in ``workflow.run()``), and stop at its end, where Agent Framework
has just written the superstep's checkpoint. A functional workflow step runs the function until it
finishes or asks for input; Agent Framework checkpoints after every ``@step``, and a retried step
resumes from the newest of those checkpoints, so completed ``@step`` calls are not repeated.

The activity's result is small (ids, request summaries, outputs); messages and shared state stay in
the checkpoint blob and never travel through the orchestration history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from agent_framework import Workflow, WorkflowCheckpoint
from agent_framework._serialization import make_json_safe
from agent_framework._workflows._checkpoint_encoding import decode_checkpoint_value, encode_checkpoint_value
from agent_framework._workflows._functional import FunctionalWorkflow, FunctionalWorkflowDefinition
from agent_framework._workflows._typing_utils import is_instance_of, try_coerce_to_type
from agent_framework.exceptions import WorkflowCheckpointException, WorkflowConvergenceException

from . import _wakeups
from ._errors import model_http_status
from ._logs import describe_exception, get_logger
from ._workflow_store import BlobCheckpointStorage, RunCheckpointStorage, RunStore, encode_events

_log = get_logger("durableagent.workflows")

# Events that describe the run as a whole rather than its work; the orchestration reports those.
_RUN_LEVEL_EVENTS = frozenset({"started", "status"})
FAIL_ON_TIMEOUT: Any = object()


@dataclass
class WorkflowSpec:
    """A registered workflow and how its durable runs behave."""

    name: str
    workflow: Workflow | FunctionalWorkflow | FunctionalWorkflowDefinition
    request_timeout: timedelta | None = None
    timeout_response: Any = FAIL_ON_TIMEOUT
    supersteps_per_execution: int = 50
    lock: asyncio.Lock | None = None
    genesis: WorkflowCheckpoint | None = field(default=None, repr=False)

    @property
    def functional(self) -> bool:
        return not isinstance(self.workflow, Workflow)

    def fresh_functional(self) -> FunctionalWorkflow:
        """A new functional workflow instance (they hold per-run state, so each step builds one)."""
        wf = self.workflow
        if isinstance(wf, FunctionalWorkflowDefinition):
            return wf.build()
        assert isinstance(wf, FunctionalWorkflow)
        return FunctionalWorkflow(wf._func, name=wf.name, description=wf.description)


def waiter_key(workflow: str) -> str:
    """The workflow's name in ``_wakeups``: its steps, its orchestration and a request waiting for a run use it."""
    return f"workflow/{workflow.lower()}"


# Inputs and outputs larger than this travel through the history as a blob reference.
INLINE_PAYLOAD_BYTES = 16 * 1024


def pack(value: Any, storage: BlobCheckpointStorage, workflow: str, run_id: str, name: str) -> dict[str, Any]:
    """A value as it crosses the orchestration history: ``{"inline": …}`` or ``{"blob": name}``.

    Objects that are not JSON go through Agent Framework's checkpoint codec (which also wraps any
    dict that looks like a codec envelope, so caller JSON can never be taken for a pickle).
    """
    encoded = encode_checkpoint_value(value)
    data = json.dumps(encoded, separators=(",", ":")).encode()
    if len(data) <= INLINE_PAYLOAD_BYTES:
        return {"inline": encoded}
    RunStore(storage).put_payload(workflow, run_id, name, data)
    return {"blob": name}


def unpack(packed: dict[str, Any], storage: BlobCheckpointStorage, workflow: str, run_id: str) -> Any:
    """The value ``pack`` wrapped."""
    if "blob" in packed:
        encoded = json.loads(RunStore(storage).get_payload(workflow, run_id, str(packed["blob"])))
    else:
        encoded = packed.get("inline")
    return decode_checkpoint_value(encoded, allowed_types=storage._allowed)


def describe_request(event: Any) -> dict[str, Any]:
    """A pending request as callers see it."""
    return {
        "requestId": event.request_id,
        "sourceExecutor": event.source_executor_id,
        "requestType": _type_name(event.request_type),
        "responseType": _type_name(event.response_type),
        "data": make_json_safe(event.data),
    }


def _type_name(t: Any) -> str | None:
    return getattr(t, "__name__", None) or (str(t) if t is not None else None)


def coerce_answer(event: Any, answer: Any) -> tuple[bool, Any]:
    """Convert a JSON answer to the request's response type; ``(False, None)`` when it does not fit."""
    response_type = event.response_type
    if response_type is None:
        return True, answer
    value = try_coerce_to_type(answer, response_type)
    return (True, value) if is_instance_of(value, response_type) else (False, None)


def coerce_input(spec: WorkflowSpec, value: Any) -> tuple[bool, Any]:
    """Convert a JSON start input to a type the start executor accepts."""
    if spec.functional:
        return True, value
    assert isinstance(spec.workflow, Workflow)
    types = spec.workflow.get_start_executor().input_types
    for t in types:
        candidate = try_coerce_to_type(value, t)
        if is_instance_of(candidate, t):
            return True, candidate
    return (True, value) if not types else (False, None)


async def run_step(spec: WorkflowSpec, storage: BlobCheckpointStorage, request: dict[str, Any]) -> dict[str, Any]:
    """Execute one durable step.

    Returns the activity result: the checkpoint the step ended on (id and iteration), whether
    messages are still in flight, the pending requests, the step's outputs (packed) and the error
    that failed it, if any.
    """
    run_id = str(request["runId"])
    step = int(request["step"])
    # A graph step indexes its checkpoint after the superstep, beside the step's other writes.
    scoped = RunCheckpointStorage(storage, spec.name, run_id, step, defer_index=not spec.functional)
    answers: dict[str, Any] | None = request.get("answers") or None
    if spec.functional:
        events, error = await _functional_step(spec, scoped, request, answers)
    else:
        # An earlier attempt that crashed may have indexed its checkpoint; this attempt's overwrites it.
        events, error = await _graph_step(spec, scoped, request, answers)
    checkpoint = scoped.saved[-1] if scoped.saved else None
    pending = dict(checkpoint.pending_request_info_events) if checkpoint else {}
    values = [e.data for e in events if e.type == "output"]
    if scoped.defer_index and scoped.saved:
        # A graph step's events ride in its checkpoint's index entry: one blob per superstep fewer.
        record = asyncio.to_thread(scoped.write_index, encode_events(events))
    else:
        record = asyncio.to_thread(RunStore(storage).write_events, spec.name, run_id, step, events)
    outputs: list[dict[str, Any]] = []
    if values:  # the step's records are independent blobs: written at once (one round trip each)
        packing = asyncio.to_thread(
            lambda: [pack(v, storage, spec.name, run_id, f"output-{step:08d}-{i}") for i, v in enumerate(values)]
        )
        _, outputs = await asyncio.gather(record, packing)
    else:
        await record
    has_messages = bool(checkpoint and any(checkpoint.messages.values())) and error is None
    if not has_messages:
        # The run settles with this step (finished, failed or waiting for input) and every record of
        # it is written: a request waiting in this process can read them while the orchestration ends.
        _wakeups.notify(waiter_key(spec.name), run_id)
    return {
        "checkpointId": checkpoint.checkpoint_id if checkpoint else request.get("checkpointId"),
        "iteration": checkpoint.iteration_count if checkpoint else None,
        "hasMessages": has_messages,
        "pending": {rid: describe_request(ev) for rid, ev in pending.items()},
        "outputs": outputs,
        "eventCount": len(events),
        "error": error,
    }


async def _graph_step(
    spec: WorkflowSpec, storage: RunCheckpointStorage, request: dict[str, Any], answers: dict[str, Any] | None
) -> tuple[list[Any], dict[str, Any] | None]:
    workflow = spec.workflow
    assert isinstance(workflow, Workflow)
    if spec.lock is None:
        spec.lock = asyncio.Lock()  # created on the agent loop, where every step runs
    events: list[Any] = []
    async with spec.lock:  # one Workflow instance runs one step at a time
        runner = workflow._runner
        if spec.genesis is None:
            spec.genesis = await runner.build_checkpoint()
        checkpoint_id = request.get("checkpointId")
        # Start from the pristine instance, not from whatever another run's step left behind.
        await runner.restore_checkpoint(spec.genesis)
        runner._previous_checkpoint_id = None  # the genesis snapshot is not part of any run's lineage
        try:
            if checkpoint_id is None:
                message = _start_message(spec, request, storage)
                stream = _events(workflow, message=message, checkpoint_storage=storage)
            else:
                responses = await _applicable_answers(storage, checkpoint_id, answers)
                stream = _events(workflow, checkpoint_id=checkpoint_id, checkpoint_storage=storage, responses=responses)
            async with contextlib.aclosing(stream):
                in_superstep = False
                async for event in stream:
                    # Before the superstep come only restore artefacts, unless the run fails there.
                    in_superstep = in_superstep or event.type == "superstep_started"
                    if (in_superstep or event.type == "failed") and event.type not in _RUN_LEVEL_EVENTS:
                        events.append(event)
                    if event.type == "superstep_completed":
                        break  # the superstep's checkpoint is written; the next step continues from it
        except Exception as exc:
            return events, _error(spec, exc, events)
    return events, None


async def _functional_step(
    spec: WorkflowSpec, storage: RunCheckpointStorage, request: dict[str, Any], answers: dict[str, Any] | None
) -> tuple[list[Any], dict[str, Any] | None]:
    workflow = spec.fresh_functional()
    resume_from = await asyncio.to_thread(storage.latest_of_step) or request.get("checkpointId")
    events: list[Any] = []
    try:
        if resume_from is None:
            stream = _events(workflow, message=_start_message(spec, request, storage), checkpoint_storage=storage)
        else:
            responses = await _applicable_answers(storage, resume_from, answers)
            stream = _events(workflow, checkpoint_id=resume_from, checkpoint_storage=storage, responses=responses)
        async with contextlib.aclosing(stream):
            async for event in stream:
                if event.type not in _RUN_LEVEL_EVENTS:
                    events.append(event)
    except Exception as exc:
        return events, _error(spec, exc, events)
    return events, None


def _events(workflow: Workflow | FunctionalWorkflow, **run: Any) -> AsyncGenerator[Any, None]:
    """The events of ``workflow.run(**run)`` in non-streaming mode, as they happen.

    ``run(stream=True)`` would switch agent executors to streaming (updates instead of one
    response); a durable run must produce what ``await workflow.run(...)`` produces, so the step
    iterates the same core generator ``run()`` drains. Our per-workflow lock replaces ``run()``'s
    concurrent-run guard.
    """
    return cast(AsyncGenerator[Any, None], workflow._run_core(streaming=False, **run))


def _start_message(spec: WorkflowSpec, request: dict[str, Any], storage: BlobCheckpointStorage) -> Any:
    raw = unpack(request["input"], storage, spec.name, str(request["runId"]))
    ok, value = coerce_input(spec, raw)
    return value if ok else raw  # Agent Framework reports an input its start executor cannot take


async def _applicable_answers(
    storage: BlobCheckpointStorage, checkpoint_id: str, answers: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The answers converted to their requests' response types.

    Answers from HTTP were checked before they got here, so a misfit can only be a configured
    ``timeout_response``: that fails the step (running on without it would wait forever).
    """
    if not answers:
        return None
    checkpoint = await storage.load(checkpoint_id)
    pending = checkpoint.pending_request_info_events
    applicable: dict[str, Any] = {}
    for request_id, answer in answers.items():
        event = pending.get(request_id)
        if event is None:
            continue
        ok, value = coerce_answer(event, answer)
        if not ok:
            raise InvalidAnswerError(
                f"The answer to request '{request_id}' does not fit its response type "
                f"{_type_name(event.response_type)}."
            )
        applicable[request_id] = value
    return applicable or None


class InvalidAnswerError(Exception):
    """A recorded or configured answer does not fit its request (its message is ours, safe to show)."""


def step_failure(exc: BaseException, events: list[Any]) -> dict[str, str]:
    """What callers are told about a failed step: a stable code and our own words.

    Never the exception's text: an executor's exception may quote the model request (instructions
    included), the conversation or a key, and Agent Framework's wrap the executor's.
    """
    if isinstance(exc, InvalidAnswerError):
        return {"code": "invalid_answer", "message": str(exc)}
    if isinstance(exc, WorkflowConvergenceException):
        return {
            "code": "workflow_did_not_converge",
            "message": "The workflow did not finish within its superstep limit.",
        }
    if isinstance(exc, WorkflowCheckpointException):
        return {"code": "checkpoint_failed", "message": "A checkpoint of the run could not be read or written."}
    executor = next((e.executor_id for e in reversed(events) if e.type == "executor_failed" and e.executor_id), None)
    status = model_http_status(exc)
    model = f" The model service answered with HTTP {status}." if status is not None else ""
    if executor is not None:
        return {"code": "executor_failed", "message": f"Executor '{executor}' failed.{model}"}
    return {"code": "workflow_failed", "message": f"The workflow run failed.{model}"}


def failure_details(details: Any, executor_id: str | None) -> dict[str, Any]:
    """A failure event's details as callers see them: the code and the executor, never the exception text."""
    executor = executor_id or getattr(details, "executor_id", None)
    safe: dict[str, Any] = {"code": "executor_failed" if executor else "workflow_failed"}
    if executor:
        safe["executorId"] = executor
    return safe


def _error(spec: WorkflowSpec, exc: BaseException, events: list[Any]) -> dict[str, Any]:
    failure = step_failure(exc, events)
    # The type and where it was raised help an operator; the message may quote the model request.
    _log.warning("Workflow %s step failed: %s (%s)", spec.name, failure["code"], describe_exception(exc))
    return failure


def read_answers(storage: BlobCheckpointStorage, request: dict[str, Any]) -> dict[str, Any]:
    """Activity body: usable answers already recorded for the pending requests of a run.

    An answer recorded before its request was pending could not be checked then; one that does not
    fit the request's response type is dropped here (so a correct one can be given), never handed
    to the run, where it would be ignored and asked for again forever.
    """
    store = RunStore(storage)
    workflow, run_id = str(request["workflow"]), str(request["runId"])
    recorded = store.answers(workflow, run_id, list(request["requestIds"]))
    if not recorded:
        return {}
    pending = storage.load_sync(str(request["checkpointId"])).pending_request_info_events
    usable: dict[str, Any] = {}
    for request_id, answer in recorded.items():
        event = pending.get(request_id)
        if event is not None and coerce_answer(event, answer)[0]:
            usable[request_id] = answer
        else:
            _log.warning("recorded answer to request %s does not fit it; dropped", request_id)
            store.drop_answer(workflow, run_id, request_id)
    return usable
