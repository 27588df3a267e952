"""The OpenAI wire shapes the fake server speaks: request checks, response bodies, stream events.

Pure functions over JSON values (no I/O), so the shapes can be read in one place and checked
against what the ``openai`` SDK's types in ``openai/types/chat`` and ``openai/types/responses`` expect.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ._replies import Reply

JSON = dict[str, Any]

_CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class WireError(Exception):
    """A request the real service would refuse: answered with OpenAI's error shape."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: JSON = {
            "error": {
                "message": message,
                "type": "invalid_request_error" if status < 500 else "server_error",
                "param": param,
                "code": code,
            }
        }


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``chatcmpl-…``, ``resp_…``, ``call_…``)."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def text_chunks(text: str) -> list[str]:
    """Word-sized pieces that join back to ``text`` exactly (stream deltas)."""
    return re.findall(r"\s*\S+\s*|\s+", text) or [text]


def estimate_tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: about four characters per token."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return max(1, (len(text) + 3) // 4)


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string or a list of text parts (either API)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def transcript(items: Sequence[Any]) -> list[tuple[str, str]]:
    """``(role, text)`` pairs for chat messages or Responses items, in order.

    Tool calls read ``("tool_call", 'name({"arg": 1})')`` and tool results ``("tool", output)``,
    so one assertion works for both APIs.
    """
    lines: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type", "message")
        if kind == "function_call":
            lines.append(("tool_call", f"{item.get('name')}({item.get('arguments', '')})"))
        elif kind == "function_call_output":
            lines.append(("tool", content_text(item.get("output"))))
        elif kind == "message":
            role = str(item.get("role", ""))
            text = content_text(item.get("content"))
            if role != "assistant" or text or not item.get("tool_calls"):
                lines.append(("tool" if role == "tool" else role, text))
            for call in item.get("tool_calls") or []:
                function = call.get("function") or {}
                lines.append(("tool_call", f"{function.get('name')}({function.get('arguments', '')})"))
    return lines


def last_user_text(body: Mapping[str, Any]) -> str:
    """The last user message of a chat-completions or Responses request body."""
    items = body.get("messages", body.get("input"))
    if isinstance(items, str):
        return items
    for role, text in reversed(transcript(items if isinstance(items, list) else [])):
        if role == "user":
            return text
    return ""


