"""What the queue, timer and blob listeners hand to the invoker, and the app-setting references they share."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._functions import IndexedFunction

__all__ = ["InvokeTrigger", "TriggerInput", "resolve_setting_references"]


@dataclass(frozen=True)
class TriggerInput:
    """One trigger firing, in the shape the worker's binding converters expect.

    Attributes:
        data: The trigger payload: a queue message body (bytes, already base64-decoded when
            ``messageEncoding`` is ``base64``) or the timer JSON string.
        data_type: The ``Datum`` type the invoker should wrap ``data`` in.
        metadata: Trigger metadata as plain Python values (``Id``, ``DequeueCount``, ``InsertionTime``, ...)
            or ready ``Datum`` objects. The invoker turns each into a ``Datum`` for the trigger converter.
        reason: The "Executing ... (Reason='...')" text; ``None`` lets the invoker word it from the trigger.
    """

    data: str | bytes
    data_type: Literal["bytes", "string", "json"]
    metadata: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


InvokeTrigger = Callable[[IndexedFunction, TriggerInput], Awaitable[None]]
"""Runs one function for one trigger firing; raises when the function fails."""

# The Functions host resolves `%Name%` tokens anywhere in a binding property ("ResolveWholeString").
_SETTING_REFERENCE = re.compile(r"%([^%]+)%")


def resolve_setting_references(
    value: str, *, function_name: str, what: str, env: Mapping[str, str] | None = None
) -> str:
    """Replace each ``%SETTING%`` in a binding property with the app setting's value.

    Args:
        value: The property as written on the binding, e.g. ``"%QUEUE_NAME%"`` or ``"0 */%MINUTES% * * * *"``.
        function_name: Named in the error, so the user knows which function to fix.
        what: The property's name, for the error (``"queueName"``, ``"schedule"``).
        env: App settings; defaults to the process environment (where ``local.settings.json`` lands).

    Raises:
        ValueError: A referenced setting is not defined.
    """
    settings = os.environ if env is None else env

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = settings.get(name)
        if resolved is None:
            raise ValueError(
                f"Function '{function_name}': {what} {value!r} refers to app setting '{name}', which is not set"
            )
        return resolved

    return _SETTING_REFERENCE.sub(substitute, value)
