"""A plain Durable app for the host's own behaviour: log levels, failure output, start-up checks.

host.json keeps ``Function`` categories at Warning except ``Function.loud`` and ``Function.chatty.User``.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="quiet", methods=["GET"])
def quiet(req: func.HttpRequest) -> func.HttpResponse:
    logging.info("quiet says info")
    logging.warning("quiet says warning")
    return func.HttpResponse("quiet")


@app.route(route="loud", methods=["GET"])
def loud(req: func.HttpRequest) -> func.HttpResponse:
    logging.info("loud says info")
    return func.HttpResponse("loud")


@app.route(route="chatty", methods=["GET"])
def chatty(req: func.HttpRequest) -> func.HttpResponse:
    logging.info("chatty says info")
    return func.HttpResponse("chatty")


@app.route(route="start/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["functionName"])
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def fails(context: df.DurableOrchestrationContext):
    yield context.call_activity("explode", "now")
    return "never"


@app.activity_trigger(input_name="when")
def explode(when: str) -> str:
    raise KeyError(f"kaboom {when}")
