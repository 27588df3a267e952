"""Callbacks that observe agent runs (streaming updates and final responses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent_framework import AgentResponse, AgentResponseUpdate


@dataclass(frozen=True)
class AgentCallbackContext:
    """What a callback learns about the run it observes.

    Attributes:
        agent_name: The agent that runs.
        correlation_id: The run's correlation id.
        session_id: The session, as ``@name@key``.
        request_message: The message the agent was asked to answer.
        conversation_id: The caller's session key (what it sent as ``sessionId``).
    """

    agent_name: str
    correlation_id: str
    session_id: str
    request_message: str
    conversation_id: str = ""


@runtime_checkable
class AgentResponseCallbackProtocol(Protocol):
    """Receives a run's streaming updates and its final response.

    A callback that raises is logged and ignored: it never fails, stops or repeats a run.
    """

    async def on_streaming_response_update(self, update: AgentResponseUpdate, context: AgentCallbackContext) -> None:
        """Called for each streaming update while the agent runs."""

    async def on_agent_response(self, response: AgentResponse, context: AgentCallbackContext) -> None:
        """Called once with the final response of a successful run."""
