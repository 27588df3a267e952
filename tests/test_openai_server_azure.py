"""The fake OpenAI server speaks Azure OpenAI: the REAL ``openai.AzureOpenAI`` and Agent Framework's Azure clients.

Routes, api-version and auth rules are Azure's (``durableagent/testing/_azure_wire.py`` says where each was
read). Every test goes over loopback HTTP only.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import openai
import pytest
from agent_framework import Agent, tool
from agent_framework.openai import OpenAIChatClient, OpenAIChatCompletionClient
from azure.core.credentials import AccessToken, AccessTokenInfo

from durableagent import chat_client_from_settings
from durableagent.testing import FakeOpenAIServer, Reply, ToolCall

T = TypeVar("T")
KEY = "azure-key"
TOKEN = "entra-token"  # a test token, not a secret
DEPLOYMENT = "gpt-4o-mini-deploy"
USER = [{"role": "user", "content": "What is 2 + 3?"}]


def run(test: Callable[[FakeOpenAIServer], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with FakeOpenAIServer(**options) as server:
            return await test(server)

    return asyncio.run(main())


class FakeCredential:
    """A token credential (``azure.core`` ``TokenCredential`` shape) that hands out ``TOKEN``; records scopes."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.scopes.append(scopes)
        return AccessTokenInfo(TOKEN, int(time.time()) + 3600)


def add_tool() -> tuple[Any, list[tuple[int, int]]]:
    seen: list[tuple[int, int]] = []

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        seen.append((a, b))
        return a + b

    return add, seen


def tool_turn(server: FakeOpenAIServer) -> None:
    server.script(Reply.tool_call("add", {"a": 2, "b": 3}, call_id="call_add"), Reply.text("It is 5."))


def finish_by_hand(sdk: openai.AzureOpenAI) -> str:
    """A tool-call turn with the bare SDK: ask, run the tool, send its result back, read the answer."""
    first = sdk.chat.completions.create(model=DEPLOYMENT, messages=USER)  # type: ignore[arg-type]
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "add"
    arguments = json.loads(call.function.arguments)
    messages: list[Any] = [
        *USER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": str(arguments["a"] + arguments["b"])},
    ]
    second = sdk.chat.completions.create(model=DEPLOYMENT, messages=messages)
    return second.choices[0].message.content or ""


# The bare openai package ---------------------------------------------------------------------------


def test_azure_openai_with_a_key_runs_a_tool_call_turn_on_the_deployment_route() -> None:
    with FakeOpenAIServer(api_key=KEY, deployments=[DEPLOYMENT]) as server:
        tool_turn(server)
        with openai.AzureOpenAI(
            azure_endpoint=server.azure_endpoint, api_key=KEY, api_version="2024-10-21", max_retries=0
        ) as sdk:
            assert finish_by_hand(sdk) == "It is 5."
        first, second = server.requests
        assert first.path == second.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
        assert first.query == {"api-version": "2024-10-21"} and first.headers["api-key"] == "<redacted>"
        assert second.transcript()[-2:] == [("tool_call", 'add({"a": 2, "b": 3})'), ("tool", "5")]


def test_azure_openai_with_a_token_provider_and_a_fixed_deployment() -> None:
    with FakeOpenAIServer(api_key=KEY, azure_ad_token=TOKEN) as server:
        tool_turn(server)
        with openai.AzureOpenAI(
            azure_endpoint=server.azure_endpoint,
            azure_deployment=DEPLOYMENT,
            azure_ad_token_provider=lambda: TOKEN,
            api_version="2025-04-01-preview",
            max_retries=0,
        ) as sdk:
            assert finish_by_hand(sdk) == "It is 5."
            # The Responses API of a dated version lives at /openai/responses, outside the deployment.
            answer = sdk.responses.create(model=DEPLOYMENT, input="hello")
            assert answer.output_text == "echo: hello"
            assert sdk.responses.retrieve(answer.id).id == answer.id
            sdk.responses.delete(answer.id)
        paths = [(r.path, r.query.get("api-version")) for r in server.requests]
        assert paths == [
            (f"/openai/deployments/{DEPLOYMENT}/chat/completions", "2025-04-01-preview"),
            (f"/openai/deployments/{DEPLOYMENT}/chat/completions", "2025-04-01-preview"),
            ("/openai/responses", "2025-04-01-preview"),
        ]
        assert "api-key" not in server.requests[0].headers and server.requests[0].headers["authorization"]


def test_the_plain_openai_client_on_the_v1_surface_sends_its_key_as_a_bearer_token() -> None:
    with FakeOpenAIServer(api_key=KEY) as server:
        with openai.OpenAI(base_url=f"{server.azure_endpoint}/openai/v1/", api_key=KEY, max_retries=0) as sdk:
            chat = sdk.chat.completions.create(model=DEPLOYMENT, messages=[{"role": "user", "content": "a"}])
            reply = sdk.responses.create(model=DEPLOYMENT, input="b")
            assert sdk.responses.retrieve(reply.id).output_text == "echo: b"
            assert [m.id for m in sdk.models.list()] == ["fake-model"]
        assert (chat.choices[0].message.content, reply.output_text) == ("echo: a", "echo: b")
        assert [(r.path, r.query) for r in server.requests] == [
            ("/openai/v1/chat/completions", {}),
            ("/openai/v1/responses", {}),
        ]


