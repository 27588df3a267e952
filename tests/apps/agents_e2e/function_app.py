"""Agents on the real OpenAI clients, pointed at a local fake OpenAI server, for the agent e2e tests.

Environment:
    OPENAI_BASE_URL: the fake server's ``/v1`` URL (loopback); OPENAI_API_KEY and OPENAI_MODEL as usual.
    TOOL_LOG_DIR: ``lookup`` appends one line per execution to ``lookup.log`` here, so tests count runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import azure.functions as func
from agent_framework import Agent, tool
from agent_framework.openai import OpenAIChatClient, OpenAIChatCompletionClient

from durableagent import AgentFunctionApp


@tool
def lookup(city: str) -> str:
    """The current weather of a city."""
    fd = os.open(Path(os.environ["TOOL_LOG_DIR"]) / "lookup.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{city}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return f"Weather in {city}: sunny, 21 C"


chat = Agent(
    client=OpenAIChatCompletionClient(),
    name="Chat",
    instructions="You answer briefly. Use lookup for the weather.",
    tools=[lookup],
)

# The Responses API keeps the conversation on the service (previous_response_id).
responses = Agent(client=OpenAIChatClient(), name="Responses", instructions="You answer briefly.")

app = AgentFunctionApp(agents=[chat, responses], http_auth_level=func.AuthLevel.FUNCTION)
