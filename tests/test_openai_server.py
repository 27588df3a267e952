"""The fake OpenAI server, driven by the REAL ``openai`` SDK through Agent Framework's OpenAI clients.

``OpenAIChatCompletionClient`` speaks Chat Completions; ``OpenAIChatClient`` speaks the Responses
API. Every test here goes over loopback HTTP only.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest
from agent_framework import Agent, tool
from agent_framework.exceptions import ChatClientException
from agent_framework.openai import OpenAIChatClient, OpenAIChatCompletionClient
from pydantic import BaseModel

import durableagent.testing
from durableagent.testing import FakeOpenAIServer, RecordedRequest, RemoteFakeOpenAIServer, Reply, ToolCall

T = TypeVar("T")
ClientFactory = Callable[[FakeOpenAIServer], Any]


def run(test: Callable[[FakeOpenAIServer], Awaitable[T]], **server_options: Any) -> T:
    """Run an async test body against a fresh server (pytest-asyncio is not used here)."""

    async def main() -> T:
        async with FakeOpenAIServer(**server_options) as server:
            return await test(server)

    return asyncio.run(main())


def completions(server: FakeOpenAIServer) -> OpenAIChatCompletionClient:
    return OpenAIChatCompletionClient(base_url=server.base_url, api_key="test", model="fake-model")


def responses(server: FakeOpenAIServer) -> OpenAIChatClient:
    return OpenAIChatClient(base_url=server.base_url, api_key="test", model="fake-model")


@asynccontextmanager
async def agent_on(
    server: FakeOpenAIServer, factory: ClientFactory = completions, **agent: Any
) -> AsyncIterator[Agent]:
    """An Agent over a real OpenAI client pointed at ``server``; the SDK's HTTP client is closed after."""
    client = factory(server)
    try:
        yield Agent(client=client, name=agent.pop("name", "Tester"), **agent)
    finally:
        await client.client.close()


class Weather(BaseModel):
    city: str
    celsius: int


def tool_spy() -> tuple[Any, list[str]]:
    """A tool that records each call, and the list it records into."""
    seen: list[str] = []

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        seen.append(city)
        return f"sunny in {city}"

    return get_weather, seen


# Chat Completions ---------------------------------------------------------------------------------


def test_plain_text_reply_and_what_the_model_saw() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.text("Hello there."))
        async with agent_on(server, instructions="Be brief.") as agent:
            response = await agent.run("hi")
        assert response.text == "Hello there."
        assert response.usage_details is not None and response.usage_details["total_token_count"] > 0
        [request] = server.requests
        assert request.path == "/v1/chat/completions" and request.api == "chat.completions"
        assert request.body["model"] == "fake-model" and not request.body.get("stream")
        assert request.transcript() == [("system", "Be brief."), ("user", "hi")]
        assert request.headers["authorization"] == "<redacted>"  # credentials never kept
        assert server.pending == 0

    run(body)


def test_default_rule_echoes_and_a_responder_answers_dynamically() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        async with agent_on(server) as agent:
            assert (await agent.run("ping")).text == "echo: ping"
            server.set_responder(lambda request: Reply.text(f"{len(request['messages'])} message(s)"))
            assert (await agent.run("count")).text == "1 message(s)"
            server.script(Reply.text("scripted first"))
            assert (await agent.run("x")).text == "scripted first"  # a script outranks the responder
            server.set_responder(None)
            assert (await agent.run("back")).text == "echo: back"
        assert len(server.requests) == 4

    run(body)


def test_unscripted_load_needs_no_script() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        async with agent_on(server) as agent:
            answers = await asyncio.gather(*(agent.run(f"message {i}") for i in range(20)))
        assert sorted(a.text for a in answers) == sorted(f"echo: message {i}" for i in range(20))
        assert len(server.requests) == 20

    run(body)


def test_second_turn_of_a_session_carries_the_first_exchange() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.text("Nice to meet you, Ada."), Reply.text("You are Ada."))
        async with agent_on(server) as agent:
            session = agent.create_session()
            await agent.run("I am Ada.", session=session)
            second = await agent.run("Who am I?", session=session)
        assert second.text == "You are Ada."
        first_request, second_request = server.requests
        assert first_request.transcript() == [("user", "I am Ada.")]
        assert second_request.transcript() == [
            ("user", "I am Ada."),
            ("assistant", "Nice to meet you, Ada."),
            ("user", "Who am I?"),
        ]

    run(body)


