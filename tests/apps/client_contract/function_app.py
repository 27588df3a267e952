"""One HTTP function per ``DurableOrchestrationClient`` method, for the client contract tests.

Each ``POST /api/client/<method>`` takes the method's arguments as a JSON body, calls that one method
and answers ``{"result": <what the SDK returned, as JSON>}``, or ``{"raised": {"type", "message"}}``
when the SDK raised. The two check-status helpers return the SDK's own ``HttpResponse`` unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

Client = df.DurableOrchestrationClient


def _args(req: func.HttpRequest) -> dict[str, Any]:
    body = req.get_body()
    return json.loads(body) if body else {}


def _time(text: str | None) -> datetime | None:
    # The SDK formats these with strftime and a literal "Z", so it wants naive UTC datetimes.
    return datetime.fromisoformat(text).replace(tzinfo=None) if text else None


def _statuses(names: list[str] | None) -> list[df.OrchestrationRuntimeStatus] | None:
    return [df.OrchestrationRuntimeStatus[n] for n in names] if names is not None else None


def _status_json(status: df.DurableOrchestrationStatus) -> dict[str, Any]:
    return {
        "truthy": bool(status),
        "json": status.to_json() if status else None,  # to_json() needs a created time
        "historyEvents": getattr(status, "historyEvents", None),
    }


async def _envelope(call: Callable[[], Awaitable[Any]], encode: Callable[[Any], Any]) -> func.HttpResponse:
    try:
        result = encode(await call())
    except Exception as exc:  # the contract under test includes what the SDK raises
        body: dict[str, Any] = {"raised": {"type": type(exc).__name__, "message": str(exc)}}
    else:
        body = {"result": result}
    return func.HttpResponse(json.dumps(body, default=str), mimetype="application/json")


def _same(value: Any) -> Any:
    return value


@app.route(route="client/start_new", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_new(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(
        lambda: client.start_new(a["name"], a.get("instanceId"), a.get("input"), a.get("version")), _same
    )


@app.route(route="client/get_status", methods=["POST"])
@app.durable_client_input(client_name="client")
async def get_status(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(
        lambda: client.get_status(
            a["instanceId"],
            show_history=a.get("showHistory", False),
            show_history_output=a.get("showHistoryOutput", False),
            show_input=a.get("showInput", False),
        ),
        _status_json,
    )


@app.route(route="client/get_status_all", methods=["POST"])
@app.durable_client_input(client_name="client")
async def get_status_all(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    return await _envelope(client.get_status_all, lambda found: [s.to_json() for s in found])


@app.route(route="client/get_status_by", methods=["POST"])
@app.durable_client_input(client_name="client")
async def get_status_by(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(
        lambda: client.get_status_by(
            created_time_from=_time(a.get("createdTimeFrom")),
            created_time_to=_time(a.get("createdTimeTo")),
            runtime_status=_statuses(a.get("runtimeStatus")),
            instance_id_prefix=a.get("prefix"),
        ),
        lambda found: [s.to_json() for s in found],
    )


@app.route(route="client/raise_event", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(lambda: client.raise_event(a["instanceId"], a["eventName"], a.get("eventData")), _same)


@app.route(route="client/terminate", methods=["POST"])
@app.durable_client_input(client_name="client")
async def terminate(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(lambda: client.terminate(a["instanceId"], a["reason"]), _same)


@app.route(route="client/suspend", methods=["POST"])
@app.durable_client_input(client_name="client")
async def suspend(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(lambda: client.suspend(a["instanceId"], a["reason"]), _same)


@app.route(route="client/resume", methods=["POST"])
@app.durable_client_input(client_name="client")
async def resume(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(lambda: client.resume(a["instanceId"], a["reason"]), _same)


@app.route(route="client/restart", methods=["POST"])
@app.durable_client_input(client_name="client")
async def restart(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(lambda: client.restart(a["instanceId"], a.get("newInstanceId", True)), _same)


@app.route(route="client/purge_instance_history", methods=["POST"])
@app.durable_client_input(client_name="client")
async def purge_instance_history(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(
        lambda: client.purge_instance_history(a["instanceId"]),
        lambda r: {"instancesDeleted": r.instances_deleted},
    )


@app.route(route="client/purge_instance_history_by", methods=["POST"])
@app.durable_client_input(client_name="client")
async def purge_instance_history_by(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(
        lambda: client.purge_instance_history_by(
            _time(a.get("createdTimeFrom")), _time(a.get("createdTimeTo")), _statuses(a.get("runtimeStatus"))
        ),
        lambda r: {"instancesDeleted": r.instances_deleted},
    )


@app.route(route="client/signal_entity", methods=["POST"])
@app.durable_client_input(client_name="client")
async def signal_entity(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(
        lambda: client.signal_entity(df.EntityId(a["name"], a["key"]), a["operation"], a.get("input")), _same
    )


@app.route(route="client/read_entity_state", methods=["POST"])
@app.durable_client_input(client_name="client")
async def read_entity_state(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    return await _envelope(
        lambda: client.read_entity_state(df.EntityId(a["name"], a["key"])),
        lambda r: {"entityExists": r.entity_exists, "entityState": r.entity_state},
    )


@app.route(route="client/create_check_status_response", methods=["POST"])
@app.durable_client_input(client_name="client")
async def create_check_status_response(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    return client.create_check_status_response(req, _args(req)["instanceId"])


@app.route(route="client/wait_for_completion_or_create_check_status_response", methods=["POST"])
@app.durable_client_input(client_name="client")
async def wait_for_completion(req: func.HttpRequest, client: Client) -> func.HttpResponse:
    a = _args(req)
    instance_id = await client.start_new(a["name"], None, a.get("input"))
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=a["timeoutMs"], retry_interval_in_milliseconds=100
    )


# What the client drives ---------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def echo(context: df.DurableOrchestrationContext):
    """Returns its input, after one activity round trip."""
    return (yield context.call_activity("identity", context.get_input()))


# Not `value: Any`: typing.Any is a class only from Python 3.11, and the worker refuses a binding
# annotation that is not a type, so that app would not load on 3.10 (in Azure too).
@app.activity_trigger(input_name="value")
def identity(value: object) -> Any:
    return value


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):
    """Waits for the event "Go" and returns its payload as the orchestrator received it."""
    context.set_custom_status("waiting")
    payload = yield context.wait_for_external_event("Go")
    return {"payload": payload, "type": type(payload).__name__}


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    """Sleeps on a durable timer for ``input`` seconds."""
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=float(context.get_input())))
    return "slept"


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    yield context.call_activity("identity", "first")
    raise ValueError("failing on purpose")


@app.entity_trigger(context_name="context")
def box(context: df.DurableEntityContext) -> None:
    """``set`` stores the input as the state; ``record`` stores what get_input() gave, or how it failed."""
    if context.operation_name == "set":
        context.set_state(context.get_input())
    elif context.operation_name == "record":
        try:
            context.set_state({"input": context.get_input()})
        except TypeError as exc:  # e.g. no input at all: get_input() does json.loads(None)
            context.set_state({"error": str(exc)})
    elif context.operation_name == "delete":
        context.destruct_on_exit()
