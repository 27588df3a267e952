"""Durable Functions basics for the end-to-end tests: the patterns of the Durable docs, one each.

Environment:
    RETRY_STATE_DIR: where the ``flaky`` activity counts its attempts (one file per key).
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


# HTTP starters ------------------------------------------------------------------------------------


def _input(req: func.HttpRequest) -> object:
    body = req.get_body()
    return json.loads(body) if body else None


@app.route(route="start/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start any orchestration; the check-status response, or the host's error text with a 400."""
    try:
        instance_id = await client.start_new(
            req.route_params["functionName"], req.params.get("instanceId"), _input(req)
        )
    except Exception as exc:  # what the SDK raises for the management API's 400
        return func.HttpResponse(str(exc), status_code=400)
    return client.create_check_status_response(req, instance_id)


@app.route(route="startwait/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_and_wait(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start and wait up to ``timeoutMs`` (default 10 s) for the output."""
    instance_id = await client.start_new(req.route_params["functionName"], None, _input(req))
    timeout = int(req.params.get("timeoutMs", "10000"))
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=timeout, retry_interval_in_milliseconds=min(100, timeout)
    )


# Chaining -----------------------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def chaining(context: df.DurableOrchestrationContext):
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


# Fan-out / fan-in ---------------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def fan_out_fan_in(context: df.DurableOrchestrationContext):
    count = int(context.get_input())
    squares = yield context.task_all([context.call_activity("square", i) for i in range(count)])
    return {"squares": squares, "total": sum(squares)}


@app.activity_trigger(input_name="n")
def square(n: int) -> int:
    return n * n


# Human interaction: an approval event races a durable timer ---------------------------------------


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    seconds = float(context.get_input()["timeoutSeconds"])
    deadline = context.current_utc_datetime + timedelta(seconds=seconds)
    timer = context.create_timer(deadline)
    event = context.wait_for_external_event("Approval")
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
        return "approved"
    return "timeout"


# Entity counter, and an orchestration that calls it -----------------------------------------------


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += int(context.get_input())
        context.set_state(value)
    elif operation == "reset":
        context.set_state(0)
    elif operation == "get":
        context.set_result(value)
    elif operation == "delete":
        context.destruct_on_exit()


@app.orchestration_trigger(context_name="context")
def counter_user(context: df.DurableOrchestrationContext):
    entity = df.EntityId("counter", context.get_input())
    yield context.call_entity(entity, "add", 5)
    yield context.call_entity(entity, "add", 7)
    return (yield context.call_entity(entity, "get"))


# Sub-orchestrations -------------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    named = yield context.call_sub_orchestrator("child", 1, f"{context.instance_id}-child")
    unnamed = yield context.call_sub_orchestrator("child", 2)
    return [named, unnamed]


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    n = context.get_input()
    doubled = yield context.call_activity("square", n)
    return {
        "n": n,
        "square": doubled,
        "instanceId": context.instance_id,
        "parent": context.parent_instance_id,
    }


# Retries ------------------------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=spec["attempts"])
    return (yield context.call_activity_with_retry("flaky", options, spec["key"]))


@app.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    """Fails on the first two attempts per key; the attempt count lives in a file."""
    path = Path(os.environ["RETRY_STATE_DIR"]) / f"{key}.attempts"
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    if attempt <= 2:
        raise RuntimeError(f"flaky failure #{attempt} for {key}")
    return f"succeeded on attempt {attempt}"


# Failure, custom status, continue-as-new ----------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    yield context.call_activity("say_hello", "before the failure")
    raise ValueError("the orchestrator gave up on purpose")


@app.orchestration_trigger(context_name="context")
def with_custom_status(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": "waiting for Go", "progress": 50})
    go = yield context.wait_for_external_event("Go")
    context.set_custom_status({"stage": "done", "progress": 100})
    return {"received": go}


@app.orchestration_trigger(context_name="context")
def counter_loop(context: df.DurableOrchestrationContext):
    state = context.get_input()
    yield context.call_activity("say_hello", f"generation {state['n']}")
    if state["n"] < state["until"]:
        context.continue_as_new({"n": state["n"] + 1, "until": state["until"]})
        return None
    return state["n"]
