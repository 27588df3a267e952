"""Agents inside orchestrations: ``app.get_agent(context, name).run(...)`` is an entity call.

The result travels back through the orchestration history as a ``DurableAgentResponse`` (an Agent
Framework ``AgentResponse``), encoded with the Durable SDK's ``to_json``/``from_json`` protocol.
Session keys and correlation ids are derived deterministically, so replays make the same calls.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from agent_framework import AgentResponse, Message

from ._entity import RUN_AGENT
from ._session_id import AgentSessionId, validate_key


class DurableAgentResponse(AgentResponse):
    """An agent's response as an orchestration receives it.

    Attributes:
        session_id: The session the run belongs to (``@name@key``).
        correlation_id: The run's correlation id.
    """

    session_id: str = ""
    correlation_id: str = ""

    def to_json(self, *, exclude: set[str] | None = None, exclude_none: bool = True, **kwargs: Any) -> str:
        """The JSON that crosses the orchestration history (the Durable SDK calls this)."""
        return json.dumps(
            {
                "messages": [m.to_dict() for m in self.messages],
                "value": self.structured_value,
                "sessionId": self.session_id,
                "correlationId": self.correlation_id,
            }
        )

    @classmethod
    def from_json(cls, value: str, /, *, dependencies: MutableMapping[str, Any] | None = None) -> DurableAgentResponse:
        """Rebuild the response in the orchestrator (the Durable SDK calls this)."""
        data = json.loads(value) if isinstance(value, str) else dict(value)
        response = cls(messages=[Message.from_dict(m) for m in data.get("messages", [])], value=data.get("value"))
        response.session_id = str(data.get("sessionId", ""))
        response.correlation_id = str(data.get("correlationId", ""))
        return response

    @property
    def structured_value(self) -> Any:
        """The parsed structured output, or ``None`` for a plain-text run."""
        return getattr(self, "_value", None)


def response_from_record(record: dict[str, Any], session: AgentSessionId) -> DurableAgentResponse:
    """The orchestration-side response of a recorded turn."""
    messages = (record.get("response") or {}).get("messages", [])
    response = DurableAgentResponse(messages=[Message.from_dict(m) for m in messages], value=record.get("value"))
    response.session_id = str(session)
    response.correlation_id = str(record.get("correlationId", ""))
    return response


class DurableAgent:
    """An agent as an orchestrator sees it: ``yield agent.run(...)`` returns a ``DurableAgentResponse``."""

    def __init__(self, context: Any, name: str) -> None:
        self._context = context
        self.name = name

    def default_session_key(self) -> str:
        """One session per orchestration instance (and agent), unless a key is given."""
        return f"orch-{self._context.instance_id}"

    def run(
        self,
        message: str,
        *,
        session_key: str | None = None,
        response_schema: dict[str, Any] | None = None,
        enable_tool_calls: bool = True,
    ) -> Any:
        """The Durable task of one agent run; a failed run raises in the orchestrator when yielded."""
        key = validate_key(session_key or self.default_session_key())
        session = AgentSessionId(self.name, key)
        payload: dict[str, Any] = {
            "message": message,
            "role": "user",
            # new_uuid is replay-safe: the same call gets the same id on every replay.
            "correlationId": self._context.new_uuid(),
            "enableToolCalls": enable_tool_calls,
            "returnResponse": True,
            # The orchestration's replay-safe clock: when the orchestrator "said" it.
            "receivedAt": self._context.current_utc_datetime.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        if response_schema is not None:
            payload["responseSchema"] = response_schema
        return self._context.call_entity(session.to_entity_id(), RUN_AGENT, payload)
