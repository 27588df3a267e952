"""durableagent: Microsoft Agent Framework agents and workflows, durable on Azure Functions.

The public names load on first use (PEP 562), so importing ``durableagent.devhost`` — the local host,
which runs any app in that app's own venv — does not pull in Agent Framework, openai or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # What type checkers and IDEs see; at run time the same names come from _resolve below.
    from ._app import AgentFunctionApp
    from ._background import AgentSchedule
    from ._callbacks import AgentCallbackContext, AgentResponseCallbackProtocol
    from ._errors import AgentRegistrationError, DurableAgentError
    from ._models import chat_client_from_settings
    from ._orchestration import DurableAgent, DurableAgentResponse
    from ._requests import RequestLimits
    from ._session_id import AgentSessionId
    from ._state import AgentState, StateLimits
    from ._workflow_orchestrator import WorkflowRunError
    from ._workflow_store import BlobCheckpointStorage, CheckpointEntry

__all__ = [
    "AgentCallbackContext",
    "AgentFunctionApp",
    "AgentRegistrationError",
    "AgentResponseCallbackProtocol",
    "AgentSchedule",
    "AgentSessionId",
    "AgentState",
    "BlobCheckpointStorage",
    "CheckpointEntry",
    "DurableAgent",
    "DurableAgentError",
    "DurableAgentResponse",
    "RequestLimits",
    "StateLimits",
    "WorkflowRunError",
    "chat_client_from_settings",
]

# Public name -> the private module defining it (kept in step with the TYPE_CHECKING imports by a test).
_MODULES: dict[str, str] = {
    "AgentCallbackContext": "._callbacks",
    "AgentFunctionApp": "._app",
    "AgentRegistrationError": "._errors",
    "AgentResponseCallbackProtocol": "._callbacks",
    "AgentSchedule": "._background",
    "AgentSessionId": "._session_id",
    "AgentState": "._state",
    "BlobCheckpointStorage": "._workflow_store",
    "CheckpointEntry": "._workflow_store",
    "DurableAgent": "._orchestration",
    "DurableAgentError": "._errors",
    "DurableAgentResponse": "._orchestration",
    "RequestLimits": "._requests",
    "StateLimits": "._state",
    "WorkflowRunError": "._workflow_orchestrator",
    "chat_client_from_settings": "._models",
}


def _resolve(name: str) -> object:
    """Import the module defining ``name`` and cache the value here, so later lookups are plain."""
    module = _MODULES.get(name)
    if module is None:
        # AttributeError (not ImportError) lets ``from durableagent import _submodule`` fall back to
        # importing the submodule, and keeps hasattr() working.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if not TYPE_CHECKING:
    # Hidden from type checkers: a visible module __getattr__ would make every misspelt name type-check.
    __getattr__ = _resolve
