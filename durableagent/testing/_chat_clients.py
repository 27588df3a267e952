"""In-process chat clients: a scripted one for tests, and a deterministic offline one for apps.

Both are full Agent Framework chat clients, composed like ``OpenAIChatCompletionClient``
(function invocation, then chat middleware, then telemetry, around ``BaseChatClient``), so tools
run through Agent Framework's own function loop and middleware behaves as with a real model.
"""

from __future__ import annotations

import asyncio
import json
import threading
from abc import abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from agent_framework import (
    BaseChatClient,
    ChatMiddlewareLayer,
    ChatOptions,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    FunctionInvocationLayer,
    Message,
    ResponseStream,
    UsageDetails,
)
from agent_framework.exceptions import ChatClientException
from agent_framework.observability import ChatTelemetryLayer

from .._logs import get_logger
from ._openai_wire import estimate_tokens, text_chunks
from ._replies import Reply, echo_reply

_log = get_logger("durableagent.testing")

MessagesResponder = Callable[[list[Message]], Reply]
"""Answers an unscripted call of an in-process client: gets the messages the model sees."""

_Options = ChatOptions[Any]
_Answer = tuple[ChatResponse | Exception, float]


class ScriptedModelError(ChatClientException):
    """A scripted model failure (``Reply.error``), raised where the OpenAI clients raise theirs.

    Agent Framework's OpenAI clients wrap HTTP failures in ``ChatClientException``; this subclass
    keeps the scripted status, body and headers for assertions.
    """

    def __init__(self, reply: Reply) -> None:
        self.status_code = reply.status or 500
        self.body = reply.error_json()
        self.headers = dict(reply.headers)
        super().__init__(f"scripted model failure: HTTP {self.status_code}", log_level=None)


@dataclass(frozen=True)
class ScriptedCall:
    """One model call a ``ScriptedChatClient`` answered.

    Attributes:
        messages: The messages the model saw: history, this turn, tool results.
        options: The chat options of the call (instructions, tools, response_format, ...).
        stream: Whether the caller streamed.
    """

    messages: list[Message]
    options: dict[str, Any]
    stream: bool

    def transcript(self) -> list[tuple[str, str]]:
        """``(role, text)`` for each message part; tool calls read ``("tool_call", "name(args)")``.

        The same shape as ``RecordedRequest.transcript()`` of the fake OpenAI server.
        """
        # Agent Framework hands a client its instructions as an option; a real client sends them first.
        instructions = self.options.get("instructions")
        lines: list[tuple[str, str]] = [("system", str(instructions))] if instructions else []
        for message in self.messages:
            text = message.text
            if text or not message.contents:
                lines.append((str(message.role), text))
            for content in message.contents:
                if content.type == "function_call":
                    arguments = content.arguments
                    rendered = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
                    lines.append(("tool_call", f"{content.name}({rendered})"))
                elif content.type == "function_result":
                    lines.append(("tool", str(content.result)))
        return lines


def _last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.text
    return ""


def _usage(messages: Sequence[Message], answer: Sequence[Content]) -> UsageDetails:
    prompt = estimate_tokens([m.text for m in messages])
    completion = estimate_tokens([c.text or c.name or "" for c in answer])
    return UsageDetails(input_token_count=prompt, output_token_count=completion, total_token_count=prompt + completion)


