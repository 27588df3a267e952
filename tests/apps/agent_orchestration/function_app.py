"""Agents called from orchestrations (the offline model answers; structured output included)."""

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent, AgentResponse

from durableagent import AgentFunctionApp
from durableagent.testing import OfflineChatClient, Reply, ScriptedChatClient

app = AgentFunctionApp(agents=[Agent(client=OfflineChatClient(), name="Writer", instructions="Write.")])
# A model that always fails (three 500s per run, as the openai client's retries would see).
app.add_agent(Agent(client=ScriptedChatClient(responder=lambda messages: Reply.error(500)), name="Broken"))

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "words": {"type": "integer"}},
    "required": ["title", "words"],
}


@app.orchestration_trigger(context_name="context")
def write_twice(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    writer = app.get_agent(context, "Writer")
    first = yield writer.run(context.get_input())
    second = yield writer.run("and again")
    shaped = yield writer.run("as json", session_key="shaped", response_schema=SCHEMA)
    return {
        "first": first.text,
        "second": second.text,
        "value": shaped.value,
        "types": [isinstance(r, AgentResponse) for r in (first, second, shaped)],
        "session": first.session_id,
        "sameSession": first.session_id == second.session_id,
    }


@app.orchestration_trigger(context_name="context")
def call_broken(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    try:
        yield app.get_agent(context, "Broken").run("hi")
    except Exception as exc:
        return {"failed": True, "error": str(exc)[:200]}
    return {"failed": False}


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"], None, req.get_body().decode() or None)
    return client.create_check_status_response(req, instance_id)
