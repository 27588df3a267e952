"""The product description (``/work/shared/reference/product-description.txt``, the page this product was
specified from), section by section: one test per example or documented shape.

Renames the page predates: ``ChatMessage`` -> ``Message``, ``AgentRunResponse`` -> ``AgentResponse``,
``AgentProtocol`` -> ``SupportsAgentRun``; its ``AzureOpenAIAssistantsClient(...).create_agent`` examples
are Agent Framework's, so the apps here build ``Agent(client=OpenAIChatCompletionClient(), ...)`` pointed
at a local fake OpenAI server (the real OpenAI client over real HTTP, tool calls included). Everything
under ``durableagent`` is used as the page writes it. HTTP examples go through the local host
subprocess, Azurite and that fake server.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import azure.durable_functions as df
import azure.functions as func
import pytest
from agent_framework import Agent, AgentResponse, BaseChatClient, ChatResponse, Message
from azure.core.exceptions import ResourceExistsError
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, assert_eventually, copy_app

from durableagent.testing import FakeOpenAIServer, Reply

APPS = Path(__file__).parent / "apps"


# The stack ---------------------------------------------------------------------------------------------


@dataclass
class Host:
    """One app on the local host, with its function key (empty when keys are not enforced)."""

    process: HostProcess
    key: str = ""

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, *, key: bool = True
    ) -> tuple[int, Any]:
        all_headers = {**({"x-functions-key": self.key} if key and self.key else {}), **(headers or {})}
        code, _, raw = self.process.request(method, path, body, all_headers, 60.0)
        try:
            return code, json.loads(raw) if raw else None
        except ValueError:
            return code, raw.decode(errors="replace")

    def log(self) -> str:
        return self.process.log()


def _env(azurite: AzuriteInstance, model: FakeOpenAIServer, hub: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": hub,
        **model.env(),
        "NO_PROXY": "127.0.0.1,localhost",
    }


@pytest.fixture(autouse=True)
def _fresh_model(model: FakeOpenAIServer) -> None:
    model.clear_script()
    urllib.request.urlopen(urllib.request.Request(f"{model.url}/_requests", method="DELETE"), timeout=10).close()


@pytest.fixture(scope="module")
def weather(
    azurite: AzuriteInstance, model: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Host]:
    """``tests/apps/product_description``: WeatherAgent and MathAgent, the page's ConsoleLogger callback."""
    app_dir = copy_app(APPS / "product_description", tmp_path_factory.mktemp("page") / "app")
    with HostProcess(app_dir, env=_env(azurite, model, "PageWeather")) as process:
        yield Host(process)


@pytest.fixture(scope="module")
def custom(
    azurite: AzuriteInstance, model: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Host]:
    """``tests/apps/product_description_custom``: ``agent=``, FUNCTION auth, the page's own functions."""
    app_dir = copy_app(APPS / "product_description_custom", tmp_path_factory.mktemp("page-custom") / "app")
    with HostProcess(app_dir, env=_env(azurite, model, "PageCustom"), extra_args=["--enforce-keys"]) as process:
        keys = json.loads((app_dir / ".durableagent" / "keys.json").read_text())
        yield Host(process, keys["functionKeys"]["default"])


