"""Test kit: scripted and offline chat clients, and a local OpenAI-compatible server."""

from ._chat_clients import OfflineChatClient, ScriptedChatClient, ScriptedModelError
from ._openai_server import FakeOpenAIServer
from ._replies import Reply, ToolCall

__all__ = ["FakeOpenAIServer", "OfflineChatClient", "Reply", "ScriptedChatClient", "ScriptedModelError", "ToolCall"]
