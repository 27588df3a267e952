"""End to end: the repository's own function_app.py, written for Azure OpenAI, offline through the local host.

The app reads ``AZURE_OPENAI_ENDPOINT``, the deployment and ``AZURE_OPENAI_API_KEY`` (``chat_client_from_settings``);
``FakeOpenAIServer.azure_env()`` gives it exactly those, pointing at a fake server that speaks Azure's routes
and refuses any other key. Nothing in the app changes. (Its other Azure path, Microsoft Entra ID through
``DefaultAzureCredential``, needs a cloud token; the key path is the offline one.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, root_app_host

from durableagent.testing import FakeOpenAIServer, Reply

pytestmark = pytest.mark.e2e

DEPLOYMENT = "chat-deployment"


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key="azure-test-key", deployments=[DEPLOYMENT]) as server:
        yield server


@pytest.fixture(scope="module")
def host(
    azurite: AzuriteInstance, model: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProcess]:
    app_dir = tmp_path_factory.mktemp("azure-root") / "app"
    with root_app_host(azurite, {**model.azure_env(DEPLOYMENT), "OPENAI_API_KEY": ""}, app_dir, "AzureRootApp") as proc:
        yield proc


def call(host: HostProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    code, _, raw = host.request(method, path, body=body)
    return code, json.loads(raw) if raw else None


def test_the_assistant_runs_a_tool_call_turn_on_azure_openai(host: HostProcess, model: FakeOpenAIServer) -> None:
    model.clear_requests()
    model.script(Reply.tool_call("utc_now", {}, call_id="call_now"), Reply.text("It is the present."))
    code, body = call(host, "POST", "/api/agents/Assistant/run", {"message": "What time is it?", "sessionId": "az"})
    assert code == 200, body
    assert body["response"] == "It is the present."
    first, second = model.requests
    # Agent Framework's Azure Chat Completions route, its default api-version, and the key in api-key.
    assert first.path == second.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert first.query == {"api-version": "2024-12-01-preview"}
    assert "api-key" in first.headers and "authorization" not in first.headers
    assert [r.status for r in model.requests] == [200, 200]
    role, result = second.transcript()[-1]
    assert role == "tool" and result[:2] == "20"  # utc_now's ISO timestamp went back to the model
    assert "Azure OpenAI deployment chat-deployment (API key)" in host.log()


def test_a_wrong_key_is_reported_as_a_model_failure(
    azurite: AzuriteInstance, model: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    app_dir = tmp_path_factory.mktemp("azure-root-bad-key") / "app"
    env = {**model.azure_env(DEPLOYMENT), "AZURE_OPENAI_API_KEY": "not-the-key", "OPENAI_API_KEY": ""}
    model.clear_requests()
    with root_app_host(azurite, env, app_dir, "AzureRootBadKey") as proc:
        code, body = call(proc, "POST", "/api/agents/Assistant/run", {"message": "hi", "sessionId": "bad"})
    assert code >= 400 and body["status"] != "success", body
    assert "Access denied" not in json.dumps(body)  # the model client's text never reaches the caller
    assert {r.status for r in model.requests} == {401}
