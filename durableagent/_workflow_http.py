"""The workflow HTTP API: start a run (fresh or from a checkpoint), read it, answer it, stop it.

Routes (under the host's route prefix):
  POST   workflows/{name}/runs                                   start; 202, or 200 when waited for
  GET    workflows/{name}/runs/{runId}                           status, outputs, requests, checkpoints
  POST   workflows/{name}/runs/{runId}/requests/{requestId}      answer a pending (or coming) request
  POST   workflows/{name}/runs/{runId}/terminate                 stop the run
  GET    workflows/{name}/runs/{runId}/events                    every event of the run
A run belongs to one workflow: asking another workflow's routes about it answers 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import azure.durable_functions as df
import azure.functions as func
from agent_framework._serialization import make_json_safe
from agent_framework.exceptions import WorkflowCheckpointException

from . import _wakeups
from ._bodies import parse_json, parse_json_object
from ._errors import (
    CHECKPOINT_INCOMPATIBLE,
    CHECKPOINT_NOT_FOUND,
    INTERNAL_ERROR,
    INVALID_INPUT,
    INVALID_REQUEST,
    INVALID_RESPONSE,
    REQUEST_ALREADY_ANSWERED,
    RUN_EXISTS,
    RUN_FINISHED,
    RUN_NOT_FOUND,
    WORKFLOW_NOT_FOUND,
    RequestError,
    shown,
)
from ._http_api import api_base, error_response, json_response, key_param
from ._logs import describe_exception, get_logger
from ._requests import parse_flag
from ._workflow_orchestrator import ANSWER_EVENT, failure_from_output, orchestrator_name, start_input
from ._workflow_step import (
    WorkflowSpec,
    coerce_answer,
    coerce_input,
    describe_request,
    failure_details,
    pack,
    unpack,
    waiter_key,
)
from ._workflow_store import BlobCheckpointStorage, CheckpointEntry, RunStore, is_safe_id

_log = get_logger("durableagent.http")

_FAILURE_EVENTS = frozenset({"failed", "executor_failed", "error"})
_TERMINAL = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
_MAX_RUN_ID = 100
# Bounds on what callers send (README, "Workflows"): a start, answer or terminate body; a terminate reason.
MAX_BODY_BYTES = 1024 * 1024
MAX_REASON_LENGTH = 1024
_NUMBER = re.compile(r"^\s*[+-]?(?:[0-9]{1,6}(?:\.[0-9]{0,6})?|\.[0-9]{1,6})\s*\Z")
DEFAULT_WAIT_SECONDS = 30.0
MAX_WAIT_SECONDS = 230.0
# A waiting start reads the run's status at once, then backing off between these (the fallback when
# the orchestration runs in another process); a wake-up from the orchestration makes it look again
# after _AFTER_WAKE_SECONDS, backing off from there until the host has committed the settled status.
_FIRST_POLL_SECONDS = 0.01
_MAX_POLL_SECONDS = 0.5
_AFTER_WAKE_SECONDS = 0.001

Handler = Callable[[func.HttpRequest, df.DurableOrchestrationClient], Awaitable[func.HttpResponse]]


class WorkflowHttpApi:
    """Handlers of the workflow routes."""

    def __init__(self, specs: Callable[[], dict[str, WorkflowSpec]], storage: Callable[[], BlobCheckpointStorage]):
        self._specs = specs
        self._storage = storage

    def guarded(self, handler: Handler) -> Handler:
        """Turn ``RequestError`` into its JSON answer and anything else into a 500 without details."""

        async def run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
            try:
                return await handler(req, client)
            except RequestError as exc:
                return error_response(exc)
            except Exception as exc:
                _log.error("Workflow request failed: %s", describe_exception(exc))
                return error_response(RequestError(INTERNAL_ERROR, "The request could not be processed."))

        return run

    def _spec(self, name: str) -> WorkflowSpec:
        spec = self._specs().get(name.lower())
        if spec is None:
            raise RequestError(WORKFLOW_NOT_FOUND, f"No workflow named '{shown(name)}' is registered.")
        return spec

    async def _owned_status(
        self, req: func.HttpRequest, client: df.DurableOrchestrationClient
    ) -> tuple[WorkflowSpec, Any]:
        spec = self._spec(req.route_params["name"])
        run_id = req.route_params["runId"]
        status = await client.get_status(run_id) if is_safe_id(run_id) else None
        if status is None or not status.name or status.name.lower() != orchestrator_name(spec.name).lower():
            raise RequestError(RUN_NOT_FOUND, f"Workflow '{spec.name}' has no run '{shown(run_id)}'.")
        return spec, status

    # POST workflows/{name}/runs -----------------------------------------------------------------

    async def start(self, req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        spec = self._spec(req.route_params["name"])
        raw = req.get_body() or b""
        body = parse_json_object(raw, max_bytes=MAX_BODY_BYTES) if raw.strip() else {}
        run_id = body.get("runId")
        if run_id is not None and (not isinstance(run_id, str) or len(run_id) > _MAX_RUN_ID or not is_safe_id(run_id)):
            raise RequestError(
                INVALID_REQUEST, "'runId' must be 1-100 letters, digits, '.', '_', ':' or '-'.", field="runId"
            )
        checkpoint_id = body.get("checkpointId")
        if checkpoint_id is not None and not isinstance(checkpoint_id, str):
            raise RequestError(INVALID_REQUEST, "'checkpointId' must be a string.", field="checkpointId")
        wait, timeout = _wait_options(req, body)
        storage = self._storage()
        if checkpoint_id is not None:
            if "input" in body:
                raise RequestError(INVALID_REQUEST, "Give either 'input' or 'checkpointId', not both.")
        else:
            if "input" not in body:
                raise RequestError(INVALID_INPUT, "The body needs 'input' (or 'checkpointId' to start from one).")
            if not coerce_input(spec, body["input"])[0]:
                raise RequestError(INVALID_INPUT, "The input does not fit the workflow's start executor.")
        if run_id is not None:
            existing = await client.get_status(run_id)
            if existing is not None and existing.runtime_status is not None:
                raise RequestError(RUN_EXISTS, f"A run with id '{run_id}' already exists.")
        if not wait:
            # The JSON input travels as it came; the step converts it (no pickled objects in the history).
            instance_id = await start_run(
                client, spec, storage, body.get("input"), checkpoint_id=checkpoint_id, run_id=run_id
            )
            return json_response(self._links(req, spec, instance_id, {"runtimeStatus": "Pending"}), status=202)
        run_id = run_id or uuid.uuid4().hex
        listing: list[asyncio.Task[list[CheckpointEntry]]] = []

        def woke() -> None:
            # The run's checkpoints are written before anything wakes us: list them while the run ends
            # (unless this process indexed them all).
            if not listing and storage.recent_indexes.entries(spec.name, str(run_id)) is None:
                store = RunStore(storage)
                listing.append(asyncio.create_task(asyncio.to_thread(store.checkpoints, spec.name, str(run_id))))

        # Watch before starting: a short run may settle before the first look.
        with _wakeups.watch(waiter_key(spec.name), run_id) as woken:
            instance_id = await start_run(
                client, spec, storage, body.get("input"), checkpoint_id=checkpoint_id, run_id=run_id
            )
            status = await _wait_until_settled(client, instance_id, timeout, woken, woke)
        listed = None
        if listing:
            with contextlib.suppress(Exception):  # a failed early listing is done again below
                listed = await listing[0]
        else:
            listed = storage.recent_indexes.entries(spec.name, instance_id)
        body_out = await self._status_body(req, spec, status, listed)
        return json_response(body_out, status=200 if _settled(status) else 202)

    # GET workflows/{name}/runs/{runId} ------------------------------------------------------------

    async def status(self, req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        spec, status = await self._owned_status(req, client)
        return json_response(await self._status_body(req, spec, status))

    async def _status_body(
        self, req: func.HttpRequest, spec: WorkflowSpec, status: Any, listed: list[CheckpointEntry] | None = None
    ) -> dict[str, Any]:
        """The run as the status route shows it.

        ``listed`` is the run's checkpoint index read earlier (when the run signalled it settled), or
        as this process indexed it (``RecentIndexes.entries``); it is used only if it ends with the
        completed run's final checkpoint, else the index is read now.
        """
        storage = self._storage()
        run_id = status.instance_id
        runtime = _runtime(status)
        custom = status.custom_status if isinstance(status.custom_status, dict) else {}
        body: dict[str, Any] = {
            "runId": run_id,
            "workflow": spec.name,
            "runtimeStatus": runtime,
            "state": _state(runtime, custom),
            "step": custom.get("step", 0),
            "createdTime": _iso(status.created_time),
            "lastUpdatedTime": _iso(status.last_updated_time),
            "outputs": [],
            "pendingRequests": [],
        }
        output = status.output
        if runtime == "Completed" and isinstance(output, dict):
            outputs = output.get("outputs", [])
            values = await asyncio.to_thread(lambda: [unpack(o, storage, spec.name, run_id) for o in outputs])
            body["outputs"] = [make_json_safe(v) for v in values]
            body["step"] = output.get("steps", body["step"])
        elif runtime == "Failed":
            # Only the code and words the run recorded for callers; never the failure text itself.
            body["error"] = failure_from_output(output)
        checkpoint_id = custom.get("checkpointId")
        if runtime not in _TERMINAL and custom.get("pendingRequestIds") and checkpoint_id:
            checkpoint = await storage.load(checkpoint_id)
            for event in checkpoint.pending_request_info_events.values():
                item = describe_request(event)
                item["respondUri"] = _url(req, spec, run_id, f"/requests/{quote(event.request_id, safe='')}")
                body["pendingRequests"].append(item)
        final = output.get("checkpointId") if runtime == "Completed" and isinstance(output, dict) else None
        if listed and final is not None and listed[-1].checkpoint_id == final:
            entries = listed  # nothing is indexed after a completed run's final checkpoint
        else:
            entries = await asyncio.to_thread(RunStore(storage).checkpoints, spec.name, run_id)
        body["checkpoints"] = [e.to_json() for e in entries]
        return self._links(req, spec, run_id, body)

    def _links(self, req: func.HttpRequest, spec: WorkflowSpec, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("runId", run_id)
        body.setdefault("workflow", spec.name)
        body["statusUri"] = _url(req, spec, run_id, "")
        body["respondUri"] = _url(req, spec, run_id, "/requests/{requestId}")
        body["terminateUri"] = _url(req, spec, run_id, "/terminate")
        body["eventsUri"] = _url(req, spec, run_id, "/events")
        return body

    # POST workflows/{name}/runs/{runId}/requests/{requestId} ------------------------------------

    async def respond(self, req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        spec, status = await self._owned_status(req, client)
        run_id = status.instance_id
        request_id = req.route_params["requestId"]
        if not is_safe_id(request_id):
            raise RequestError(INVALID_REQUEST, "Invalid request id.", field="requestId")
        if _runtime(status) in _TERMINAL:
            raise RequestError(RUN_FINISHED, f"Run '{run_id}' has finished ({_runtime(status)}).")
        answer = parse_json(req.get_body() or b"", max_bytes=MAX_BODY_BYTES, what="The answer")
        storage = self._storage()
        custom = status.custom_status if isinstance(status.custom_status, dict) else {}
        if custom.get("checkpointId"):
            checkpoint = await storage.load(custom["checkpointId"])
            event = checkpoint.pending_request_info_events.get(request_id)
            if event is not None and not coerce_answer(event, answer)[0]:
                raise RequestError(
                    INVALID_RESPONSE,
                    f"The answer does not fit request '{request_id}'.",
                    expected=describe_request(event)["responseType"],
                )
        store = RunStore(storage)
        if not await asyncio.to_thread(store.put_answer, spec.name, run_id, request_id, answer):
            raise RequestError(REQUEST_ALREADY_ANSWERED, f"Request '{request_id}' already has a different answer.")
        await client.raise_event(run_id, ANSWER_EVENT, {"requestId": request_id})
        return json_response(
            {"runId": run_id, "requestId": request_id, "status": "accepted", "statusUri": _url(req, spec, run_id, "")},
            status=202,
        )

    # POST workflows/{name}/runs/{runId}/terminate ------------------------------------------------

    async def terminate(self, req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        _, status = await self._owned_status(req, client)
        if _runtime(status) in _TERMINAL:
            raise RequestError(RUN_FINISHED, f"Run '{status.instance_id}' has finished ({_runtime(status)}).")
        raw = req.get_body() or b""
        reason = "terminated over HTTP"
        if raw.strip():
            body = parse_json_object(raw, max_bytes=MAX_BODY_BYTES)
            given = body.get("reason", "")
            if not isinstance(given, str) or len(given) > MAX_REASON_LENGTH:
                raise RequestError(
                    INVALID_REQUEST,
                    f"'reason' must be a string of at most {MAX_REASON_LENGTH} characters.",
                    field="reason",
                )
            reason = given or reason
        await client.terminate(status.instance_id, reason)
        return json_response({"runId": status.instance_id, "status": "terminating"}, status=202)

    # GET workflows/{name}/runs/{runId}/events ---------------------------------------------------

    async def events(self, req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        spec, status = await self._owned_status(req, client)
        events = await asyncio.to_thread(RunStore(self._storage()).read_events, spec.name, status.instance_id)
        return json_response({"runId": status.instance_id, "events": [event_json(e) for e in events]})


async def check_checkpoint(spec: WorkflowSpec, storage: BlobCheckpointStorage, checkpoint_id: Any) -> None:
    """Refuse a checkpoint that does not exist, belongs to another workflow or another version of it."""
    if not isinstance(checkpoint_id, str) or not is_safe_id(checkpoint_id):
        raise RequestError(CHECKPOINT_NOT_FOUND, "No such checkpoint.", field="checkpointId")
    try:
        checkpoint = await storage.load(checkpoint_id)
    except WorkflowCheckpointException as exc:
        raise RequestError(CHECKPOINT_NOT_FOUND, f"No checkpoint '{checkpoint_id}'.") from exc
    if checkpoint.workflow_name != spec.workflow.name:
        raise RequestError(CHECKPOINT_NOT_FOUND, f"Workflow '{spec.name}' has no checkpoint '{checkpoint_id}'.")
    if checkpoint.graph_signature_hash != _signature(spec):
        raise RequestError(
            CHECKPOINT_INCOMPATIBLE,
            f"Checkpoint '{checkpoint_id}' was made by a different version of workflow '{spec.name}'.",
        )


async def start_run(
    client: df.DurableOrchestrationClient,
    spec: WorkflowSpec,
    storage: BlobCheckpointStorage,
    value: Any = None,
    *,
    checkpoint_id: str | None = None,
    run_id: str | None = None,
) -> str:
    """Start a run from ``value`` (packed: a large input goes by reference) or from a checkpoint.

    Raises:
        RequestError: The checkpoint does not exist, or is of another workflow or version.
    """
    run_id = run_id or uuid.uuid4().hex
    if checkpoint_id is not None:
        await check_checkpoint(spec, storage, checkpoint_id)
        orchestration_input = start_input(checkpoint_id=checkpoint_id)
    else:
        packed = await asyncio.to_thread(pack, value, storage, spec.name, run_id, "input")
        orchestration_input = start_input(packed_input=packed)
    return str(await client.start_new(orchestrator_name(spec.name), run_id, orchestration_input))


def event_json(event: Any) -> dict[str, Any]:
    """An Agent Framework workflow event as JSON."""
    item: dict[str, Any] = {"type": event.type}
    if event.executor_id is not None:
        item["executorId"] = event.executor_id
    if event.iteration is not None:
        item["iteration"] = event.iteration
    if event.type == "request_info":
        item["requestId"] = event.request_id
        item["sourceExecutor"] = event.source_executor_id
    if event.type in _FAILURE_EVENTS:
        # Failure events carry the exception's type, message and traceback: callers get a code instead.
        details = event.details if event.details is not None else event.data
        item["details"] = failure_details(details, event.executor_id)
        return item
    if event.details is not None:
        item["details"] = make_json_safe(event.details)
    if event.data is not None:
        item["data"] = make_json_safe(event.data)
    return item


def _signature(spec: WorkflowSpec) -> str:
    if spec.functional:
        return str(spec.fresh_functional().graph_signature_hash)
    return str(spec.workflow.graph_signature_hash)  # type: ignore[union-attr]


def _wait_options(req: func.HttpRequest, body: dict[str, Any]) -> tuple[bool, float]:
    wait = parse_flag(req.headers.get("x-ms-wait-for-response"), "x-ms-wait-for-response")
    if wait is None:
        wait = parse_flag(req.params.get("wait"), "wait")
    if wait is None:
        flag = body.get("waitForCompletion", False)
        if not isinstance(flag, bool):
            raise RequestError(INVALID_REQUEST, "'waitForCompletion' must be a boolean.", field="waitForCompletion")
        wait = flag
    timeout: Any = req.params.get("timeoutSeconds", body.get("timeoutSeconds", DEFAULT_WAIT_SECONDS))
    if (isinstance(timeout, str) and _NUMBER.match(timeout)) or (
        isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
    ):
        seconds = float(timeout)
    else:
        raise RequestError(INVALID_REQUEST, "'timeoutSeconds' must be a number.", field="timeoutSeconds")
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_WAIT_SECONDS):
        raise RequestError(
            INVALID_REQUEST, f"'timeoutSeconds' must be in (0, {MAX_WAIT_SECONDS:g}].", field="timeoutSeconds"
        )
    return wait, seconds


def _settled(status: Any) -> bool:
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    return _runtime(status) in _TERMINAL or custom.get("state") == "waiting_for_input"


async def _wait_until_settled(
    client: df.DurableOrchestrationClient,
    run_id: str,
    timeout: float,
    woken: asyncio.Event | None = None,
    on_wake: Callable[[], None] | None = None,
) -> Any:
    """The run's status once it settled (finished or waiting for input), or when ``timeout`` ran out.

    ``woken`` (from ``_wakeups.watch``) is set in this process when the run's last step ends and
    again when its orchestration settles the run: the wait looks again at once rather than at its
    next poll. The host commits the status just after the orchestrator function returns, so a look
    that still finds the run busy keeps polling, briefly at first; without wake-ups (another
    instance) the back-off alone applies. ``on_wake`` is called at each wake-up.
    """
    deadline = time.monotonic() + timeout
    delay = _FIRST_POLL_SECONDS
    while True:
        status = await client.get_status(run_id)
        if _settled(status) or time.monotonic() >= deadline:
            return status
        if not await _wakeups.pause(woken, min(delay, max(0.0, deadline - time.monotonic()))) or woken is None:
            delay = min(delay * 2, _MAX_POLL_SECONDS)
            continue
        # Woken: the commit follows the orchestrator function's return; look again very soon, then
        # back off from there. The hint is spent: a later one (another settle) wakes the wait again.
        woken.clear()
        if on_wake is not None:
            on_wake()
        await asyncio.sleep(min(_AFTER_WAKE_SECONDS, max(0.0, deadline - time.monotonic())))
        delay = _AFTER_WAKE_SECONDS * 2


def _runtime(status: Any) -> str:
    value = status.runtime_status
    return str(getattr(value, "value", value) or "Pending")


def _state(runtime: str, custom: dict[str, Any]) -> str:
    if runtime in _TERMINAL:
        return runtime.lower()
    return str(custom.get("state") or "pending")


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value else None)


def _url(req: func.HttpRequest, spec: WorkflowSpec, run_id: str, suffix: str) -> str:
    code = key_param(req)
    run = f"{api_base(req, '/workflows/')}/workflows/{spec.name}/runs/{quote(run_id, safe='')}"
    return f"{run}{suffix}{'?' + code if code else ''}"
