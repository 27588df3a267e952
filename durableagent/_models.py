"""The chat client an app's agents use, chosen from app settings."""

from __future__ import annotations

import os
from typing import Any

from ._logs import get_logger

_log = get_logger("durableagent.models")

_AZURE_DEPLOYMENT_SETTINGS = (
    "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME",
    "AZURE_OPENAI_DEPLOYMENT_NAME",
    "AZURE_OPENAI_CHAT_MODEL",
    "AZURE_OPENAI_MODEL",
)


def _setting(name: str) -> str:
    return (os.environ.get(name) or "").strip()


def chat_client_from_settings() -> Any:
    """A chat client for the settings present, most specific first.

    - ``AZURE_OPENAI_ENDPOINT`` (+ a deployment setting): Azure OpenAI, with ``AZURE_OPENAI_API_KEY``
      if set, else Microsoft Entra ID (the managed identity named by ``AZURE_CLIENT_ID``, or
      ``DefaultAzureCredential``).
    - ``OPENAI_API_KEY``: OpenAI (the client's own ``OPENAI_BASE_URL`` and ``OPENAI_MODEL`` apply).
    - Neither: an offline, deterministic model that says it is offline.
    """
    endpoint = _setting("AZURE_OPENAI_ENDPOINT")
    if endpoint:
        from agent_framework.openai import OpenAIChatCompletionClient

        deployment = next((_setting(n) for n in _AZURE_DEPLOYMENT_SETTINGS if _setting(n)), "")
        if not deployment:
            raise RuntimeError(
                "AZURE_OPENAI_ENDPOINT is set but no deployment is: set AZURE_OPENAI_CHAT_DEPLOYMENT_NAME"
            )
        api_key = _setting("AZURE_OPENAI_API_KEY")
        if api_key:
            _log.info("Agents use Azure OpenAI deployment %s (API key)", deployment)
            return OpenAIChatCompletionClient(model=deployment, azure_endpoint=endpoint, api_key=api_key)
        from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

        client_id = _setting("AZURE_CLIENT_ID")
        credential: Any = ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()
        _log.info("Agents use Azure OpenAI deployment %s (Microsoft Entra ID)", deployment)
        return OpenAIChatCompletionClient(model=deployment, azure_endpoint=endpoint, credential=credential)
    if _setting("OPENAI_API_KEY"):
        from agent_framework.openai import OpenAIChatCompletionClient

        model = _setting("OPENAI_MODEL") or "gpt-4o-mini"
        _log.info("Agents use OpenAI model %s", model)
        return OpenAIChatCompletionClient(model=model)
    from .testing import OfflineChatClient

    return OfflineChatClient()
