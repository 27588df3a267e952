"""Scripted model replies, shared by the in-process client and the fake OpenAI server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asks for."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One scripted model answer: text, tool calls, a JSON value, or an HTTP error."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    error_status: int | None = None
    error_body: dict[str, Any] | None = None
    delay_seconds: float = 0.0

    @classmethod
    def of_text(cls, text: str, delay_seconds: float = 0.0) -> Reply:
        return cls(text=text, delay_seconds=delay_seconds)

    @classmethod
    def tool_call(cls, name: str, arguments: dict[str, Any] | None = None, *more: ToolCall) -> Reply:
        return cls(tool_calls=(ToolCall(name, arguments or {}), *more))

    @classmethod
    def json(cls, value: Any) -> Reply:
        return cls(text=json.dumps(value))

    @classmethod
    def error(cls, status: int, body: dict[str, Any] | None = None) -> Reply:
        return cls(error_status=status, error_body=body)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.text is not None:
            data["text"] = self.text
        if self.tool_calls:
            data["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in self.tool_calls]
        if self.error_status is not None:
            data["error"] = self.error_status
            if self.error_body is not None:
                data["body"] = self.error_body
        if self.delay_seconds:
            data["delay"] = self.delay_seconds
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        if "json" in data:
            return cls(text=json.dumps(data["json"]), delay_seconds=float(data.get("delay", 0)))
        calls = tuple(ToolCall(c["name"], dict(c.get("arguments") or {})) for c in data.get("tool_calls", []))
        return cls(
            text=data.get("text"),
            tool_calls=calls,
            error_status=data.get("error"),
            error_body=data.get("body"),
            delay_seconds=float(data.get("delay", 0)),
        )


def echo(text: str) -> Reply:
    """The default answer when nothing is scripted."""
    return Reply(text=f"echo: {text}")
