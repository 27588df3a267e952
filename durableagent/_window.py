"""The history provider durableagent adds to each agent: a bounded window kept in the session.

Agent Framework loads history from a ``HistoryProvider`` before a run and stores the run's input and
output after it. Ours keeps the recent window in the session's own state (so it travels with
``AgentSession.to_dict()`` into the entity) and notes the run's new messages for the transcript.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent_framework import AgentSession, HistoryProvider, Message, SupportsAgentRun
from agent_framework._sessions import SessionContext

from ._state import WINDOW_SOURCE_ID, as_message_dict

PENDING_KEY = "pending"


class DurableWindowHistory(HistoryProvider):
    """Loads the window before a run; records the turn's messages after a successful one."""

    def __init__(self) -> None:
        super().__init__(source_id=WINDOW_SOURCE_ID, load_messages=True, store_inputs=True, store_outputs=True)

    async def before_run(
        self,
        *,
        agent: SupportsAgentRun,
        session: AgentSession,
        context: SessionContext,
        state: dict[str, Any],
    ) -> None:
        # With service-side history (Responses API, stored conversations) the service already
        # has the conversation: sending the window too would duplicate it.
        if session.service_session_id:
            return
        await super().before_run(agent=agent, session=session, context=context, state=state)

    async def get_messages(
        self, session_id: str | None, *, state: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Message]:
        stored = (state or {}).get("messages", [])
        return [m if isinstance(m, Message) else Message.from_dict(m) for m in stored]

    async def save_messages(
        self,
        session_id: str | None,
        messages: Sequence[Message],
        *,
        state: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if state is None:
            return
        stored = [m.to_dict() for m in messages]
        state.setdefault("messages", []).extend(stored)
        state.setdefault(PENDING_KEY, []).extend(stored)


def take_pending(session: AgentSession) -> list[dict[str, Any]]:
    """Remove and return the messages the last run added (what the transcript records)."""
    slot = session.state.setdefault(WINDOW_SOURCE_ID, {})
    return [as_message_dict(m) for m in slot.pop(PENDING_KEY, [])]


def install(agent: SupportsAgentRun) -> bool:
    """Give an agent our window provider unless it already has a loading history provider.

    Returns:
        Whether ours was installed (an agent with its own history provider keeps it).
    """
    providers = getattr(agent, "context_providers", None)
    if providers is None:
        return False
    if any(isinstance(p, HistoryProvider) and p.load_messages for p in providers):
        return any(isinstance(p, DurableWindowHistory) for p in providers)
    providers.append(DurableWindowHistory())
    return True
