"""A plain Durable Functions app (no durableagent): chaining, an entity, and a route using openai 1.x.

It needs nothing of the durableagent library, so the local host must run it from a venv holding
only ``durableagent-devhost`` and this app's requirements.
"""

from __future__ import annotations

import json

import azure.durable_functions as df
import azure.functions as func
import openai

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

COUNTER = df.EntityId("counter", "greetings")


@app.route(route="greet", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_greeting(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start ``greeting_chain`` with the body's ``name``; the check-status response."""
    name = req.get_json().get("name", "world")
    instance_id = await client.start_new("greeting_chain", None, name)
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def greeting_chain(context: df.DurableOrchestrationContext):
    greeting = yield context.call_activity("make_greeting", context.get_input())
    loud = yield context.call_activity("shout", greeting)
    count = yield context.call_entity(COUNTER, "add", 1)
    return {"greeting": loud, "count": count}


@app.activity_trigger(input_name="name")
def make_greeting(name: str) -> str:
    return f"Hello, {name}!"


@app.activity_trigger(input_name="text")
def shout(text: str) -> str:
    return text.upper()


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    elif context.operation_name == "reset":
        value = 0
    context.set_state(value)
    context.set_result(value)


@app.route(route="counter/add", methods=["POST"])
@app.durable_client_input(client_name="client")
async def add_to_counter(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.signal_entity(COUNTER, "add", int(req.params.get("amount", "1")))
    return func.HttpResponse(status_code=202)


@app.route(route="counter", methods=["GET"])
@app.durable_client_input(client_name="client")
async def read_counter(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    state = await client.read_entity_state(COUNTER)
    body = {"exists": state.entity_exists, "value": state.entity_state}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="openai-version", methods=["GET"])
def openai_version(req: func.HttpRequest) -> func.HttpResponse:
    """Which openai this app got: its own pin, not the one durableagent needs."""
    return func.HttpResponse(json.dumps({"openai": openai.__version__}), mimetype="application/json")
