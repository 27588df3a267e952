"""The indexed shape of a function app: one record per function, read off ``app.get_functions()``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Binding type strings as the azure.functions decorators write them.
HTTP_TRIGGER = "httpTrigger"
QUEUE_TRIGGER = "queueTrigger"
TIMER_TRIGGER = "timerTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"
BLOB_TRIGGER = "blobTrigger"
DURABLE_CLIENT = "durableClient"
HTTP_OUTPUT = "http"
QUEUE_OUTPUT = "queue"
# The blob binding reads (direction IN) and writes (OUT) under the one type.
BLOB = "blob"

DURABLE_TRIGGERS = frozenset({ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER, ENTITY_TRIGGER})


@dataclass(frozen=True)
class IndexedFunction:
    """One function of the app, as the host sees it after indexing.

    Attributes:
        name: The function name (``@app.function_name`` or the Python name).
        trigger: The trigger binding, as the JSON dict ``get_raw_bindings()`` gives.
        bindings: Every binding of the function, trigger included.
        user_function: What ``Function.get_user_function()`` returns: the callable the worker invokes.
    """

    name: str
    trigger: dict[str, Any]
    bindings: tuple[dict[str, Any], ...]
    user_function: Callable[..., Any] = field(compare=False)

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def durable_name(self) -> str:
        """The name the Durable extension knows this function by (case-insensitive)."""
        for key in ("orchestration", "activity", "entityName"):
            value = self.trigger.get(key)
            if value:
                return str(value)
        return self.name