def test_tool_call_runs_once_and_its_result_goes_back_to_the_model() -> None:
    get_weather, seen = tool_spy()

    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.tool_call("get_weather", {"city": "Paris"}), Reply.text("It is sunny in Paris."))
        async with agent_on(server, tools=[get_weather]) as agent:
            response = await agent.run("Weather in Paris?")
        assert response.text == "It is sunny in Paris."
        assert seen == ["Paris"]
        first, second = server.requests
        assert [t["function"]["name"] for t in first.body["tools"]] == ["get_weather"]
        assert second.transcript()[-2:] == [
            ("tool_call", 'get_weather({"city": "Paris"})'),
            ("tool", "sunny in Paris"),
        ]
        call_id = second.body["messages"][-2]["tool_calls"][0]["id"]
        assert second.body["messages"][-1] == {
            "role": "tool",
            "tool_call_id": call_id,
            "content": "sunny in Paris",
        }

    run(body)


def test_parallel_tool_calls_each_get_a_result() -> None:
    get_weather, seen = tool_spy()

    async def body(server: FakeOpenAIServer) -> None:
        server.script(
            Reply.tool_calls(ToolCall("get_weather", {"city": "Oslo"}), ToolCall("get_weather", {"city": "Rome"})),
            Reply.text("Both sunny."),
        )
        async with agent_on(server, tools=[get_weather]) as agent:
            assert (await agent.run("Oslo and Rome?")).text == "Both sunny."
        assert sorted(seen) == ["Oslo", "Rome"]
        tool_lines = [line for line in server.requests[1].transcript() if line[0] == "tool"]
        assert sorted(tool_lines) == [("tool", "sunny in Oslo"), ("tool", "sunny in Rome")]

    run(body)


def test_streaming_text_arrives_in_pieces() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.text("one two three four"))
        async with agent_on(server) as agent:
            stream = agent.run("count", stream=True)
            pieces = [update.text async for update in stream]
            final = await stream.get_final_response()
        assert len([p for p in pieces if p]) > 1
        assert "".join(pieces) == final.text == "one two three four"
        assert final.usage_details is not None and final.usage_details["total_token_count"] > 0
        [request] = server.requests
        assert request.body["stream"] is True and request.body["stream_options"] == {"include_usage": True}

    run(body)


def test_streamed_tool_call_is_reassembled_and_run_once() -> None:
    get_weather, seen = tool_spy()

    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.tool_call("get_weather", {"city": "Lima"}), Reply.text("Sunny in Lima."))
        async with agent_on(server, tools=[get_weather]) as agent:
            stream = agent.run("Lima?", stream=True)
            async for _ in stream:
                pass
            final = await stream.get_final_response()
        assert final.text == "Sunny in Lima."
        assert seen == ["Lima"]
        assert server.requests[1].transcript()[-1] == ("tool", "sunny in Lima")

    run(body)


def test_structured_output_with_a_pydantic_model() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.json({"city": "Oslo", "celsius": 3}), Reply.json({"city": "Bergen", "celsius": 9}))
        async with agent_on(server) as agent:
            response = await agent.run("Oslo?", options={"response_format": Weather})
            stream = agent.run("Bergen?", stream=True, options={"response_format": Weather})
            async for _ in stream:
                pass
            streamed = await stream.get_final_response()
        assert response.value == Weather(city="Oslo", celsius=3)
        assert streamed.value == Weather(city="Bergen", celsius=9)
        response_format = server.requests[0].body["response_format"]
        assert response_format["type"] == "json_schema"
        assert response_format["json_schema"]["schema"]["required"] == ["city", "celsius"]

    run(body)


def test_structured_output_with_a_json_schema() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}

    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.json({"answer": 42}))
        async with agent_on(server) as agent:
            response = await agent.run("6 x 7?", options={"response_format": schema})
        assert response.value == {"answer": 42}
        assert server.requests[0].body["response_format"]["type"] == "json_schema"

    run(body)


# Failures and the openai client's retries ---------------------------------------------------------


