"""The conversation as the product description shows it, built from transcript records when it is read.

A turn record holds Agent Framework's own ``AgentResponse.to_dict()``; the documented fields of
``agent_response`` (``text``, ``kind``, ``tool_calls``, ``usage``) are derived from it here, on read,
so no second copy of the response is ever stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

# What an assistant entry of the history is: the agent's answer to a message (the only kind a turn has).
AGENT_MESSAGE = "agent_message"


def history_entries(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The user entry and the assistant entry of one turn record.

    Each carries its own time: the user's when the message arrived (``receivedAt``), the assistant's
    when the answer was complete (``createdAt``). Records written before ``receivedAt`` existed give
    both entries ``createdAt``.
    """
    request = record.get("request") or {}
    answered_at = record.get("createdAt")
    correlation_id = record.get("correlationId")
    user = {
        "role": request.get("role", "user"),
        "content": request.get("message"),
        "timestamp": record.get("receivedAt") or answered_at,
        "correlationId": correlation_id,
    }
    assistant = {
        "role": "assistant",
        "content": record.get("text"),
        "timestamp": answered_at,
        "correlationId": correlation_id,
        "agent_response": agent_response_view(record),
    }
    return [user, assistant]


def agent_response_view(record: dict[str, Any]) -> dict[str, Any]:
    """``agent_response`` of a turn: Agent Framework's response fields plus the documented ones.

    ``text``, ``kind``, ``tool_calls`` (each call with its ``call_id``, ``name``, ``arguments`` and the
    tool's ``result``) and ``usage {prompt_tokens, completion_tokens, total_tokens}``; the framework's own
    fields (``messages``, ``response_id``, ``usage_details``, ...) stay beside them.
    """
    response = record.get("response") or {}
    view: dict[str, Any] = dict(response) if isinstance(response, dict) else {}
    messages = view.get("messages") or []
    text = record.get("text")
    if text is None:
        text = "".join(
            str(c.get("text") or "")
            for m in messages
            if isinstance(m, dict) and m.get("role") == "assistant"
            for c in m.get("contents") or []
            if isinstance(c, dict) and c.get("type") == "text"
        )
    view["text"] = text
    view["kind"] = AGENT_MESSAGE
    view["tool_calls"] = tool_calls(messages)
    view["usage"] = usage(view.get("usage_details"))
    if record.get("value") is not None:
        view["value"] = record["value"]  # the parsed structured output of a run with a response_schema
    return view


def tool_calls(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """The tool calls the agent made in a turn, in order, each with its result when there is one."""
    calls: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    for message in messages:
        if not isinstance(message, dict):
            continue
        for content in message.get("contents") or []:
            if not isinstance(content, dict):
                continue
            if content.get("type") == "function_call":
                calls.append(
                    {
                        "call_id": content.get("call_id"),
                        "name": content.get("name"),
                        "arguments": _arguments(content.get("arguments")),
                    }
                )
            elif content.get("type") == "function_result":
                results[str(content.get("call_id"))] = content.get("result")
    for call in calls:
        call["result"] = results.get(str(call["call_id"]))
    return calls


def usage(details: Any) -> dict[str, int | None]:
    """Agent Framework's ``usage_details`` as ``{prompt_tokens, completion_tokens, total_tokens}``.

    A count the model did not report is ``None``.
    """
    details = details if isinstance(details, dict) else {}
    prompt = _int(details.get("input_token_count"))
    completion = _int(details.get("output_token_count"))
    total = _int(details.get("total_token_count"))
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _arguments(arguments: Any) -> Any:
    """A call's arguments as an object when the model sent a JSON object (as text or parsed), else as sent."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return arguments
        return parsed if isinstance(parsed, dict) else arguments
    return arguments


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def conversation(
    records: Sequence[dict[str, Any]],
    *,
    message_count: int,
    last_response: str | None,
    agent_type: str,
) -> dict[str, Any]:
    """The documented state shape: ``{message_count, conversation_history, last_response, agent_type}``."""
    history: list[dict[str, Any]] = []
    for record in records:
        history.extend(history_entries(record))
    return {
        "message_count": message_count,
        "conversation_history": history,
        "last_response": last_response,
        "agent_type": agent_type,
    }
