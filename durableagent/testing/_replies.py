"""Scripted model replies: one value type shared by the in-process client and the fake OpenAI server."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ReplyKind = Literal["text", "tool_calls", "error"]

# OpenAI's error "type" per status, so scripted failures read like the real service's.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}

_WIRE_KEYS = frozenset({"text", "json", "tool_calls", "error", "body", "headers", "retry_after", "delay_seconds"})


@dataclass(frozen=True)
class ToolCall:
    """One function call the scripted model asks for.

    Attributes:
        name: The tool's name, as the agent registered it.
        arguments: The JSON arguments.
        call_id: The call's id; generated when ``None``.
    """

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    call_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One scripted model answer. Build it with ``text``, ``json``, ``tool_call(s)`` or ``error``.

    Attributes:
        content: The assistant's text (a JSON document for ``Reply.json``), or ``None``.
        calls: The tool calls the model asks for, in order.
        status: The HTTP status of a scripted failure, else ``None``.
        error_body: The JSON body of a scripted failure (``None``: an OpenAI-shaped default).
        headers: Extra HTTP headers of a scripted failure (``Retry-After`` and the like).
        delay_seconds: How long the model "thinks" before answering.
    """

    content: str | None = None
    calls: tuple[ToolCall, ...] = ()
    status: int | None = None
    error_body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.delay_seconds < 0 or not math.isfinite(self.delay_seconds):
            raise ValueError(f"delay_seconds must be a finite number >= 0, not {self.delay_seconds!r}")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"an error reply needs a 4xx or 5xx status, not {self.status}")

    # Builders ------------------------------------------------------------------------------------

    @classmethod
    def text(cls, text: str, *, delay_seconds: float = 0.0) -> Reply:
        """The model answers with ``text``."""
        return cls(content=text, delay_seconds=delay_seconds)

    @classmethod
    def json(cls, value: Any, *, delay_seconds: float = 0.0) -> Reply:
        """The model answers with ``value`` as JSON text (for structured output / ``response_format``)."""
        return cls(content=json.dumps(value), delay_seconds=delay_seconds)

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        call_id: str | None = None,
        text: str | None = None,
        delay_seconds: float = 0.0,
    ) -> Reply:
        """The model asks for one tool call (optionally with some text alongside)."""
        return cls.tool_calls(ToolCall(name, dict(arguments or {}), call_id), text=text, delay_seconds=delay_seconds)

    @classmethod
    def tool_calls(cls, *calls: ToolCall, text: str | None = None, delay_seconds: float = 0.0) -> Reply:
        """The model asks for several tool calls at once (parallel tool calls)."""
        if not calls:
            raise ValueError("tool_calls needs at least one ToolCall")
        return cls(content=text, calls=tuple(calls), delay_seconds=delay_seconds)

    @classmethod
    def error(
        cls,
        status: int,
        body: Any = None,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
        delay_seconds: float = 0.0,
    ) -> Reply:
        """The model endpoint fails with HTTP ``status``.

        Args:
            status: A 4xx or 5xx status (500, 429, 400 ...).
            body: The JSON error body; default: OpenAI's ``{"error": {...}}`` shape.
            retry_after: Seconds to send as ``Retry-After`` (and ``retry-after-ms``, which the
                ``openai`` client prefers, so a fraction of a second keeps retrying tests fast).
            headers: Any other response headers (for example ``x-should-retry``).
            delay_seconds: How long to wait before failing.
        """
        all_headers = dict(headers or {})
        if retry_after is not None:
            all_headers["Retry-After"] = str(math.ceil(retry_after))
            all_headers["retry-after-ms"] = str(round(retry_after * 1000))
        return cls(status=status, error_body=body, headers=all_headers, delay_seconds=delay_seconds)

    # Reading -------------------------------------------------------------------------------------

    @property
    def kind(self) -> ReplyKind:
        """``"error"``, ``"tool_calls"`` or ``"text"``."""
        if self.status is not None:
            return "error"
        return "tool_calls" if self.calls else "text"

    def error_json(self) -> Any:
        """The body a scripted failure is answered with."""
        if self.error_body is not None:
            return self.error_body
        status = self.status or 500
        return {
            "error": {
                "message": f"Scripted failure: HTTP {status}.",
                "type": _ERROR_TYPES.get(status, "server_error"),
                "param": None,
                "code": "rate_limit_exceeded" if status == 429 else None,
            }
        }

    # Wire form (POST /_script, --script-file) -----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``from_dict`` and the fake server's ``POST /_script`` read."""
        data: dict[str, Any] = {}
        if self.content is not None:
            data["text"] = self.content
        if self.calls:
            data["tool_calls"] = [
                {
                    "name": c.name,
                    "arguments": dict(c.arguments),
                    **({"call_id": c.call_id} if c.call_id else {}),
                }
                for c in self.calls
            ]
        if self.status is not None:
            data["error"] = self.status
            if self.error_body is not None:
                data["body"] = self.error_body
            if self.headers:
                data["headers"] = dict(self.headers)
        if self.delay_seconds:
            data["delay_seconds"] = self.delay_seconds
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        """Read one reply from its JSON form.

        The forms: ``{"text": ...}``, ``{"json": ...}``, ``{"tool_calls": [{"name", "arguments"}]}`` (with
        an optional ``"text"``), or ``{"error": 429, "body"?, "headers"?, "retry_after"?}``; each may carry
        ``"delay_seconds"``.

        Raises:
            ValueError: The mapping is not a reply (unknown keys, wrong types, nothing to say).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a reply is a JSON object, not {type(data).__name__}")
        unknown = set(data) - _WIRE_KEYS
        if unknown:
            raise ValueError(f"unknown reply keys: {sorted(unknown)}")
        delay = _number(data.get("delay_seconds", 0.0), "delay_seconds")
        if "error" in data:
            status = data["error"]
            if not isinstance(status, int) or isinstance(status, bool):
                raise ValueError("'error' is an HTTP status code")
            retry_after = data.get("retry_after")
            headers = data.get("headers") or {}
            if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
                raise ValueError("'headers' maps header names to strings")
            return cls.error(
                status,
                data.get("body"),
                retry_after=None if retry_after is None else _number(retry_after, "retry_after"),
                headers=headers,
                delay_seconds=delay,
            )
        if "json" in data:
            return cls.json(data["json"], delay_seconds=delay)
        text = data.get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError("'text' is a string")
        calls = tuple(_tool_call(item) for item in _sequence(data.get("tool_calls", []), "tool_calls"))
        if text is None and not calls:
            raise ValueError("a reply needs 'text', 'json', 'tool_calls' or 'error'")
        return cls(content=text, calls=calls, delay_seconds=delay)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{name}' is a number")
    return float(value)


def _sequence(value: Any, name: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise ValueError(f"'{name}' is a list")
    return value


def _tool_call(item: Any) -> ToolCall:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ValueError("each tool call is an object with a 'name'")
    arguments = item.get("arguments") or {}
    if not isinstance(arguments, Mapping):
        raise ValueError("tool call 'arguments' is an object")
    call_id = item.get("call_id")
    return ToolCall(item["name"], dict(arguments), call_id if isinstance(call_id, str) else None)


def echo_reply(last_user_text: str) -> Reply:
    """The default rule when nothing is scripted: ``"echo: <last user message>"``."""
    return Reply.text(f"echo: {last_user_text}")
