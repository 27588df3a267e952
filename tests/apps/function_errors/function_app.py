"""An app with functions the local host cannot serve, next to working ones, for the end-to-end test.

The host puts ``on_event`` (eventHubTrigger), ``mcp_tool`` (mcpToolTrigger), ``lookup`` (an HTTP function
with a cosmosDB input) and ``archive`` (an activity with a table output) in error and serves the rest:
``hello``, the ``start`` starter, the ``greet`` orchestration and its ``say_hello`` activity, and
``archive_flow``, which calls the errored activity.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


# In error ------------------------------------------------------------------------------------------


@app.event_hub_message_trigger(arg_name="event", event_hub_name="events", connection="EventHubConnection")
def on_event(event: func.EventHubEvent) -> None:
    raise AssertionError("the host must never run a function in error")


@app.generic_trigger(
    arg_name="context",
    type="mcpToolTrigger",
    toolName="hello_tool",
    description="Says hello.",
    toolProperties="[]",
)
def mcp_tool(context: str) -> str:
    raise AssertionError("the host must never run a function in error")


@app.route(route="lookup/{id}", methods=["GET"])
@app.cosmos_db_input(
    arg_name="documents",
    database_name="db",
    container_name="items",
    id="{id}",
    partition_key="{id}",
    connection="CosmosDbConnection",
)
def lookup(req: func.HttpRequest, documents: func.DocumentList) -> func.HttpResponse:
    raise AssertionError("the host must never run a function in error")


@app.activity_trigger(input_name="name")
@app.table_output(arg_name="row", table_name="archive", connection="AzureWebJobsStorage")
def archive(name: str, row: func.Out[str]) -> str:
    raise AssertionError("the host must never run a function in error")


# Served ---------------------------------------------------------------------------------------------


@app.route(route="hello", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"Hello, {req.params.get('name', 'world')}!")


@app.route(route="start/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start an orchestration; the check-status response, or the host's error text with a 400."""
    try:
        instance_id = await client.start_new(req.route_params["functionName"], None, None)
    except Exception as exc:  # what the SDK raises for the management API's 400
        return func.HttpResponse(str(exc), status_code=400)
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def greet(context: df.DurableOrchestrationContext):
    greetings = []
    for city in ("Tokyo", "Lima"):
        greetings.append((yield context.call_activity("say_hello", city)))
    return greetings


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.orchestration_trigger(context_name="context")
def archive_flow(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("archive", "report"))
