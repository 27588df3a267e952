"""In-process chat clients: a scripted one for tests, and a deterministic offline one for apps."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from agent_framework import (
    BaseChatClient,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    FunctionInvocationLayer,
    Message,
    ResponseStream,
)

from ._replies import Reply, echo

_log = logging.getLogger("durableagent.testing")


class ScriptedModelError(Exception):
    """A scripted HTTP failure, shaped like the OpenAI client's status errors (``status_code``)."""

    def __init__(self, status_code: int, message: str = "scripted failure") -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code


def _last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.text
    return ""


def _response_for(reply: Reply) -> ChatResponse:
    if reply.error_status is not None:
        raise ScriptedModelError(reply.error_status)
    contents: list[Any] = []
    if reply.text is not None:
        contents.append(reply.text)
    for call in reply.tool_calls:
        contents.append(
            Content.from_function_call(f"call_{uuid.uuid4().hex[:12]}", call.name, arguments=call.arguments)
        )
    usage = {"input_token_count": 1, "output_token_count": 1, "total_token_count": 2}
    return ChatResponse(messages=[Message(role="assistant", contents=contents)], usage_details=usage)  # type: ignore[arg-type]


class ScriptedChatClient(FunctionInvocationLayer[Any], BaseChatClient[Any]):
    """Answers from a script of ``Reply`` objects, in order; then echoes the last user message.

    Every call is recorded in ``calls`` (the messages the model saw), so tests can count model
    calls and check what was sent. Tool calls go through Agent Framework's function loop.
    """

    def __init__(self, *replies: Reply, responder: Callable[[Sequence[Message]], Reply] | None = None) -> None:
        super().__init__()
        self._script: deque[Reply] = deque(replies)
        self._responder = responder
        self._lock = threading.Lock()
        self.calls: list[list[Message]] = []

    def script(self, *replies: Reply) -> None:
        """Queue more replies."""
        with self._lock:
            self._script.extend(replies)

    def _next(self, messages: Sequence[Message]) -> Reply:
        with self._lock:
            self.calls.append(list(messages))
            if self._script:
                return self._script.popleft()
        if self._responder is not None:
            return self._responder(messages)
        return echo(_last_user_text(messages))

    def _inner_get_response(
        self, *, messages: Sequence[Message], stream: bool, options: Mapping[str, Any], **kwargs: Any
    ) -> Any:
        reply = self._next(messages)

        async def respond() -> ChatResponse:
            if reply.delay_seconds:
                await asyncio.sleep(reply.delay_seconds)
            return _response_for(reply)

        if not stream:
            return respond()

        async def updates() -> AsyncIterator[ChatResponseUpdate]:
            response = await respond()
            for message in response.messages:
                for content in message.contents:
                    yield ChatResponseUpdate(role="assistant", contents=[content])

        return ResponseStream(updates(), finalizer=ChatResponse.from_updates)


class OfflineChatClient(FunctionInvocationLayer[Any], BaseChatClient[Any]):
    """A deterministic model for running an app with no credentials: it says it is offline.

    The answer depends only on the last user message and how many messages the model sees, so
    runs are repeatable; no network is used.
    """

    _announced = False

    def _inner_get_response(
        self, *, messages: Sequence[Message], stream: bool, options: Mapping[str, Any], **kwargs: Any
    ) -> Any:
        if not OfflineChatClient._announced:
            OfflineChatClient._announced = True
            _log.warning("No model credentials are set: agents answer with the offline model.")
        text = _last_user_text(messages)
        answer = f"[offline model] I received: {text!r} ({len(messages)} message(s) in context)."
        response = ChatResponse(messages=[Message(role="assistant", contents=[Content.from_text(answer)])])

        async def respond() -> ChatResponse:
            return response

        if not stream:
            return respond()

        async def updates() -> AsyncIterator[ChatResponseUpdate]:
            yield ChatResponseUpdate(role="assistant", contents=[Content.from_text(answer)])

        return ResponseStream(updates(), finalizer=ChatResponse.from_updates)