def test_500_surfaces_as_chat_client_exception_after_the_sdks_two_retries() -> None:
    # The openai SDK retries 408/409/429/5xx twice by default (max_retries=2), so one failing run is
    # three HTTP requests. retry_after keeps the backoff short (the SDK honours retry-after-ms).
    async def body(server: FakeOpenAIServer) -> None:
        server.script(*[Reply.error(500, retry_after=0.01)] * 3)
        async with agent_on(server) as agent:
            with pytest.raises(ChatClientException) as raised:
                await agent.run("hi")
        assert isinstance(raised.value.__cause__, openai.InternalServerError)
        assert [r.status for r in server.requests] == [500, 500, 500]

    run(body)


def test_429_then_success_is_retried_by_the_sdk_honouring_retry_after() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.error(429, retry_after=0.01), Reply.text("after the wait"))
        async with agent_on(server) as agent:
            assert (await agent.run("hi")).text == "after the wait"
        assert [r.status for r in server.requests] == [429, 200]

    run(body)


def test_429_with_retries_off_fails_on_the_first_request() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.error(429, retry_after=30))
        sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        async with sdk:
            agent = Agent(client=OpenAIChatCompletionClient(model="fake-model", async_client=sdk))
            with pytest.raises(ChatClientException) as raised:
                await agent.run("hi")
        cause = raised.value.__cause__
        assert isinstance(cause, openai.RateLimitError)
        assert cause.response.headers["retry-after"] == "30"
        assert cause.body == {
            "message": "Scripted failure: HTTP 429.",
            "type": "rate_limit_exceeded",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        assert len(server.requests) == 1

    run(body)


def test_400_is_not_retried() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.error(400, {"error": {"message": "bad prompt", "type": "invalid_request_error"}}))
        async with agent_on(server) as agent:
            with pytest.raises(ChatClientException) as raised:
                await agent.run("hi")
        assert isinstance(raised.value.__cause__, openai.BadRequestError)
        assert len(server.requests) == 1

    run(body)


def test_a_slow_reply_times_the_client_out() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.text("too late", delay_seconds=0.5))
        sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=0.05)
        async with sdk:
            agent = Agent(client=OpenAIChatCompletionClient(model="fake-model", async_client=sdk))
            with pytest.raises(ChatClientException) as raised:
                await agent.run("hi")
        assert isinstance(raised.value.__cause__, openai.APITimeoutError)

    run(body)


def test_history_with_an_unanswered_tool_call_is_refused_like_the_service_does() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.text("never sent"))
        messages: list[Any] = [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "user", "content": "and?"},
        ]
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0) as sdk:
            with pytest.raises(openai.BadRequestError, match="call_1"):
                await sdk.chat.completions.create(model="fake-model", messages=messages)
        assert [r.status for r in server.requests] == [400]
        assert server.pending == 1  # a refused request consumes no scripted reply

    run(body)


def test_api_key_is_checked_when_the_server_demands_one() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="wrong", max_retries=0) as sdk:
            with pytest.raises(openai.AuthenticationError):
                await sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="sesame", max_retries=0) as sdk:
            answer = await sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].message.content == "echo: x"
        assert [r.status for r in server.requests] == [401, 200]

    run(body, api_key="sesame")


# Responses API ------------------------------------------------------------------------------------


def test_responses_api_plain_and_streamed() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.text("plain answer"), Reply.text("streamed answer here"))
        async with agent_on(server, responses, instructions="Be kind.") as agent:
            plain = await agent.run("one")
            stream = agent.run("two", stream=True)
            pieces = [update.text async for update in stream]
            streamed = await stream.get_final_response()
        assert plain.text == "plain answer"
        assert streamed.text == "streamed answer here" and len([p for p in pieces if p]) > 1
        assert streamed.usage_details is not None and streamed.usage_details["total_token_count"] > 0
        first, second = server.requests
        assert first.path == "/v1/responses" and first.api == "responses"
        assert first.transcript() == [("system", "Be kind."), ("user", "one")]
        assert second.body["stream"] is True

    run(body)