# Agent Framework's Azure OpenAI clients --------------------------------------------------------------


def test_agent_framework_chat_completion_client_with_an_azure_key() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        tool_turn(server)
        add, seen = add_tool()
        client = OpenAIChatCompletionClient(azure_endpoint=server.azure_endpoint, api_key=KEY, model=DEPLOYMENT)
        try:
            response = await Agent(client=client, tools=[add]).run("What is 2 + 3?")
        finally:
            await client.client.close()
        assert response.text == "It is 5." and seen == [(2, 3)]
        assert [(r.path, r.query, r.status) for r in server.requests] == [
            (f"/openai/deployments/{DEPLOYMENT}/chat/completions", {"api-version": "2024-12-01-preview"}, 200)
        ] * 2
        assert server.requests[1].transcript()[-1] == ("tool", "5")

    run(body, api_key=KEY, deployments=[DEPLOYMENT])


def test_agent_framework_responses_client_with_a_token_credential() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        tool_turn(server)
        add, seen = add_tool()
        credential = FakeCredential()
        client = OpenAIChatClient(azure_endpoint=server.azure_endpoint, credential=credential, model=DEPLOYMENT)
        try:
            response = await Agent(client=client, tools=[add]).run("What is 2 + 3?")
        finally:
            await client.client.close()
        assert response.text == "It is 5." and seen == [(2, 3)]
        assert credential.scopes and set(credential.scopes) == {("https://cognitiveservices.azure.com/.default",)}
        assert [(r.path, r.query) for r in server.requests] == [
            ("/openai/v1/responses", {"api-version": "preview"})
        ] * 2
        assert all("api-key" not in r.headers for r in server.requests)

    run(body, api_key=KEY, azure_ad_token=TOKEN)


def test_azure_env_points_unchanged_apps_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients built from the environment alone, as an app's code builds them, and our own settings helper."""

    async def body(server: FakeOpenAIServer) -> None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        for name, value in server.azure_env(DEPLOYMENT).items():
            monkeypatch.setenv(name, value)
        for make in (OpenAIChatCompletionClient, OpenAIChatClient, chat_client_from_settings):
            client = make()
            try:
                assert (await Agent(client=client).run("env")).text == "echo: env"
            finally:
                await client.client.close()
        async with openai.AsyncAzureOpenAI() as sdk:  # AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY, OPENAI_API_VERSION
            await sdk.chat.completions.create(model=DEPLOYMENT, messages=[{"role": "user", "content": "x"}])
        assert [r.path for r in server.requests] == [
            f"/openai/deployments/{DEPLOYMENT}/chat/completions",
            "/openai/v1/responses",
            f"/openai/deployments/{DEPLOYMENT}/chat/completions",
            f"/openai/deployments/{DEPLOYMENT}/chat/completions",
        ]
        assert all(r.status == 200 for r in server.requests)

    run(body, api_key=KEY, deployments=[DEPLOYMENT])


def test_azure_env_with_an_api_version_sets_it_for_agent_framework_too() -> None:
    with FakeOpenAIServer() as server:
        env = server.azure_env("d", api_version="2025-01-01-preview")
        assert env["AZURE_OPENAI_API_VERSION"] == env["OPENAI_API_VERSION"] == "2025-01-01-preview"
        assert env["AZURE_OPENAI_ENDPOINT"] == server.url and env["AZURE_OPENAI_API_KEY"] == "test"
        assert "AZURE_OPENAI_API_VERSION" not in server.azure_env("d")


# What Azure refuses ------------------------------------------------------------------------------------


def _post(server: FakeOpenAIServer, path: str, headers: Mapping[str, str], model: str = DEPLOYMENT) -> tuple[int, Any]:
    body = json.dumps({"model": model, "messages": USER, "input": "x"}).encode()
    request = urllib.request.Request(
        server.url + path, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


DEPLOYED = f"/openai/deployments/{DEPLOYMENT}/chat/completions"
WRONG_KEY = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
        "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    }
}
MISSING_KEY = {
    "statusCode": 401,
    "message": "Access denied due to missing subscription key. Make sure to include subscription key when making "
    "requests to an API.",
}
BAD_TOKEN = {
    "statusCode": 401,
    "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired.",
}
NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}
BAD_VERSION = {"error": {"code": "BadRequest", "message": "API version not supported"}}


