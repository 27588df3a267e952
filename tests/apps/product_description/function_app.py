"""The product description's first app, as its Quick Start, Multi-Agent (option 2) and Response Callbacks
sections write it, on the real OpenAI chat client pointed at a local fake server.

Only the client differs from the page (its ``AzureOpenAIAssistantsClient(...).create_agent`` is the
framework's, not ours): ``OPENAI_BASE_URL`` points at the test's ``FakeOpenAIServer``.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent, AgentResponse, AgentResponseUpdate
from agent_framework.openai import OpenAIChatCompletionClient

from durableagent import AgentFunctionApp, AgentSessionId
from durableagent.callbacks import AgentCallbackContext, AgentResponseCallbackProtocol


# Define your tools (optional)
def get_weather(location: str) -> dict[str, Any]:
    """Get the weather for a location."""
    return {"location": location, "temperature": 72, "conditions": "Sunny"}


def calculate(expression: str) -> str:
    """Add the whole numbers of an expression such as '2 + 3'."""
    return str(sum(int(part) for part in expression.split("+")))


# Create your agents
weather_agent = Agent(
    client=OpenAIChatCompletionClient(),
    name="WeatherAgent",
    instructions="You are a helpful weather assistant.",
    tools=[get_weather],
)
math_agent = Agent(
    client=OpenAIChatCompletionClient(),
    name="MathAgent",
    instructions="You are a helpful math assistant.",
    tools=[calculate],
)


class ConsoleLogger(AgentResponseCallbackProtocol):
    async def on_streaming_response_update(self, update: AgentResponseUpdate, context: AgentCallbackContext) -> None:
        print(f"[{context.agent_name}] chunk: {update.text}")

    async def on_agent_response(self, response: AgentResponse, context: AgentCallbackContext) -> None:
        print(f"[{context.agent_name}] final: {response.text}")
        print(
            f"[{context.agent_name}] context: correlation={context.correlation_id} "
            f"conversation={context.conversation_id} request={context.request_message}"
        )


# Option 2: start with an empty app, add agents one at a time.
app = AgentFunctionApp(default_callback=ConsoleLogger())
app.add_agent(weather_agent)
app.add_agent(math_agent)


# Not on the page: an orchestration that calls an agent's entity operation by name (run_agent, get_state,
# reset), so tests can run the page's "Entity Operations" through Durable Functions itself. The app is a
# DFApp ("Full Azure Functions Integration"), so these sit beside the agents.
@app.route(route="entity-operations/{agent}/{key}/{operation}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def entity_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    route = req.route_params
    payload = {
        "agent": route["agent"],
        "key": route["key"],
        "operation": route["operation"],
        "input": req.get_json() if req.get_body() else None,
    }
    instance = await client.start_new("call_agent_entity", client_input=payload)
    response: func.HttpResponse = await client.wait_for_completion_or_create_check_status_response(
        req, instance, timeout_in_milliseconds=30_000
    )
    return response


@app.orchestration_trigger(context_name="context")
def call_agent_entity(context: df.DurableOrchestrationContext) -> Any:
    args = context.get_input()
    session = AgentSessionId(args["agent"], args["key"])
    result = yield context.call_entity(session.to_entity_id(), args["operation"], args["input"])
    return result