def new_key(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


class _Echo(BaseChatClient):  # type: ignore[type-arg]
    async def _inner_get_response(self, *, messages, stream, options, **kwargs):  # type: ignore[no-untyped-def]
        return ChatResponse(messages=[Message(role="assistant", contents=["ok"])])


def _agent(name: str | None) -> Agent:  # type: ignore[type-arg]
    return Agent(client=_Echo(), name=name)


def _routes(app: Any) -> dict[str, tuple[str, list[str]]]:
    """Function name -> (route, methods) of an app's HTTP functions."""
    found = {}
    for function in app.get_functions():
        for raw in function.get_raw_bindings():
            binding = json.loads(raw)
            if binding["type"] == "httpTrigger":
                found[function.get_function_name()] = (binding["route"], [m.upper() for m in binding["methods"]])
    return found


# Quick Start: 5. Test your agent, 6. Retrieve conversation state ------------------------------------------

SEATTLE = "What is the weather like in Seattle?"
SEATTLE_ANSWER = "The weather in Seattle is currently 72°F and sunny."


@pytest.fixture(scope="module")
def quick_start(weather: Host, model: FakeOpenAIServer) -> dict[str, Any]:
    """The Quick Start's ``curl -X POST .../api/agents/WeatherAgent/run`` (the model calls get_weather)."""
    model.script(
        Reply.tool_call("get_weather", {"location": "Seattle"}, delay_seconds=0.05),
        Reply.text(SEATTLE_ANSWER, delay_seconds=0.05),
    )
    code, body = weather.call(
        "POST",
        "/api/agents/WeatherAgent/run",
        b'{"message": "What is the weather like in Seattle?", "sessionId": "user-123"}',
        {"Content-Type": "application/json"},
    )
    assert code == 200, body
    assert isinstance(body, dict)
    return body


def test_quick_start_test_your_agent(quick_start: dict[str, Any]) -> None:
    expected = {
        "response": "The weather in Seattle is currently 72°F and sunny.",
        "message": "What is the weather like in Seattle?",
        "sessionId": "user-123",
        "status": "success",
        "message_count": 1,
    }
    assert {k: quick_start[k] for k in expected} == expected
    # Ours, beside the documented fields.
    assert quick_start["agentSessionId"] == "@WeatherAgent@user-123" and quick_start["correlationId"]


def test_quick_start_retrieve_conversation_state(weather: Host, quick_start: dict[str, Any]) -> None:
    code, body = weather.call("GET", "/api/agents/WeatherAgent/user-123")
    assert code == 200, body
    assert (body["message_count"], body["last_response"], body["agent_type"]) == (1, SEATTLE_ANSWER, "Agent")
    user, assistant = body["conversation_history"]
    assert (user["role"], user["content"]) == ("user", SEATTLE)
    assert (assistant["role"], assistant["content"]) == ("assistant", SEATTLE_ANSWER)
    # Each entry is stamped when it was said: the question on arrival, the answer when it was complete.
    for entry in (user, assistant):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", entry["timestamp"]), entry
    assert user["timestamp"] < assistant["timestamp"]
    assert "agent_response" not in user
    agent_response = assistant["agent_response"]
    assert (agent_response["text"], agent_response["kind"]) == (SEATTLE_ANSWER, "agent_message")
    [call] = agent_response["tool_calls"]
    assert (call["name"], call["arguments"]) == ("get_weather", {"location": "Seattle"})
    assert json.loads(call["result"]) == {"location": "Seattle", "temperature": 72, "conditions": "Sunny"}
    usage = agent_response["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert all(isinstance(v, int) and v > 0 for v in usage.values()), usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # "... and other framework fields": Agent Framework's own response stays beside the documented ones.
    assert agent_response["type"] == "agent_response" and agent_response["messages"]


# Request/Response Format: POST /api/agents/{agent_name}/run ----------------------------------------------


def test_run_request_with_every_documented_field(weather: Host) -> None:
    session = new_key("format")
    request = {
        "message": "Your message to the agent",
        "sessionId": session,
        "role": "user",
        "enable_tool_calls": True,
        "response_schema": {},
    }
    code, body = weather.call("POST", "/api/agents/WeatherAgent/run", request)
    assert code == 200, body
    assert {k: body[k] for k in ("response", "message", "sessionId", "status", "message_count")} == {
        "response": "echo: Your message to the agent",
        "message": "Your message to the agent",
        "sessionId": session,
        "status": "success",
        "message_count": 1,
    }


def test_only_message_is_required_and_a_session_id_is_generated(weather: Host) -> None:
    code, body = weather.call("POST", "/api/agents/WeatherAgent/run", {"message": "Only a message"})
    assert code == 200, body
    assert body["sessionId"] and body["agentSessionId"] == f"@WeatherAgent@{body['sessionId']}"
    code, state = weather.call("GET", f"/api/agents/WeatherAgent/{body['sessionId']}")
    assert code == 200 and state["message_count"] == 1, state


@pytest.mark.parametrize("alias", ["sessionKey", "conversation_id"])
def test_session_aliases(weather: Host, alias: str) -> None:
    # "sessionKey is also supported as an alias for sessionId"; "HTTP Trigger receives user message with
    # optional conversation_id" (How It Works).
    session = new_key(alias)
    for i in (1, 2):
        code, body = weather.call("POST", "/api/agents/WeatherAgent/run", {"message": f"hi {i}", alias: session})
        assert (code, body["sessionId"], body["message_count"]) == (200, session, i), body


def test_message_count_counts_exchanges(weather: Host, model: FakeOpenAIServer) -> None:
    # The GET example's "message_count": 5 after five exchanges, tool calls included.
    session = new_key("five")
    for i in range(5):
        if i % 2 == 0:
            model.script(Reply.tool_call("get_weather", {"location": f"City {i}"}), Reply.text(f"Sunny in City {i}"))
        code, body = weather.call("POST", "/api/agents/WeatherAgent/run", {"message": f"q{i}", "sessionId": session})
        assert (code, body["message_count"]) == (200, i + 1), body
    code, body = weather.call("GET", f"/api/agents/WeatherAgent/{session}")
    assert (code, body["message_count"], len(body["conversation_history"])) == (200, 5, 10)
    assert body["last_response"] == "Sunny in City 4"
    calls = [len(e["agent_response"]["tool_calls"]) for e in body["conversation_history"] if e["role"] == "assistant"]
    assert calls == [1, 0, 1, 0, 1]


@pytest.mark.parametrize("key", ["someone@example.com", "Ticket #4711 / Ada?", "Grüße 100%", "@handle"])
def test_a_session_key_is_whatever_the_caller_uses(weather: Host, key: str) -> None:
    # Any printable text up to 128 characters; URL-encoded in paths. A key starting with '@' is sent in
    # the @name@key form (a leading '@' means that form).
    sent = f"@WeatherAgent@{key}" if key.startswith("@") else key
    code, body = weather.call("POST", "/api/agents/WeatherAgent/run", {"message": "hello", "sessionId": sent})
    assert (code, body.get("sessionId")) == (200, key), body
    path = f"/api/agents/WeatherAgent/{quote(sent, safe='')}"
    code, state = weather.call("GET", path)
    assert (code, state["sessionId"], state["message_count"]) == (200, key, 1), state
    code, result = weather.call("GET", f"{path}/runs/{body['correlationId']}")
    assert (code, result["response"]) == (200, "echo: hello"), result


def test_the_whole_history_by_default_and_pages_on_request(weather: Host) -> None:
    session = new_key("long")
    turns = 55  # more than the 50 turns the history used to stop at
    for i in range(turns):
        code, body = weather.call(
            "POST", "/api/agents/WeatherAgent/run", {"message": f"turn {i}", "sessionId": session}
        )
        assert code == 200, body
    code, body = weather.call("GET", f"/api/agents/WeatherAgent/{session}")
    assert (code, body["message_count"], len(body["conversation_history"])) == (200, turns, 2 * turns)
    assert body["page"]["next_cursor"] is None
    code, page = weather.call("GET", f"/api/agents/WeatherAgent/{session}?cursor=50&page_size=3")
    assert [e["content"] for e in page["conversation_history"]][::2] == ["turn 50", "turn 51", "turn 52"]
    assert page["page"]["next_cursor"] == 53


# Architecture: Entity Operations (run_agent, get_state, reset) --------------------------------------------


def test_entity_operations(weather: Host) -> None:
    session = new_key("entity")
    base = f"/api/entity-operations/WeatherAgent/{quote(session, safe='')}"
    run = {"message": "Hello entity", "correlationId": f"c-{session}"}
    code, result = weather.call("POST", f"{base}/run_agent", run)
    assert (code, result["status"], result["text"]) == (200, "success", "echo: Hello entity"), result

    code, state = weather.call("POST", f"{base}/get_state", None)
    assert code == 200, state
    assert (state["message_count"], state["last_response"], state["agent_type"]) == (1, "echo: Hello entity", "Agent")
    assert [(e["role"], e["content"]) for e in state["conversation_history"]] == [
        ("user", "Hello entity"),
        ("assistant", "echo: Hello entity"),
    ]
    assert state["conversation_history"][1]["agent_response"]["kind"] == "agent_message"

    code, reset = weather.call("POST", f"{base}/reset", None)
    assert (code, reset["status"]) == (200, "reset"), reset
    # The conversation is gone, transcript included: GET shows no old turn.
    code, body = weather.call("GET", f"/api/agents/WeatherAgent/{quote(session, safe='')}")
    assert (code, body["message_count"], body["conversation_history"], body["last_response"]) == (200, 0, [], None)
    code, body = weather.call("POST", "/api/agents/WeatherAgent/run", {"message": "After reset", "sessionId": session})
    assert (code, body["message_count"]) == (200, 1), body
    code, body = weather.call("GET", f"/api/agents/WeatherAgent/{quote(session, safe='')}")
    assert [e["content"] for e in body["conversation_history"]] == ["After reset", "echo: After reset"]


# API Reference: AgentFunctionApp ------------------------------------------------------------------------


def test_agent_function_app_signature_as_documented() -> None:
    from durableagent import AgentFunctionApp

    # AgentFunctionApp(agents=None, http_auth_level=ANONYMOUS, enable_health_check=True, default_callback=None)
    app = AgentFunctionApp([_agent("WeatherAgent")], func.AuthLevel.ANONYMOUS, True, None)
    assert list(app.agents) == ["WeatherAgent"]
    assert isinstance(app, df.DFApp)
    # "If no agents are provided, they can be added later using add_agent()."
    empty = AgentFunctionApp()
    empty.add_agent(_agent("WeatherAgent"))
    empty.add_agent(_agent("MathAgent"), None)  # add_agent(agent, callback=None)
    assert list(empty.agents) == ["WeatherAgent", "MathAgent"]


def test_add_agent_raises_value_error_as_documented() -> None:
    from durableagent import AgentFunctionApp

    app = AgentFunctionApp(agents=[_agent("WeatherAgent")])
    with pytest.raises(ValueError):  # "The agent doesn't have a name attribute"
        app.add_agent(_agent(None))
    with pytest.raises(ValueError):  # "An agent with the same name is already registered"
        app.add_agent(_agent("WeatherAgent"))


def test_health_check_can_be_disabled() -> None:
    from durableagent import AgentFunctionApp

    assert "health" in {r for r, _ in _routes(AgentFunctionApp(agents=[_agent("A")])).values()}
    routes = _routes(AgentFunctionApp(agents=[_agent("A")], enable_health_check=False))
    assert "health" not in {r for r, _ in routes.values()}


# Advanced Usage: Multiple Agents in One App ----------------------------------------------------------------


def test_one_agent_per_app_with_agent_name() -> None:
    from durableagent import AgentFunctionApp

    weather_agent, news_agent = _agent("weather"), _agent("news")
    # Each agent gets its own route
    weather_app = AgentFunctionApp(agent=weather_agent, agent_name="WeatherAgent")
    news_app = AgentFunctionApp(agent=news_agent, agent_name="NewsAgent")
    assert list(weather_app.agents) == ["WeatherAgent"] and weather_app.agents["WeatherAgent"] is weather_agent
    assert list(news_app.agents) == ["NewsAgent"]
    # agent= alone registers the agent under its own name; agents=[...] and agent= combine.
    assert list(AgentFunctionApp(agent=_agent("Solo")).agents) == ["Solo"]
    both = AgentFunctionApp(agents=[_agent("First")], agent=_agent("Second"))
    assert list(both.agents) == ["First", "Second"]
    # A name given by agent_name serves agents that have none.
    assert list(AgentFunctionApp(agent=_agent(None), agent_name="Named").agents) == ["Named"]
    with pytest.raises(ValueError):
        AgentFunctionApp(agent_name="NoAgent")


# Advanced Usage: Custom Authentication, Adding Custom Azure Functions ------------------------------------


def test_custom_authentication_requires_a_function_key(custom: Host, model: FakeOpenAIServer) -> None:
    # app = AgentFunctionApp(agent=my_agent, http_auth_level=func.AuthLevel.FUNCTION)
    session = new_key("auth")
    body = {"message": "Hello", "sessionId": session}
    assert custom.call("POST", "/api/agents/MyAgent/run", body, key=False)[0] == 401
    assert custom.call("GET", "/api/health", key=False)[0] == 401
    code, answer = custom.call("POST", "/api/agents/MyAgent/run", body)
    assert (code, answer["status"], answer["response"]) == (200, "success", "echo: Hello"), answer


def test_custom_functions_run_beside_the_agent(custom: Host, azurite: AzuriteInstance) -> None:
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    # @app.route(route="status", methods=["GET"]) -> "Running" (the app's auth level applies to it too)
    assert custom.call("GET", "/api/status", key=False)[0] == 401
    assert custom.call("GET", "/api/status") == (200, "Running")
    # @app.queue_trigger(arg_name="msg", queue_name="tasks", ...)
    marker = new_key("task")
    with QueueClient.from_connection_string(
        azurite.connection_string, "tasks", message_encode_policy=TextBase64EncodePolicy()
    ) as queue:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(marker)
    assert_eventually(
        lambda: f"Processing: b'{marker}'" in custom.log(), timeout=30, message=f"queue not processed\n{custom.log()}"
    )
    # @app.timer_trigger(schedule="0 */5 * * * *", ...) is listed and scheduled.
    assert "periodic_task" in custom.log()
    # @app.blob_trigger(arg_name="blob", path="uploads/{name}", ...): a new blob runs it once.
    from azure.storage.blob import BlobServiceClient

    blob_name = f"{new_key('upload')}.txt"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.get_container_client("uploads")
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        container.upload_blob(blob_name, b"hello")
    assert_eventually(
        lambda: f"Processing blob: uploads/{blob_name}" in custom.log(),
        timeout=45,
        message=f"blob not processed\n{custom.log()}",
    )
    assert "is in error" not in custom.log()


# Response Callbacks -------------------------------------------------------------------------------------


def test_callbacks_import_path_and_context_as_documented() -> None:
    from durableagent.callbacks import AgentCallbackContext, AgentResponseCallbackProtocol

    class ConsoleLogger(AgentResponseCallbackProtocol):
        async def on_streaming_response_update(self, update, context: AgentCallbackContext) -> None:  # type: ignore[no-untyped-def]
            print(f"[{context.agent_name}] chunk: {update.text}")

        async def on_agent_response(self, response, context: AgentCallbackContext) -> None:  # type: ignore[no-untyped-def]
            print(f"[{context.agent_name}] final: {response.text}")

    from durableagent import AgentFunctionApp

    app = AgentFunctionApp(default_callback=ConsoleLogger())
    app.add_agent(_agent("WeatherAgent"), callback=ConsoleLogger())  # per-agent override
    # "the agent name, correlation ID, conversation ID, and request message"
    fields = set(AgentCallbackContext.__dataclass_fields__)
    assert {"agent_name", "correlation_id", "conversation_id", "request_message"} <= fields


def test_callbacks_observe_streaming_updates_and_the_final_response(weather: Host) -> None:
    session = new_key("callbacks")
    message = f"Hello from {session}"
    code, body = weather.call(
        "POST", "/api/agents/MathAgent/run", {"message": message, "sessionId": session, "correlationId": session}
    )
    assert code == 200, body

    def logged() -> bool:
        return f"conversation={session}" in weather.log()

    assert_eventually(logged, timeout=10, message=weather.log()[-3000:])
    log = weather.log()
    assert f"[MathAgent] final: echo: {message}" in log
    assert "[MathAgent] chunk: " in log
    assert f"[MathAgent] context: correlation={session} conversation={session} request={message}" in log


# AgentState ---------------------------------------------------------------------------------------------


def test_agent_state_example() -> None:
    from durableagent import AgentState

    state = AgentState()

    # Add user message
    state.add_user_message("Hello!", correlation_id="corr-123")

    # Add assistant response with full metadata
    # (ChatMessage(role='assistant', text=...) is Message(role="assistant", contents=[...]) in today's framework.)
    response = AgentResponse(messages=[Message(role="assistant", contents=["Hi there!"])], response_id="123")
    state.add_assistant_message("Hi there!", response)

    # Serialize for persistence
    serialized = state.get_state()

    # Restore from persistence
    restored = AgentState()
    restored.restore_state(serialized)

    assert json.loads(json.dumps(serialized)) == serialized  # JSON, as entity state must be
    assert [(m.role, m.text) for m in restored.window_messages()] == [("user", "Hello!"), ("assistant", "Hi there!")]
    assert restored.window_messages()[0].additional_properties.get("correlation_id") == "corr-123"
    assert restored.get_state() == serialized
    restored.reset()
    assert restored.window_messages() == []


def test_agent_state_signatures_as_documented() -> None:
    from durableagent import AgentState

    state = AgentState()
    state.add_user_message("Question", "corr-1", "user")  # (content, correlation_id, role="user")
    state.add_assistant_message("Answer", AgentResponse(messages=[Message(role="assistant", contents=["Answer"])]))
    assert isinstance(state.get_state(), dict)


# AgentSessionId -----------------------------------------------------------------------------------------


def test_agent_session_id_examples() -> None:
    from durableagent import AgentSessionId

    # Create with specific key
    session_id = AgentSessionId(name="AgentEntity", key="user-123")
    assert (session_id.name, session_id.key) == ("AgentEntity", "user-123")

    # Create with random GUID
    random_id = AgentSessionId.with_random_key(name="AgentEntity")
    assert random_id.name == "AgentEntity" and uuid.UUID(random_id.key)

    # Convert to EntityId for Durable Functions APIs
    entity_id = session_id.to_entity_id()
    assert isinstance(entity_id, df.EntityId)

    # Parse from string format (@name@key)
    assert AgentSessionId.parse("@AgentEntity@user-123") == session_id

    # String representation
    assert str(session_id) == "@AgentEntity@user-123"


def test_agent_session_id_from_entity_id() -> None:
    from durableagent import AgentSessionId

    session_id = AgentSessionId(name="WeatherAgent", key="user-123")
    assert AgentSessionId.from_entity_id(session_id.to_entity_id()) == session_id
    # An entity id naming the agent itself, as the page's examples do.
    assert AgentSessionId.from_entity_id(df.EntityId("AgentEntity", "k")) == AgentSessionId("AgentEntity", "k")
    free = AgentSessionId("WeatherAgent", "someone@example.com")
    assert AgentSessionId.from_entity_id(free.to_entity_id()) == free


# Multi-Agent Support: "This creates separate routes for each agent" ---------------------------------------


def test_each_agent_has_its_own_functions_and_routes(weather: Host) -> None:
    port = weather.process.port
    log = weather.log()
    # Listed at start-up with their real URLs, under names derived from the agent's name.
    for agent in ("WeatherAgent", "MathAgent"):
        function = f"agent-{agent.lower()}"
        assert f"{function}-run: [POST] http://localhost:{port}/api/agents/{agent}/run" in log, log
        assert f"{function}-session: [GET] http://localhost:{port}/api/agents/{agent}/{{sessionId}}" in log
        assert f"{function}-session-delete: [DELETE] http://localhost:{port}/api/agents/{agent}/{{sessionId}}" in log
        assert f"{function}-run-result: [GET] http://localhost:{port}/api/agents/{agent}/{{sessionId}}/runs/" in log
    session = new_key("routes")
    for agent in ("WeatherAgent", "MathAgent"):  # POST .../run and GET .../{sessionId} of each
        code, body = weather.call("POST", f"/api/agents/{agent}/run", {"message": agent, "sessionId": session})
        assert (code, body["response"]) == (200, f"echo: {agent}"), body
        code, body = weather.call("GET", f"/api/agents/{agent}/{session}")
        assert [e["content"] for e in body["conversation_history"]] == [agent, f"echo: {agent}"]
    # Routes match case-insensitively, as in Azure; a name no agent has is a JSON 404.
    assert weather.call("GET", f"/api/agents/mathagent/{session}")[0] == 200
    code, body = weather.call("POST", "/api/agents/NewsAgent/run", {"message": "hi"})
    assert (code, body["error"]["code"]) == (404, "agent_not_found")


# Multi-Agent Support: Health Check with Multiple Agents ----------------------------------------------------


def test_health_check_lists_every_agent(weather: Host) -> None:
    code, body = weather.call("GET", "/api/health")
    assert code == 200, body
    assert body["status"] == "healthy"
    assert body["agents"] == [{"name": "WeatherAgent", "type": "Agent"}, {"name": "MathAgent", "type": "Agent"}]
    assert body["agent_count"] == 2


# Per-agent functions, each of which can be disabled: AzureWebJobs.<function>.Disabled ----------------------


def test_one_agents_function_disabled_by_app_setting(
    own_azurite: AzuriteInstance, model: FakeOpenAIServer, tmp_path: Path
) -> None:
    azurite = own_azurite  # the module's hosts listen on the same queue names
    # WeatherAgent's run function is disabled in local.settings.json, MathAgent's queue trigger by the
    # environment in the form without dots; keys are enforced, as in Azure (`func start` lets every caller
    # in as an admin, and an admin still reaches a disabled HTTP function).
    app_dir = copy_app(APPS / "product_description", tmp_path / "app")
    settings = {"Values": {"AzureWebJobs.agent-weatheragent-run.Disabled": "True"}}
    (app_dir / "local.settings.json").write_text(json.dumps(settings), encoding="utf-8")
    env = {**_env(azurite, model, "PageDisabled"), "AzureWebJobs_agent-mathagent-queue_Disabled": "1"}
    with HostProcess(app_dir, env=env, extra_args=["--enforce-keys"]) as process:
        keys = json.loads((app_dir / ".durableagent" / "keys.json").read_text())
        host = Host(process, keys["functionKeys"]["default"])
        session = new_key("disabled")
        run = {"message": "Hello", "sessionId": session}
        # Indexed but not run: the route answers 404 as if there were none, the other agent is untouched.
        code, body = host.call("POST", "/api/agents/WeatherAgent/run", run)
        assert (code, body["error"]["code"]) == (404, "route_not_found"), body
        code, body = host.call("POST", "/api/agents/MathAgent/run", run)
        assert (code, body["response"]) == (200, "echo: Hello"), body
        # The agent's other functions still work, and the master key (admin) still reaches the disabled one.
        code, body = host.call("GET", f"/api/agents/WeatherAgent/{session}")
        assert (code, body["error"]["code"]) == (404, "session_not_found"), body
        code, body = host.call("POST", "/api/agents/WeatherAgent/run", run, {"x-functions-key": keys["masterKey"]})
        assert (code, body["response"]) == (200, "echo: Hello"), body
        assert host.call("GET", f"/api/agents/WeatherAgent/{session}")[0] == 200
        # A disabled queue trigger does not fire: the message stays where it was put.
        from azure.storage.queue import QueueClient, TextBase64EncodePolicy

        with QueueClient.from_connection_string(
            azurite.connection_string, "mathagent-runs", message_encode_policy=TextBase64EncodePolicy()
        ) as queue:
            with contextlib.suppress(ResourceExistsError):
                queue.create_queue()
            queue.clear_messages()
            queue.send_message(json.dumps({"message": "From the queue", "sessionId": session}))
            time.sleep(3)
            assert queue.get_queue_properties().approximate_message_count == 1
        log = host.log()
    # Start-up says so, as the WebJobs SDK logs it and Core Tools lists it; the listing leaves them out.
    port = process.port
    for name in ("agent-weatheragent-run", "agent-mathagent-queue"):
        assert f"Function '{name}' is disabled" in log, log
        assert f"Function {name} is disabled." in log
        assert f"        {name}:" not in log
    assert f"agent-weatheragent-session: [GET] http://localhost:{port}/api/agents/WeatherAgent/{{sessionId}}" in log
    assert f"agent-mathagent-run: [POST] http://localhost:{port}/api/agents/MathAgent/run" in log