class _InProcessChatClient(
    FunctionInvocationLayer[_Options],
    ChatMiddlewareLayer[_Options],
    ChatTelemetryLayer[_Options],
    BaseChatClient[_Options],
):
    """Turns one ``ChatResponse`` per call into a plain or streamed answer."""

    model: str

    @abstractmethod
    def _answer(self, messages: list[Message], options: Mapping[str, Any], stream: bool) -> _Answer:
        """The response (or failure) for one call, and how long the model takes to give it."""

    def _inner_get_response(
        self,
        *,
        messages: Sequence[Message],
        stream: bool,
        options: Mapping[str, Any],
        **kwargs: Any,
    ) -> Any:
        # The answer is chosen now, at call time, so scripted replies are consumed in call order.
        answer, delay = self._answer(list(messages), options, stream)

        async def respond() -> ChatResponse:
            # Options are checked as the OpenAI clients check them (temperature range and the like).
            await self._validate_options(options)
            if delay:
                await asyncio.sleep(delay)
            if isinstance(answer, Exception):
                raise answer
            return answer

        if not stream:
            return respond()

        async def updates() -> AsyncIterator[ChatResponseUpdate]:
            response = await respond()
            for message in response.messages:
                for content in message.contents:
                    if content.type == "text" and content.text:
                        for piece in text_chunks(content.text):
                            yield ChatResponseUpdate(
                                role="assistant",
                                contents=[Content.from_text(piece)],
                                response_id=response.response_id,
                                model=response.model,
                            )
                    else:
                        yield ChatResponseUpdate(
                            role="assistant",
                            contents=[content],
                            response_id=response.response_id,
                            model=response.model,
                        )
            if response.usage_details:
                yield ChatResponseUpdate(
                    role="assistant",
                    contents=[Content.from_usage(response.usage_details)],
                    finish_reason=response.finish_reason,
                )

        stream_response: ResponseStream[ChatResponseUpdate, ChatResponse] = self._build_response_stream(
            updates(), response_format=options.get("response_format")
        )
        return stream_response


