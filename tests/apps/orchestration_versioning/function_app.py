"""Orchestration versioning, as the Durable Functions Python SDK's ``orchestration_versioning`` sample shows it.

host.json's ``defaultVersion`` is stamped on every instance started without a version; the orchestrator
branches on ``context.version``. Between its two halves it waits for a ``Continue`` event, which is the
moment to stop the app, raise ``defaultVersion`` and start it again: the running instance keeps its
version (and its branch) while a sub-orchestration started afterwards gets the new default.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start an orchestration; ``?version=`` overrides the app's default version."""
    name = req.route_params["functionName"]
    version = req.params.get("version")
    if version:
        instance_id = await client.start_new(name, version=version)
    else:
        instance_id = await client.start_new(name)
    logging.info("Started '%s' as %s (version %s)", name, instance_id, version or "from host.json")
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def versioned_orchestrator(context: df.DurableOrchestrationContext):
    # context.version is fixed when the instance is created: host.json's defaultVersion at that moment.
    if context.version == "1.0":
        greeting = yield context.call_activity("greet_v1", None)
    else:
        greeting = yield context.call_activity("greet_v2", None)

    context.set_custom_status("Waiting for Continue event...")
    yield context.wait_for_external_event("Continue")
    context.set_custom_status("Continue event received")

    pinned = yield context.call_sub_orchestrator("version_reporter", version="0.9")
    defaulted = yield context.call_sub_orchestrator("version_reporter")
    return [
        f"Orchestration version: {context.version}",
        f"Suborchestration version (explicit): {pinned}",
        f"Suborchestration version (default): {defaulted}",
        greeting,
    ]


@app.orchestration_trigger(context_name="context")
def version_reporter(context: df.DurableOrchestrationContext):
    return context.version
    yield  # an orchestrator is a generator even when it schedules nothing


@app.activity_trigger(input_name="unused")
def greet_v1(unused: str) -> str:
    return "Hello from A!"


@app.activity_trigger(input_name="unused")
def greet_v2(unused: str) -> str:
    return "Hello from B!"