def test_responses_store_keeps_service_session_id_and_previous_turns_server_side() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.text("Hi Ada."), Reply.text("You are Ada."), Reply.text("Still Ada."))
        async with agent_on(server, responses, default_options={"store": True}) as agent:
            session = agent.create_session()
            await agent.run("I am Ada.", session=session)
            first_id = session.service_session_id
            second = await agent.run("Who am I?", session=session)
            second_id = session.service_session_id
            stream = agent.run("Again?", session=session, stream=True)
            async for _ in stream:
                pass
            await stream.get_final_response()
        assert second.text == "You are Ada."
        first, second_request, third = server.requests
        assert isinstance(first_id, str) and first_id.startswith("resp_")
        assert first.body["store"] is True and "previous_response_id" not in first.body
        # The client sends only the new turn; the server supplies the rest from its store.
        assert second_request.body["previous_response_id"] == first_id
        assert [item["role"] for item in second_request.body["input"]] == ["user"]
        assert second_request.transcript() == [
            ("user", "I am Ada."),
            ("assistant", "Hi Ada."),
            ("user", "Who am I?"),
        ]
        assert isinstance(second_id, str) and second_id != first_id
        assert third.body["previous_response_id"] == second_id
        assert session.service_session_id not in (first_id, second_id)  # streaming moved it on too
        assert server.conversation(second_id)[-1]["content"][0]["text"] == "You are Ada."

    run(body)


def test_responses_tool_call_continues_from_the_stored_response() -> None:
    get_weather, seen = tool_spy()

    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.tool_call("get_weather", {"city": "Quito"}), Reply.text("Sunny in Quito."))
        async with agent_on(server, responses, tools=[get_weather]) as agent:
            session = agent.create_session()
            response = await agent.run("Quito?", session=session)
        assert response.text == "Sunny in Quito." and seen == ["Quito"]
        first, second = server.requests
        assert [item["type"] for item in second.body["input"]] == ["function_call_output"]
        assert "previous_response_id" not in first.body
        # The continued response is the one that asked for the tool; the output answers its call.
        held = server.conversation(second.body["previous_response_id"])
        assert held[-1]["type"] == "function_call"
        assert held[-1]["call_id"] == second.body["input"][0]["call_id"]
        assert second.transcript()[-2:] == [
            ("tool_call", 'get_weather({"city": "Quito"})'),
            ("tool", "sunny in Quito"),
        ]

    run(body)


def test_responses_unknown_previous_response_id_is_a_400() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        async with agent_on(server, responses) as agent:
            with pytest.raises(ChatClientException) as raised:
                await agent.run("hi", session=agent.get_session("resp_unknown"))
        assert isinstance(raised.value.__cause__, openai.BadRequestError)
        assert "resp_unknown" in str(raised.value.__cause__)
        assert [r.status for r in server.requests] == [400]

    run(body)


def test_responses_without_store_resend_the_history() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.text("first"), Reply.text("second"))
        async with agent_on(server, responses, default_options={"store": False}) as agent:
            session = agent.create_session()
            await agent.run("one", session=session)
            await agent.run("two", session=session)
        assert session.service_session_id is None
        second = server.requests[1]
        assert "previous_response_id" not in second.body
        assert second.transcript() == [("user", "one"), ("assistant", "first"), ("user", "two")]

    run(body)


def test_responses_structured_output() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        server.script(Reply.json({"city": "Oslo", "celsius": -2}))
        async with agent_on(server, responses) as agent:
            response = await agent.run("Oslo?", options={"response_format": Weather})
        assert response.value == Weather(city="Oslo", celsius=-2)
        assert server.requests[0].body["text"]["format"]["type"] == "json_schema"

    run(body)


def test_responses_can_be_retrieved_and_deleted_and_models_listed() -> None:
    async def body(server: FakeOpenAIServer) -> None:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0) as sdk:
            created = await sdk.responses.create(model="fake-model", input="hello")
            assert created.output_text == "echo: hello"
            assert (await sdk.responses.retrieve(created.id)).output_text == "echo: hello"
            await sdk.responses.delete(created.id)
            with pytest.raises(openai.NotFoundError):
                await sdk.responses.retrieve(created.id)
            assert [m.id async for m in sdk.models.list()] == ["fake-model"]

    run(body)


# Threads, other processes, the CLI ----------------------------------------------------------------


