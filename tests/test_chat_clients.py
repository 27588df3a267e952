"""The in-process chat clients: ``ScriptedChatClient`` (tests), ``OfflineChatClient`` (apps without a model).

Both run under the REAL ``agent_framework.Agent``: its sessions, function-invocation loop,
streaming and structured output.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from agent_framework import Agent, Message, tool
from agent_framework.exceptions import ChatClientException
from pydantic import BaseModel

from durableagent.testing import OfflineChatClient, Reply, ScriptedChatClient, ScriptedModelError, ToolCall

T = TypeVar("T")


def run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


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


# ScriptedChatClient -------------------------------------------------------------------------------


def test_scripted_text_reply_and_recorded_call() -> None:
    client = ScriptedChatClient(Reply.text("Hello there."))
    agent = Agent(client=client, name="Tester", instructions="Be brief.")
    response = run(agent.run("hi"))
    assert response.text == "Hello there."
    assert response.usage_details is not None and response.usage_details["total_token_count"] > 0
    [call] = client.calls
    assert call.transcript() == [("system", "Be brief."), ("user", "hi")]
    assert call.stream is False and client.pending == 0


def test_scripted_default_echo_and_responder() -> None:
    client = ScriptedChatClient()
    agent = Agent(client=client)

    async def body() -> list[str]:
        answers = [(await agent.run("ping")).text]
        client.set_responder(lambda messages: Reply.text(f"saw {len(messages)}"))
        answers.append((await agent.run("x")).text)
        client.script(Reply.text("scripted"))
        answers.append((await agent.run("y")).text)
        client.set_responder(None)
        answers.append((await agent.run("back")).text)
        return answers

    assert run(body()) == ["echo: ping", "saw 1", "scripted", "echo: back"]
    assert len(client.calls) == 4
    client.clear_calls()
    assert client.calls == []


def test_scripted_session_second_turn_sees_the_first() -> None:
    client = ScriptedChatClient(Reply.text("Nice to meet you."), Reply.text("You are Ada."))
    agent = Agent(client=client)

    async def body() -> str:
        session = agent.create_session()
        await agent.run("I am Ada.", session=session)
        return (await agent.run("Who am I?", session=session)).text

    assert run(body()) == "You are Ada."
    assert client.calls[1].transcript() == [
        ("user", "I am Ada."),
        ("assistant", "Nice to meet you."),
        ("user", "Who am I?"),
    ]


def test_scripted_tool_call_runs_once_through_the_function_loop() -> None:
    get_weather, seen = tool_spy()
    client = ScriptedChatClient(Reply.tool_call("get_weather", {"city": "Paris"}), Reply.text("Sunny."))
    agent = Agent(client=client, tools=[get_weather])
    assert run(agent.run("Paris?")).text == "Sunny."
    assert seen == ["Paris"]
    first, second = client.calls
    assert [t.name for t in first.options["tools"]] == ["get_weather"]
    assert second.transcript()[-2:] == [
        ("tool_call", 'get_weather({"city": "Paris"})'),
        ("tool", "sunny in Paris"),
    ]


def test_scripted_parallel_tool_calls() -> None:
    get_weather, seen = tool_spy()
    client = ScriptedChatClient(
        Reply.tool_calls(ToolCall("get_weather", {"city": "Oslo"}), ToolCall("get_weather", {"city": "Rome"})),
        Reply.text("Both sunny."),
    )
    assert run(Agent(client=client, tools=[get_weather]).run("Oslo and Rome?")).text == "Both sunny."
    assert sorted(seen) == ["Oslo", "Rome"]
    assert [line for line in client.calls[1].transcript() if line[0] == "tool"] == [
        ("tool", "sunny in Oslo"),
        ("tool", "sunny in Rome"),
    ]


def test_scripted_streaming_text_and_tools() -> None:
    get_weather, seen = tool_spy()
    client = ScriptedChatClient(
        Reply.text("one two three"),
        Reply.tool_call("get_weather", {"city": "Lima"}),
        Reply.text("Sunny in Lima."),
    )
    agent = Agent(client=client, tools=[get_weather])

    async def body() -> tuple[list[str], str, str]:
        stream = agent.run("count", stream=True)
        pieces = [update.text async for update in stream]
        final = await stream.get_final_response()
        second = agent.run("Lima?", stream=True)
        async for _ in second:
            pass
        return pieces, final.text, (await second.get_final_response()).text

    pieces, text, with_tool = run(body())
    assert len([p for p in pieces if p]) > 1 and "".join(pieces) == text == "one two three"
    assert with_tool == "Sunny in Lima." and seen == ["Lima"]
    assert all(call.stream for call in client.calls)


def test_scripted_structured_output_plain_and_streamed() -> None:
    client = ScriptedChatClient(Reply.json({"city": "Oslo", "celsius": 3}), Reply.json({"city": "Rome", "celsius": 20}))
    agent = Agent(client=client)

    async def body() -> tuple[Any, Any]:
        plain = await agent.run("Oslo?", options={"response_format": Weather})
        stream = agent.run("Rome?", stream=True, options={"response_format": Weather})
        async for _ in stream:
            pass
        return plain.value, (await stream.get_final_response()).value

    assert run(body()) == (Weather(city="Oslo", celsius=3), Weather(city="Rome", celsius=20))
    assert client.calls[0].options["response_format"] is Weather


def test_scripted_error_raises_a_chat_client_exception_and_the_session_stays_usable() -> None:
    client = ScriptedChatClient(Reply.error(429, retry_after=2), Reply.text("recovered"))
    agent = Agent(client=client)

    async def body() -> str:
        session = agent.create_session()
        with pytest.raises(ChatClientException) as raised:
            await agent.run("first", session=session)
        failure = raised.value
        assert isinstance(failure, ScriptedModelError)
        assert failure.status_code == 429 and failure.headers["Retry-After"] == "2"
        assert failure.body["error"]["type"] == "rate_limit_exceeded"
        return (await agent.run("second", session=session)).text

    assert run(body()) == "recovered"
    assert client.calls[1].transcript()[-1] == ("user", "second")


def test_scripted_streaming_error_raises_while_iterating() -> None:
    client = ScriptedChatClient(Reply.error(500))

    async def body() -> None:
        stream = Agent(client=client).run("x", stream=True)
        with pytest.raises(ScriptedModelError):
            async for _ in stream:
                pass

    run(body())


def test_scripted_delay_is_awaited_not_slept() -> None:
    # A long scripted delay can be cancelled at once: it waits on the event loop, never blocks it.
    client = ScriptedChatClient(Reply.text("late", delay_seconds=30))
    agent = Agent(client=client)

    async def body() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):  # what wait_for raises on 3.10 (TimeoutError from 3.11)
            await asyncio.wait_for(agent.run("hurry"), timeout=0.05)
        return loop.time() - started

    assert run(body()) < 10
    assert len(client.calls) == 1


def test_scripted_client_answers_get_response_directly() -> None:
    client = ScriptedChatClient(Reply.text("direct"), model="my-model")
    response = run(client.get_response([Message(role="user", contents=["hi"])]))
    assert response.text == "direct" and response.model == "my-model"


def test_scripted_client_without_records_keeps_no_call_and_numbers_its_responses() -> None:
    # A long-running app (the benchmarks) must not keep every message the model saw.
    client = ScriptedChatClient(Reply.text("one"), record_calls=False)
    first = run(client.get_response([Message(role="user", contents=["hi"])]))
    second = run(client.get_response([Message(role="user", contents=["again"])]))
    assert (first.text, second.text) == ("one", "echo: again")
    assert client.calls == []
    assert (first.response_id, second.response_id) == ("scripted-1", "scripted-2")


def test_scripted_response_ids_keep_counting_after_the_records_are_cleared() -> None:
    client = ScriptedChatClient()
    run(client.get_response([Message(role="user", contents=["a"])]))
    client.clear_calls()
    later = run(client.get_response([Message(role="user", contents=["b"])]))
    assert later.response_id == "scripted-2" and len(client.calls) == 1


# OfflineChatClient --------------------------------------------------------------------------------


def test_offline_agent_answers_deterministically_and_says_it_is_offline() -> None:
    async def body() -> list[str]:
        first = Agent(client=OfflineChatClient(), name="Assistant", instructions="Be helpful.")
        second = Agent(client=OfflineChatClient(), name="Other", instructions="Different instructions.")
        session = first.create_session()
        return [
            (await first.run("hi")).text,
            (await second.run("hi")).text,
            (await first.run("earlier", session=session)).text,
            (await first.run("hi", session=session)).text,
        ]

    answers = run(body())
    assert answers[0] == "[offline model] You said: hi"
    assert answers[0] == answers[1] == answers[3]  # only the last user message matters
    assert answers[2] == OfflineChatClient().reply_for("earlier")


def test_offline_streaming_matches_the_plain_answer() -> None:
    agent = Agent(client=OfflineChatClient())

    async def body() -> tuple[str, str]:
        plain = (await agent.run("stream me")).text
        stream = agent.run("stream me", stream=True)
        pieces = [update.text async for update in stream]
        assert (await stream.get_final_response()).text == plain
        return plain, "".join(pieces)

    plain, streamed = run(body())
    assert plain == streamed == "[offline model] You said: stream me"


def test_offline_logs_once_per_client(caplog: pytest.LogCaptureFixture) -> None:
    agent = Agent(client=OfflineChatClient())
    with caplog.at_level(logging.WARNING, logger="durableagent.testing"):
        run(agent.run("one"))
        run(agent.run("two"))
    offline = [r for r in caplog.records if "offline model" in r.getMessage()]
    assert len(offline) == 1 and offline[0].levelno == logging.WARNING


def test_offline_structured_output_has_the_requested_shape() -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array"}, "done": {"type": "boolean"}},
        "required": ["title", "tags", "done"],
    }
    agent = Agent(client=OfflineChatClient())

    async def body() -> tuple[Any, Any]:
        typed = await agent.run("Oslo?", options={"response_format": Weather})
        raw = await agent.run("todo", options={"response_format": schema})
        return typed.value, raw.value

    typed, raw = run(body())
    assert typed == Weather(city="[offline model] You said: Oslo?", celsius=0)
    assert raw == {"title": "[offline model] You said: todo", "tags": [], "done": False}


def test_offline_ignores_tools() -> None:
    get_weather, seen = tool_spy()
    response = run(Agent(client=OfflineChatClient(), tools=[get_weather]).run("Weather in Paris?"))
    assert response.text == "[offline model] You said: Weather in Paris?" and seen == []
