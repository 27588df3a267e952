"""The turn journal: each model response and tool result of a turn, recorded as it completes.

An entity operation commits only when it ends, so a crash in the middle of a turn used to run the
whole turn again: the model was asked again and every tool ran again. The journal closes that gap.
Agent Framework's chat and function middleware are the seams: the chat middleware sees every model
call of the turn's function-calling loop, the function middleware every tool call. Each finished
step is written to blob storage before the loop goes on; a retried attempt at the same turn (same
correlation id) answers those steps from the record instead of calling again. Only a call in flight
at the crash can repeat.

A model response that asks for no tool is the turn's last: the turn's own blob, written right after
it, is its record, so the common one-call turn costs no extra write.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agent_framework import (
    ChatContext,
    ChatMiddleware,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    FunctionInvocationContext,
    FunctionMiddleware,
    ResponseStream,
)
from agent_framework.exceptions import MiddlewareException, UserInputRequiredException

from ._logs import get_logger
from ._session_id import AgentSessionId
from ._transcript import TranscriptStore, TurnAttempt

_log = get_logger("durableagent.journal")

CALL_ID_KEY = "call_id"
"""Where a tool finds its call id: ``FunctionInvocationContext.metadata["call_id"]`` (Agent Framework's key)."""


class ReplayedToolError(Exception):
    """A tool call that failed in an earlier attempt, failing again from the record (the tool is not run)."""


class TurnAlreadyWritten(Exception):
    """An earlier attempt of this run wrote the turn's blob and then crashed: adopt it, run nothing."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("the turn was written by an earlier attempt")
        self.record = record


class TurnJournal:
    """The journal of one attempt at one turn of one session."""

    def __init__(
        self,
        store: TranscriptStore,
        session: AgentSessionId,
        turn: int,
        correlation_id: str,
        earlier: TurnAttempt,
    ) -> None:
        """Start an attempt from what earlier attempts left (``earlier``, listed before the run).

        Raises:
            TurnAlreadyWritten: An earlier attempt of this run wrote the turn's blob: adopt it.
        """
        self._store = store
        self._session = session
        self._turn = turn
        self._correlation_id = correlation_id
        record = earlier.record
        if record is not None and record.get("correlationId") == correlation_id:
            raise TurnAlreadyWritten(record)
        self._recorded: dict[str, dict[str, Any]] = dict(earlier.journal)
        if earlier.journal:
            _log.info("Run %s resumes from its journal (%d recorded steps)", correlation_id, len(earlier.journal))
        self._model_calls = 0
        self.replayed = 0
        """Steps answered from the record in this attempt."""

    @property
    def entries(self) -> list[str]:
        """Names of every entry this turn has (from earlier attempts and this one)."""
        return list(self._recorded)

    def middleware(self) -> list[Any]:
        """The chat and function middleware to pass to ``agent.run(middleware=...)``."""
        return [_ChatJournal(self), _FunctionJournal(self)]

    def next_model_entry(self) -> str:
        name = f"model-{self._model_calls:04d}"
        self._model_calls += 1
        return name

    def recorded(self, entry: str) -> dict[str, Any] | None:
        found = self._recorded.get(entry)
        if found is not None:
            self.replayed += 1
        return found

    async def record(self, entry: str, data: dict[str, Any]) -> None:
        self._recorded[entry] = data
        try:
            await asyncio.to_thread(
                self._store.write_journal, self._session, self._turn, self._correlation_id, entry, data
            )
        except Exception:
            # The step happened; failing the turn now would be worse than the small chance of repeating it.
            _log.warning("Could not record journal entry %s of run %s", entry, self._correlation_id)

    def discard(self) -> None:
        """The turn's blob now holds everything: drop the entries (in the background)."""
        self._store.discard_journal(self._session, self._turn, self._correlation_id, self.entries)


def accepts_middleware(agent: object) -> bool:
    """Whether ``agent.run`` takes ``middleware=`` (Agent Framework's ``Agent`` does; a bare protocol may not)."""
    run = getattr(agent, "run", None)
    if run is None:
        return False
    try:
        return "middleware" in inspect.signature(run).parameters
    except (TypeError, ValueError):
        return False


def tool_entry(call_id: str) -> str:
    # Call ids come from the model: any text. Hash them into a safe, bounded blob name.
    return "tool-" + hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _asks_for_tools(response: ChatResponse) -> bool:
    return any(c.type == "function_call" for m in response.messages for c in m.contents)


class _ChatJournal(ChatMiddleware):
    def __init__(self, journal: TurnJournal) -> None:
        self._journal = journal

    async def process(self, context: ChatContext, call_next: Callable[[], Awaitable[None]]) -> None:
        entry = self._journal.next_model_entry()
        recorded = self._journal.recorded(entry)
        if recorded is not None:
            response = ChatResponse.from_dict(recorded)
            context.result = _replay_stream(response) if context.stream else response
            return
        await call_next()
        result = context.result
        if isinstance(result, ChatResponse):
            if _asks_for_tools(result):
                await self._journal.record(entry, result.to_dict())
        elif isinstance(result, ResponseStream):

            async def keep(response: ChatResponse) -> None:
                if _asks_for_tools(response):
                    await self._journal.record(entry, response.to_dict())

            result.with_result_hook(keep)


def _replay_stream(response: ChatResponse) -> ResponseStream[ChatResponseUpdate, ChatResponse]:
    updates = [
        ChatResponseUpdate(
            contents=list(message.contents),
            role=message.role,  # type: ignore[arg-type]  # a Message's role is one the update accepts
            author_name=message.author_name,
            message_id=message.message_id,
            response_id=response.response_id,
            conversation_id=response.conversation_id,
            model=response.model,
            finish_reason=response.finish_reason,
        )
        for message in response.messages
    ]
    if response.usage_details:
        updates.append(ChatResponseUpdate(contents=[Content.from_usage(response.usage_details)]))

    async def replay() -> AsyncIterator[ChatResponseUpdate]:
        for update in updates:
            yield update

    return ResponseStream(replay(), finalizer=ChatResponse.from_updates)


class _FunctionJournal(FunctionMiddleware):
    def __init__(self, journal: TurnJournal) -> None:
        self._journal = journal

    async def process(self, context: FunctionInvocationContext, call_next: Callable[[], Awaitable[None]]) -> None:
        call_id = context.metadata.get(CALL_ID_KEY)
        if not isinstance(call_id, str) or not call_id:
            await call_next()
            return
        entry = tool_entry(call_id)
        recorded = self._journal.recorded(entry)
        if recorded is not None:
            if "error" in recorded:
                raise ReplayedToolError(str(recorded["error"]))
            context.result = _decode_result(recorded["result"])
            return
        try:
            await call_next()
        except Exception as exc:
            if not _is_control_flow(exc):
                await self._journal.record(entry, {"callId": call_id, "error": str(exc)})
            raise
        encoded = _encode_result(context.result)
        if encoded is not None:
            await self._journal.record(entry, {"callId": call_id, "result": encoded})


def _is_control_flow(exc: Exception) -> bool:
    # Agent Framework steers its loop with these (termination, approval, user input): not a tool result.
    return isinstance(exc, MiddlewareException | UserInputRequiredException)


def _encode_result(result: Any) -> dict[str, Any] | None:
    if isinstance(result, str):
        return {"text": result}
    if isinstance(result, list) and all(isinstance(item, Content) for item in result):
        return {"contents": [item.to_dict() for item in result]}
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        # A raw value that is not JSON (a tool with SKIP_PARSING): it cannot be replayed, so it is not kept.
        return None
    return {"json": result}


def _decode_result(encoded: dict[str, Any]) -> Any:
    if "text" in encoded:
        return encoded["text"]
    if "contents" in encoded:
        return [Content.from_dict(item) for item in encoded["contents"]]
    return encoded.get("json")
