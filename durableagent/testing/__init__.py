"""Test kit: scripted and offline chat clients, and a local OpenAI-compatible server.

- ``ScriptedChatClient``: an Agent Framework chat client answering from a script, in process.
- ``OfflineChatClient``: the deterministic model an app uses when no credentials are set.
- ``FakeOpenAIServer``: a local HTTP server the real ``openai`` client talks to (Chat Completions
  and Responses APIs, on OpenAI's routes and Azure OpenAI's); ``RemoteFakeOpenAIServer`` programs one
  running in another process.
- ``Reply`` / ``ToolCall``: the script both understand.
"""

from ._chat_clients import OfflineChatClient, ScriptedCall, ScriptedChatClient, ScriptedModelError
from ._openai_server import FakeOpenAIServer, RecordedRequest, RemoteFakeOpenAIServer
from ._replies import Reply, ToolCall

__all__ = [
    "FakeOpenAIServer",
    "OfflineChatClient",
    "RecordedRequest",
    "RemoteFakeOpenAIServer",
    "Reply",
    "ScriptedCall",
    "ScriptedChatClient",
    "ScriptedModelError",
    "ToolCall",
]