def _require(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if value is None:
        raise WireError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    if not isinstance(value, kind):
        raise WireError(400, f"Invalid type for '{name}'.", param=name, code="invalid_type")
    return value


# Chat completions ---------------------------------------------------------------------------------


def check_chat_request(body: Any) -> list[JSON]:
    """The messages of a valid chat-completions body.

    Raises:
        WireError: What the service answers 400 for: missing model or messages, an unknown role,
            or tool messages that do not answer the assistant's ``tool_calls`` one for one.
    """
    if not isinstance(body, dict):
        raise WireError(400, "The request body must be a JSON object.")
    _require(body, "model", str)
    messages: list[Any] = _require(body, "messages", list)
    if not messages:
        raise WireError(400, "'messages' must contain at least one message.", param="messages")
    pending: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _CHAT_ROLES:
            raise WireError(400, f"Invalid value for 'messages[{index}].role': {role!r}.", param=f"messages[{index}]")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                raise WireError(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceding message "
                    "with 'tool_calls'.",
                    param=f"messages.[{index}].role",
                )
            pending.remove(call_id)
            continue
        _require_answered(pending, index)
        if role == "assistant":
            pending = [str(call.get("id")) for call in message.get("tool_calls") or []]
    _require_answered(pending, len(messages))
    return messages


def _require_answered(pending: list[str], index: int) -> None:
    if pending:
        raise WireError(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: "
            f"{', '.join(pending)}",
            param=f"messages.[{index}].role",
        )


def chat_tool_calls(reply: Reply) -> list[JSON]:
    """The ``tool_calls`` of the assistant message for a scripted reply."""
    return [
        {
            "id": call.call_id or new_id("call_"),
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
        }
        for call in reply.calls
    ]


def chat_usage(messages: Sequence[Any], reply: Reply) -> JSON:
    """A ``CompletionUsage`` with deterministic counts."""
    prompt = estimate_tokens(messages)
    completion = estimate_tokens([reply.content or "", [c.name for c in reply.calls]])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(model: str, reply: Reply, tool_calls: list[JSON], usage: JSON) -> JSON:
    """A non-streamed ``ChatCompletion``."""
    message: JSON = {"role": "assistant", "content": reply.content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": usage,
    }


def chat_chunks(
    model: str, reply: Reply, tool_calls: list[JSON], usage: JSON, *, include_usage: bool
) -> Iterator[JSON]:
    """The ``ChatCompletionChunk`` stream for a reply: role, text deltas, tool-call deltas, finish, usage."""
    base: JSON = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: JSON, finish_reason: str | None = None) -> JSON:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in text_chunks(reply.content) if reply.content else []:
        yield chunk({"content": piece})
    for index, call in enumerate(tool_calls):
        # Like the service: id and name come once, then the arguments arrive in pieces.
        function = call["function"]
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": function["name"], "arguments": ""},
                    }
                ]
            }
        )
        for piece in _halves(function["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if tool_calls else "stop")
    if include_usage:
        yield {**base, "choices": [], "usage": usage}


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part]


# Responses API ------------------------------------------------------------------------------------


def input_items(body: Mapping[str, Any]) -> list[JSON]:
    """The ``input`` of a Responses request as a list of items (a string is one user message)."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise WireError(400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    items: list[JSON] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise WireError(400, f"Invalid type for 'input[{index}]'.", param=f"input[{index}]")
        items.append(item if "type" in item else {"type": "message", **item})
    return items


def check_responses_context(history: Sequence[JSON], new_items: Sequence[JSON]) -> None:
    """Refuse what the service refuses when continuing a conversation.

    Raises:
        WireError: An input item repeats an id the server already holds, a function output answers
            no known call, or a function call is left without an output.
    """
    held_ids = {item["id"] for item in history if isinstance(item.get("id"), str)}
    for item in new_items:
        if item.get("id") in held_ids:
            raise WireError(
                400,
                f"Duplicate item found with id {item['id']}. Remove duplicate items from your input and try again.",
                param="input",
            )
    open_calls: list[str] = []
    for item in [*history, *new_items]:
        if item.get("type") == "function_call":
            open_calls.append(str(item.get("call_id")))
        elif item.get("type") == "function_call_output":
            call_id = str(item.get("call_id"))
            if call_id not in open_calls:
                raise WireError(
                    400, f"No tool call found for function call output with call_id {call_id}.", param="input"
                )
            open_calls.remove(call_id)
    if open_calls:
        raise WireError(400, f"No tool output found for function call {open_calls[0]}.", param="input")


def response_output(reply: Reply) -> list[JSON]:
    """The ``output`` items for a reply: a message and/or function calls, all completed."""
    output: list[JSON] = []
    if reply.content is not None:
        output.append(
            {
                "type": "message",
                "id": new_id("msg_"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.content, "annotations": [], "logprobs": []}],
            }
        )
    for call in reply.calls:
        output.append(
            {
                "type": "function_call",
                "id": new_id("fc_"),
                "call_id": call.call_id or new_id("call_"),
                "name": call.name,
                "arguments": json.dumps(dict(call.arguments)),
                "status": "completed",
            }
        )
    return output


def response_object(body: Mapping[str, Any], response_id: str, output: list[JSON], context: Sequence[Any]) -> JSON:
    """A completed ``Response`` for a request body."""
    input_tokens = estimate_tokens(list(context))
    output_tokens = estimate_tokens(output)
    now = int(time.time())
    return {
        "id": response_id,
        "object": "response",
        "created_at": now,
        "completed_at": now,
        "status": "completed",
        "background": bool(body.get("background", False)),
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "user": None,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def response_events(response: JSON) -> Iterator[JSON]:
    """The server-sent events of a streamed Responses call, ``response.created`` to ``response.completed``."""
    sequence = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> JSON:
        return {"type": kind, "sequence_number": next(sequence), **fields}

    in_progress = {**response, "status": "in_progress", "completed_at": None, "output": [], "usage": None}
    yield event("response.created", response=in_progress)
    yield event("response.in_progress", response=in_progress)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            yield from _message_events(event, index, item)
        else:
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            for piece in _halves(item["arguments"]):
                yield event(
                    "response.function_call_arguments.delta",
                    output_index=index,
                    item_id=item["id"],
                    delta=piece,
                )
            yield event(
                "response.function_call_arguments.done",
                output_index=index,
                item_id=item["id"],
                name=item["name"],
                arguments=item["arguments"],
            )
            yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=response)


def _message_events(event: Any, index: int, item: JSON) -> Iterator[JSON]:
    text = item["content"][0]["text"]
    empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"output_index": index, "item_id": item["id"], "content_index": 0}
    yield event(
        "response.output_item.added",
        output_index=index,
        item={**item, "status": "in_progress", "content": []},
    )
    yield event("response.content_part.added", part=empty_part, **where)
    for piece in text_chunks(text):
        yield event("response.output_text.delta", delta=piece, logprobs=[], **where)
    yield event("response.output_text.done", text=text, logprobs=[], **where)
    yield event("response.content_part.done", part=item["content"][0], **where)
    yield event("response.output_item.done", output_index=index, item=item)