class ScriptedChatClient(_InProcessChatClient):
    """An Agent Framework chat client that answers from a script of ``Reply`` objects, in process.

    Replies are consumed in call order; when the script is empty the responder answers (default:
    ``"echo: <last user message>"``). Every call is recorded in ``calls`` unless ``record_calls`` is
    false (a long-running app or benchmark: each record keeps the messages the model saw, so the
    records grow without bound). ``Reply.tool_call``
    makes the model ask for a tool, which Agent Framework's function loop runs before calling the
    model again; ``Reply.json`` answers a ``response_format`` request; ``Reply.error`` raises
    ``ScriptedModelError`` (a ``ChatClientException``, as the OpenAI clients raise).

    Args:
        *replies: The initial script.
        responder: Answers unscripted calls from the messages the model sees.
        model: The model name reported on responses.
        record_calls: Whether to keep each call in ``calls``.
        **layers: ``middleware`` and ``function_invocation_configuration``, as for the OpenAI clients.
    """

    OTEL_PROVIDER_NAME: ClassVar[str] = "durableagent.scripted"

    def __init__(
        self,
        *replies: Reply,
        responder: MessagesResponder | None = None,
        model: str = "scripted-model",
        record_calls: bool = True,
        **layers: Any,
    ) -> None:
        super().__init__(**layers)
        self.model = model
        self._record_calls = record_calls
        # Agents may call from several threads/loops at once: the script and records share a lock.
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque(replies)
        self._responder: MessagesResponder = responder or self._echo
        self._calls: list[ScriptedCall] = []
        self._answered = 0
        self._call_ids = 0

    @staticmethod
    def _echo(messages: list[Message]) -> Reply:
        return echo_reply(_last_user_text(messages))

    def script(self, *replies: Reply) -> None:
        """Queue more replies."""
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._script)

    def set_responder(self, responder: MessagesResponder | None) -> None:
        """Answer unscripted calls with ``responder(messages)``; ``None`` restores the echo rule."""
        with self._lock:
            self._responder = responder or self._echo

    @property
    def calls(self) -> list[ScriptedCall]:
        """A snapshot of every model call so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        """Forget the recorded calls."""
        with self._lock:
            self._calls.clear()

    def _answer(self, messages: list[Message], options: Mapping[str, Any], stream: bool) -> _Answer:
        with self._lock:
            if self._record_calls:
                self._calls.append(ScriptedCall(messages, dict(options), stream))
            self._answered += 1
            answered = self._answered
            reply = self._script.popleft() if self._script else None
            responder = self._responder
        if reply is None:
            reply = responder(messages)
        if reply.status is not None:
            return ScriptedModelError(reply), reply.delay_seconds
        contents: list[Content] = [Content.from_text(reply.content)] if reply.content is not None else []
        for call in reply.calls:
            contents.append(
                Content.from_function_call(
                    call.call_id or self._next_call_id(), call.name, arguments=dict(call.arguments)
                )
            )
        response = ChatResponse(
            messages=[Message(role="assistant", contents=contents)],
            response_id=f"scripted-{answered}",
            model=self.model,
            finish_reason="tool_calls" if reply.calls else "stop",
            usage_details=_usage(messages, contents),
            response_format=options.get("response_format"),
        )
        return response, reply.delay_seconds

    def _next_call_id(self) -> str:
        # Deterministic ids make transcripts comparable across runs.
        with self._lock:
            self._call_ids += 1
            return f"call_{self._call_ids}"


class OfflineChatClient(_InProcessChatClient):
    """A deterministic model for running an app with no credentials; it says it is offline.

    Answers ``"[offline model] You said: <last user message>"`` at once, with no network, and logs
    a warning the first time it answers. With a ``response_format`` it answers a JSON value of
    the requested shape (strings carry the same offline text), so structured runs work too.

    Args:
        model: The model name reported on responses.
        **layers: ``middleware`` and ``function_invocation_configuration``, as for the OpenAI clients.
    """

    OTEL_PROVIDER_NAME: ClassVar[str] = "durableagent.offline"
    PREFIX: ClassVar[str] = "[offline model] "

    def __init__(self, *, model: str = "offline", **layers: Any) -> None:
        super().__init__(**layers)
        self.model = model
        self._announce = threading.Lock()
        self._announced = False

    def reply_for(self, message: str) -> str:
        """The text this client answers to a last user message of ``message``."""
        return f"{self.PREFIX}You said: {message}"

    def _answer(self, messages: list[Message], options: Mapping[str, Any], stream: bool) -> _Answer:
        with self._announce:
            first, self._announced = not self._announced, True
        if first:
            _log.warning(
                "No model credentials are set (AZURE_OPENAI_ENDPOINT or OPENAI_API_KEY): "
                "agents answer with the offline model."
            )
        text = self.reply_for(_last_user_text(messages))
        response_format = options.get("response_format")
        if response_format is not None:
            text = json.dumps(_sample(_schema_of(response_format), text))
        contents = [Content.from_text(text)]
        response = ChatResponse(
            messages=[Message(role="assistant", contents=contents)],
            model=self.model,
            finish_reason="stop",
            usage_details=_usage(messages, contents),
            response_format=response_format,
        )
        return response, 0.0


def _schema_of(response_format: Any) -> Mapping[str, Any]:
    """The JSON schema of a ``response_format``: a pydantic model, a raw schema, or OpenAI's envelope."""
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        schema: Mapping[str, Any] = response_format.model_json_schema()
        return schema
    if isinstance(response_format, Mapping):
        envelope = response_format.get("json_schema")
        if isinstance(envelope, Mapping) and isinstance(envelope.get("schema"), Mapping):
            inner: Mapping[str, Any] = envelope["schema"]
            return inner
        return response_format
    return {}


def _sample(schema: Mapping[str, Any], text: str, root: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A small value valid for ``schema`` (required properties only), strings set to ``text``."""
    root = schema if root is None else root
    if depth > 16:  # a recursive schema: stop rather than expand forever
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        return _sample(target, text, root, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _sample(options[0], text, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = schema.get("required", list(properties))
        return {name: _sample(properties.get(name, {}), text, root, depth + 1) for name in required}
    defaults: dict[str, Any] = {"array": [], "integer": 0, "number": 0, "boolean": False, "null": None}
    return defaults.get(str(kind), text)
