"""Checkpoints: every superstep of a durable run is checkpointed; a new run can start from any checkpoint.

    tally  ->  Summarizer (agent)  ->  deliver

``tally`` adds up a day of sales, the ``Summarizer`` agent writes a short digest, ``deliver`` sends it (here:
writes it to the ``digest-outbox`` blob container, standing in for an e-mail or a chat message).

- ``GET /api/workflows/SalesDigest/runs/{runId}`` lists the run's checkpoints; ``POST
  /api/workflows/SalesDigest/runs`` with ``{"checkpointId": "..."}`` starts a new run from one (a fork: the
  steps before it are not run again).
- The same from Python, in two functions of this app: ``GET /api/digests/checkpoints/{checkpointId}`` reads a
  checkpoint with ``app.checkpoint_storage()``; ``POST /api/digests/runs/{runId}/rerun`` with
  ``{"after": "tally"}`` finds the run's checkpoint taken right after that executor
  (``app.run_checkpoints``) and starts a run from it (``app.start_workflow``).
- Executors run at least once per superstep: a superstep whose host went away is run again from the last
  checkpoint.
  ``deliver`` is therefore idempotent: its key derives from its input (fixed by the checkpoint), and the
  write only creates (a retry finds the blob there and sends nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import (
    Agent,
    AgentExecutor,
    AgentExecutorRequest,
    AgentExecutorResponse,
    Executor,
    Message,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    register_checkpoint_type,
)
from agent_framework.exceptions import WorkflowCheckpointException
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerClient

from durableagent import AgentFunctionApp, chat_client_from_settings

WORKFLOW_NAME = "SalesDigest"
EXECUTORS = ("tally", "summarize", "deliver")
OUTBOX_CONTAINER = "digest-outbox"
STORAGE_SETTING = "AzureWebJobsStorage"  # the outbox lives on the app's own storage account

SUMMARIZER_INSTRUCTIONS = (
    "You write the daily sales digest of an online tool shop for the team: two sentences, the figures you are "
    "given and nothing else, plain English. Answer with the digest only."
)


@dataclass
class Sale:
    sku: str
    quantity: int
    unit_price: float


@dataclass
class SalesDay:
    """The input: ``{"date": "2026-03-02", "sales": [{"sku": "...", "quantity": 1, "unit_price": 89.0}]}``."""

    date: str
    sales: list[Sale]


register_checkpoint_type(Sale)
register_checkpoint_type(SalesDay)


class Tally(Executor):
    @handler
    async def tally(self, day: SalesDay, ctx: WorkflowContext[AgentExecutorRequest]) -> None:
        date.fromisoformat(day.date)  # a real date (it names the delivered blob), else the run fails
        if not day.sales:
            raise ValueError("There are no sales to summarize.")
        units = Counter[str]()
        for sale in day.sales:
            units[sale.sku] += sale.quantity
        figures = {
            "date": day.date,
            "orders": len(day.sales),
            "units": units.total(),
            "revenue": round(sum(s.quantity * s.unit_price for s in day.sales), 2),
            "topSku": min(units, key=lambda sku: (-units[sku], sku)),
        }
        ctx.set_state("figures", figures)  # shared state is part of every later checkpoint
        prompt = (
            f"Sales on {figures['date']}: {figures['orders']} orders, {figures['units']} units, revenue "
            f"{figures['revenue']:.2f} EUR, best seller {figures['topSku']}. Write the digest."
        )
        await ctx.send_message(AgentExecutorRequest(messages=[Message("user", [prompt])]))


@functools.cache
def outbox() -> ContainerClient:
    """The outbox container, on the app's storage account (connection string, or identity-based in Azure)."""
    connection = os.environ.get(STORAGE_SETTING)
    if connection:
        service = BlobServiceClient.from_connection_string(connection)
    else:
        from azure.identity import DefaultAzureCredential

        client_id = os.environ.get(f"{STORAGE_SETTING}__clientId")
        credential = DefaultAzureCredential(managed_identity_client_id=client_id)
        service = BlobServiceClient(os.environ[f"{STORAGE_SETTING}__blobServiceUri"], credential=credential)
    container = service.get_container_client(OUTBOX_CONTAINER)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    return container


def send_once(name: str, message: dict[str, Any]) -> bool:
    """Create the outbox blob unless it exists; ``True`` when it was there already (sent before)."""
    try:
        outbox().upload_blob(name, json.dumps(message), overwrite=False)
    except ResourceExistsError:
        return True
    return False


