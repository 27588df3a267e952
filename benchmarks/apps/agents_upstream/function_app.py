"""The upstream side of ``benchmarks/agents_bench.py``: ``agent-framework-azurefunctions`` as shipped.

Same agent as ``agents_ours``, on a zero-latency model written here, since an upstream app does not
import ``durableagent``. ``EchoChatClient`` matches ``durableagent.testing.ScriptedChatClient`` with
nothing scripted: the same client layers (function invocation, chat middleware, telemetry, like the
OpenAI clients), ``"echo: <last user message>"`` at once, word-sized stream updates, estimated
usage. It also stamps ``created_at`` as the OpenAI clients do: upstream logs a warning with a stack
trace on every turn whose response has none, which would bill upstream for logging.

The app keeps upstream's defaults (30 polls, 1 s apart) apart from the auth level: the benchmark
sends no keys.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar

import azure.functions as func
from agent_framework import (
    Agent,
    BaseChatClient,
    ChatMiddlewareLayer,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    FunctionInvocationLayer,
    Message,
    ResponseStream,
    UsageDetails,
)
from agent_framework.observability import ChatTelemetryLayer
from agent_framework_azurefunctions import AgentFunctionApp


def _tokens(texts: Sequence[str]) -> int:
    return max(1, (len("".join(texts)) + 3) // 4)


class EchoChatClient(
    FunctionInvocationLayer[Any], ChatMiddlewareLayer[Any], ChatTelemetryLayer[Any], BaseChatClient[Any]
):
    """Answers ``"echo: <last user message>"`` with no delay, streaming or not."""

    OTEL_PROVIDER_NAME: ClassVar[str] = "bench.echo"

    def __init__(self) -> None:
        super().__init__()
        self.model = "echo-model"
        self.calls = 0

    def _inner_get_response(
        self, *, messages: Sequence[Message], stream: bool, options: Mapping[str, Any], **kwargs: Any
    ) -> Any:
        self.calls += 1
        last = next((m.text for m in reversed(messages) if m.role == "user"), "")
        text = f"echo: {last}"
        created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        prompt, completion = _tokens([m.text for m in messages]), _tokens([text])
        response = ChatResponse(
            messages=[Message(role="assistant", contents=[Content.from_text(text)])],
            response_id=f"echo-{self.calls}",
            model=self.model,
            created_at=created_at,
            finish_reason="stop",
            usage_details=UsageDetails(
                input_token_count=prompt, output_token_count=completion, total_token_count=prompt + completion
            ),
        )

        async def respond() -> ChatResponse:
            return response

        if not stream:
            return respond()

        async def updates() -> AsyncIterator[ChatResponseUpdate]:
            for piece in re.findall(r"\s*\S+\s*|\s+", text) or [text]:
                yield ChatResponseUpdate(
                    role="assistant", contents=[Content.from_text(piece)], response_id=response.response_id,
                    model=self.model, created_at=created_at,
                )  # fmt: skip
            yield ChatResponseUpdate(
                role="assistant",
                contents=[Content.from_usage(response.usage_details)],
                finish_reason="stop",
                created_at=created_at,
            )

        stream_response: ResponseStream[ChatResponseUpdate, ChatResponse] = self._build_response_stream(
            updates(), response_format=options.get("response_format")
        )
        return stream_response


bench = Agent(client=EchoChatClient(), name="bench", instructions="You repeat what you are told.")

app = AgentFunctionApp(agents=[bench], http_auth_level=func.AuthLevel.ANONYMOUS)
