"""The deployable function app: agents built from settings, hosted durably.

Model: Azure OpenAI when ``AZURE_OPENAI_ENDPOINT`` is set (managed identity in Azure), OpenAI when
``OPENAI_API_KEY`` is set, else an offline model that says so. Run it locally with ``./dev start``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func
from agent_framework import Agent, tool

from durableagent import AgentFunctionApp, chat_client_from_settings


@tool
def utc_now() -> str:
    """The current date and time in UTC (ISO 8601)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


assistant = Agent(
    client=chat_client_from_settings(),
    name="Assistant",
    instructions="You are a concise, helpful assistant. Use the utc_now tool when asked about the time.",
    tools=[utc_now],
)

app = AgentFunctionApp(agents=[assistant], http_auth_level=func.AuthLevel.FUNCTION)