class Deliver(Executor):
    @handler
    async def deliver(self, summary: AgentExecutorResponse, ctx: WorkflowContext[Any, dict[str, Any]]) -> None:
        figures = ctx.get_state("figures")
        digest = summary.agent_response.text.strip()
        # The idempotency key derives from this superstep's input only (the figures and the digest), which the
        # checkpoint it resumes from fixes: a retry of this superstep computes the same key and sends nothing new.
        content = json.dumps({"figures": figures, "digest": digest}, sort_keys=True)
        delivery_key = hashlib.sha256(content.encode()).hexdigest()[:32]
        message = {"subject": f"Sales digest {figures['date']}", "digest": digest, "figures": figures}
        already_sent = await asyncio.to_thread(send_once, f"{figures['date']}/{delivery_key}.json", message)
        await ctx.yield_output(
            {"figures": figures, "digest": digest, "deliveryKey": delivery_key, "alreadySent": already_sent}
        )


summarize = AgentExecutor(
    Agent(client=chat_client_from_settings(), name="Summarizer", instructions=SUMMARIZER_INSTRUCTIONS),
    id="summarize",
)
tally, deliver = Tally(id="tally"), Deliver(id="deliver")
sales_digest = (
    WorkflowBuilder(name=WORKFLOW_NAME, start_executor=tally, output_from=[deliver])
    .add_chain([tally, summarize, deliver])
    .build()
)

app = AgentFunctionApp(workflows=[sales_digest], http_auth_level=func.AuthLevel.FUNCTION)


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def _error(status: int, code: str, message: str) -> func.HttpResponse:
    return _json({"error": {"code": code, "message": message}}, status)


@app.function_name(name="digest_checkpoint")
@app.route(route="digests/checkpoints/{checkpointId}", methods=["GET"])
async def digest_checkpoint(req: func.HttpRequest) -> func.HttpResponse:
    """What a checkpoint holds: which executors have sent messages not yet delivered, and the shared state."""
    checkpoint_id = req.route_params["checkpointId"]
    try:
        checkpoint = await app.checkpoint_storage().load(checkpoint_id)
    except WorkflowCheckpointException:
        return _error(404, "checkpoint_not_found", f"No checkpoint '{checkpoint_id}'.")
    if checkpoint.workflow_name != WORKFLOW_NAME:
        return _error(404, "checkpoint_not_found", f"No checkpoint '{checkpoint_id}' of {WORKFLOW_NAME}.")
    return _json(
        {
            "checkpointId": checkpoint.checkpoint_id,
            "previousCheckpointId": checkpoint.previous_checkpoint_id,
            "iteration": checkpoint.iteration_count,
            "timestamp": checkpoint.timestamp,
            # Keyed by the sending executor: the next superstep delivers these.
            "messagesFrom": sorted(source for source, messages in checkpoint.messages.items() if messages),
            # The workflow's own shared state (keys starting with "_" belong to Agent Framework).
            "state": {k: v for k, v in checkpoint.state.items() if not k.startswith("_")},
        }
    )


@app.function_name(name="rerun_digest")
@app.route(route="digests/runs/{runId}/rerun", methods=["POST"])
@app.durable_client_input(client_name="client")
async def rerun_digest(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a new run from the checkpoint taken right after ``{"after": "<executor>"}`` in run ``runId``."""
    try:
        after = req.get_json().get("after")
    except (ValueError, AttributeError):
        after = None
    if after not in EXECUTORS:
        return _error(400, "invalid_request", f'Send {{"after": "<executor>"}}, one of {", ".join(EXECUTORS)}.')
    run_id = req.route_params["runId"]
    entries = await asyncio.to_thread(app.run_checkpoints, WORKFLOW_NAME, run_id)
    if not entries:
        return _error(404, "run_not_found", f"Run '{run_id}' has no checkpoints.")
    storage = app.checkpoint_storage()
    for entry in reversed(entries):  # newest first
        checkpoint = await storage.load(entry.checkpoint_id)
        if checkpoint.messages.get(after):
            new_run = await app.start_workflow(client, WORKFLOW_NAME, checkpoint_id=entry.checkpoint_id)
            status_uri = req.url.split("/api/", 1)[0] + f"/api/workflows/{WORKFLOW_NAME}/runs/{new_run}"
            return _json({"runId": new_run, "checkpointId": entry.checkpoint_id, "statusUri": status_uri}, 202)
    return _error(404, "checkpoint_not_found", f"Nothing in run '{run_id}' waits on a message from '{after}'.")
