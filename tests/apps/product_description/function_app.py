"""The product description's first app, as its Quick Start, Multi-Agent (option 2) and Response Callbacks
sections write it, on the real OpenAI chat client pointed at a local fake server.

Only the client differs from the page (its ``AzureOpenAIAssistantsClient(...).create_agent`` is the
framework's, not ours): ``OPENAI_BASE_URL`` points at the test's ``FakeOpenAIServer``.
"""

from __future__ import annotations

from typing import Any

from agent_framework import Agent, AgentResponse, AgentResponseUpdate
from agent_framework.openai import OpenAIChatCompletionClient

from durableagent import AgentFunctionApp
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
