"""durableagent: Microsoft Agent Framework agents and workflows, durable on Azure Functions."""

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