def test_sync_code_runs_the_server_in_a_thread() -> None:
    server = FakeOpenAIServer().start_in_thread()
    try:
        server.script(Reply.text("from a thread"))
        with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as sdk:
            answer = sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].message.content == "from a thread"
        assert len(server.requests) == 1
    finally:
        server.stop()
    server.stop()  # stopping twice is harmless
    with (
        FakeOpenAIServer() as again,
        openai.OpenAI(base_url=again.base_url, api_key="test", max_retries=0) as sdk,
    ):
        assert sdk.responses.create(model="fake-model", input="y").output_text == "echo: y"


def test_a_port_in_use_fails_the_start_in_the_caller() -> None:
    with FakeOpenAIServer() as first:
        with pytest.raises(RuntimeError, match="did not start") as failed:
            FakeOpenAIServer(port=first.port).start_in_thread()
        assert isinstance(failed.value.__cause__, OSError)


def test_env_points_agent_framework_clients_at_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(server: FakeOpenAIServer) -> None:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        client = OpenAIChatCompletionClient()  # everything from OPENAI_* settings, as in the subprocess case
        try:
            assert (await Agent(client=client).run("env")).text == "echo: env"
        finally:
            await client.client.close()
        assert server.requests[0].body["model"] == "fake-model"

    run(body)


def test_control_endpoints_program_and_inspect_the_server() -> None:
    with FakeOpenAIServer() as server:
        remote = RemoteFakeOpenAIServer(server.base_url)
        remote.script(Reply.text("scripted remotely"), Reply.tool_call("f", {"a": 1}))
        assert server.pending == 2
        remote.clear_script()
        remote.script(Reply.json({"ok": True}))
        with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as sdk:
            answer = sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == '{"ok": true}'
        [seen] = remote.requests()
        assert seen == server.requests[0]
        assert seen.transcript() == [("user", "hi")]
        remote.clear_requests()
        assert remote.requests() == []
        bad = urllib.request.Request(server.url + "/_script", data=b'[{"nonsense": 1}]', method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=10)
        assert refused.value.code == 400
        refused.value.close()


def test_cli_serves_standalone_with_a_script_file(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": "from the file"}, {"error": 503}]))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "durableagent.testing.openai_server",
            "--port",
            "0",
            "--script-file",
            str(script),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with openai.OpenAI(base_url=base_url, api_key="test", max_retries=0) as sdk:
            answer = sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "q"}])
            assert answer.choices[0].message.content == "from the file"
            with pytest.raises(openai.InternalServerError):
                sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "q"}])
        assert [r.status for r in RemoteFakeOpenAIServer(base_url).requests()] == [200, 503]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        process.stdout.close()  # type: ignore[union-attr]


# The script's own contract ------------------------------------------------------------------------


def test_replies_round_trip_through_their_wire_form() -> None:
    replies = [
        Reply.text("hi", delay_seconds=0.5),
        Reply.json({"a": [1, 2]}),
        Reply.tool_call("f", {"x": 1}, call_id="call_9"),
        Reply.tool_calls(ToolCall("f"), ToolCall("g", {"y": 2}), text="calling"),
        Reply.error(429, retry_after=1.5),
        Reply.error(500, {"error": {"message": "boom"}}, headers={"x-should-retry": "false"}),
    ]
    for reply in replies:
        assert Reply.from_dict(json.loads(json.dumps(reply.to_dict()))) == reply
    assert [r.kind for r in replies] == ["text", "text", "tool_calls", "tool_calls", "error", "error"]
    assert replies[4].headers == {"Retry-After": "2", "retry-after-ms": "1500"}


@pytest.mark.parametrize(
    "wire",
    [
        {},
        {"text": 1},
        {"error": "500"},
        {"tool_calls": [{"arguments": {}}]},
        {"text": "x", "delay_seconds": -1},
        {"txt": "typo"},
        {"error": 200},
    ],
)
def test_malformed_wire_replies_are_refused(wire: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Reply.from_dict(wire)


def test_recorded_requests_round_trip() -> None:
    record = RecordedRequest("/v1/responses", {"input": "x"}, {"a": "b"}, [{"role": "user", "content": "x"}], 200)
    assert RecordedRequest.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert record.api == "responses" and record.transcript() == [("user", "x")]


def test_export_list_is_pinned() -> None:
    # Widening the test kit's public API is a decision: change this list on purpose.
    assert sorted(durableagent.testing.__all__) == [
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