@pytest.mark.parametrize(
    ("path", "headers", "status", "body"),
    [
        (f"{DEPLOYED}?api-version=2024-10-21", {"api-key": "wrong"}, 401, WRONG_KEY),
        (f"{DEPLOYED}?api-version=2024-10-21", {}, 401, MISSING_KEY),
        (f"{DEPLOYED}?api-version=2024-10-21", {"Authorization": "Bearer not-it"}, 401, BAD_TOKEN),
        # A key is not a token on the dated surfaces; on v1 it is.
        (f"{DEPLOYED}?api-version=2024-10-21", {"Authorization": f"Bearer {KEY}"}, 401, BAD_TOKEN),
        ("/openai/v1/responses", {"Authorization": "Bearer not-it"}, 401, BAD_TOKEN),
        ("/openai/v1/responses", {"api-key": "wrong"}, 401, WRONG_KEY),
        (DEPLOYED, {"api-key": KEY}, 404, NOT_FOUND),
        ("/openai/responses", {"api-key": KEY}, 404, NOT_FOUND),
        (f"{DEPLOYED}?api-version=preview", {"api-key": KEY}, 400, BAD_VERSION),
        (f"{DEPLOYED}?api-version=2024-13", {"api-key": KEY}, 400, BAD_VERSION),
        ("/openai/v1/chat/completions?api-version=2024-10-21", {"api-key": KEY}, 400, BAD_VERSION),
    ],
)
def test_refusals_carry_azures_status_and_body(path: str, headers: dict[str, str], status: int, body: Any) -> None:
    with FakeOpenAIServer(api_key=KEY, azure_ad_token=TOKEN) as server:
        assert _post(server, path, headers) == (status, body)
        [record] = server.requests
        assert record.status == status and server.pending == 0


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (f"{DEPLOYED}?api-version=2024-10-21", {"api-key": KEY}),
        (f"{DEPLOYED}?api-version=2025-04-01-preview", {"Authorization": f"Bearer {TOKEN}"}),
        ("/openai/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}),
        ("/openai/v1/chat/completions?api-version=preview", {"api-key": KEY}),
        ("/openai/v1/responses?api-version=latest", {"Authorization": f"Bearer {TOKEN}"}),
        ("/openai/v1/responses?api-version=v1", {"api-key": KEY}),
        ("/openai/responses?api-version=2025-03-01-preview", {"api-key": KEY}),
    ],
)
def test_accepted_shapes(path: str, headers: dict[str, str]) -> None:
    with FakeOpenAIServer(api_key=KEY, azure_ad_token=TOKEN) as server:
        status, body = _post(server, path, headers)
        assert status == 200, body


def test_without_configured_credentials_any_credential_passes_but_one_is_required() -> None:
    with FakeOpenAIServer() as server:
        assert _post(server, f"{DEPLOYED}?api-version=2024-10-21", {"api-key": "anything"})[0] == 200
        assert _post(server, "/openai/v1/responses", {"Authorization": "Bearer anything"})[0] == 200
        assert _post(server, "/openai/v1/responses", {}) == (401, MISSING_KEY)


def test_an_unknown_deployment_is_a_404_and_the_deployment_name_is_the_model() -> None:
    with FakeOpenAIServer(deployments=[DEPLOYMENT]) as server:
        headers = {"api-key": "k"}
        status, body = _post(server, "/openai/deployments/other/chat/completions?api-version=2024-10-21", headers)
        assert status == 404 and body["error"]["code"] == "DeploymentNotFound"
        assert _post(server, "/openai/v1/responses", headers, model="other")[1]["error"]["code"] == "DeploymentNotFound"
        status, body = _post(server, f"{DEPLOYED}?api-version=2024-10-21", headers, model="ignored")
        assert status == 200 and body["model"] == DEPLOYMENT
        assert [r.status for r in server.requests] == [404, 404, 200]


def test_stored_responses_on_azure_routes_need_auth_and_a_version_too() -> None:
    with FakeOpenAIServer(api_key=KEY) as server:
        _, created = _post(server, "/openai/v1/responses", {"api-key": KEY})

        def call(method: str, path: str, headers: Mapping[str, str]) -> int:
            request = urllib.request.Request(server.url + path, method=method, headers=dict(headers))
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                error.close()
                return error.code

        rid = created["id"]
        assert call("GET", f"/openai/v1/responses/{rid}", {}) == 401
        assert call("GET", f"/openai/responses/{rid}", {"api-key": KEY}) == 404  # no api-version
        assert call("GET", f"/openai/responses/{rid}?api-version=2025-03-01-preview", {"api-key": KEY}) == 200
        assert call("DELETE", f"/openai/v1/responses/{rid}", {"api-key": KEY}) == 200
        assert call("GET", f"/openai/v1/responses/{rid}", {"api-key": KEY}) == 404


def test_the_tool_call_script_works_unchanged_on_both_surfaces() -> None:
    """The same ``Reply``/``ToolCall`` script drives the OpenAI and Azure routes."""
    with FakeOpenAIServer() as server:
        server.script(Reply(calls=(ToolCall("f", {"x": 1}),)), Reply(calls=(ToolCall("f", {"x": 1}),)))
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as plain:
            a = plain.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        with openai.AzureOpenAI(azure_endpoint=server.azure_endpoint, api_key="k", api_version="2024-10-21") as az:
            b = az.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        calls = [c.choices[0].message.tool_calls for c in (a, b)]
        assert [[call.function.arguments for call in found or []] for found in calls] == [['{"x": 1}']] * 2
