"""Durable HTTP (``context.call_http``) for the end-to-end tests.

The orchestrators take ``{"method", "uri", "content"?, "headers"?}`` and return what ``call_http`` gave
them: the ``DurableHttpResponse`` as a dict (``statusCode``, ``headers``, ``content``).

``polling_call`` sends the request with ``asynchronousPatternEnabled`` set, as the Durable JavaScript SDK
does (the Python SDK 1.x never sets it, so in Azure its ``call_http`` returns a 202 as it is).
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.actions.CallHttpAction import CallHttpAction
from azure.durable_functions.models.DurableHttpRequest import DurableHttpRequest

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


class PollingRequest(DurableHttpRequest):
    """A request that asks the extension to follow 202 answers."""

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = dict(super().to_json())
        document["asynchronousPatternEnabled"] = True
        return document


@app.route(route="start/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["functionName"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def http_call(context: df.DurableOrchestrationContext):
    request = context.get_input()
    response = yield context.call_http(
        request["method"], request["uri"], content=request.get("content"), headers=request.get("headers")
    )
    return response


@app.orchestration_trigger(context_name="context")
def polling_call(context: df.DurableOrchestrationContext):
    request = context.get_input()
    action = CallHttpAction(PollingRequest(request["method"], request["uri"], headers=request.get("headers")))
    response = yield context._generate_task(action)
    return response
