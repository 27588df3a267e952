"""Durable HTTP: the shim's ``CallHttpAsync`` (ids, 202 polling, bounds) and the built-in HTTP activity.

The activity is exercised against an aiohttp server on loopback started by each test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web

from durableagent.devhost import _history as h
from durableagent.devhost._activities import BuiltInActivityError
from durableagent.devhost._durable_http import HTTP_ACTIVITY, normalize_request
from durableagent.devhost._history import EventType, HistoryEvent
from durableagent.devhost._http_activity import DurableHttpActivity
from durableagent.devhost._replay import CALL_HTTP, CreateTimer, InstanceRef, ReplayResult, ScheduleActivity, ShimReplay

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
INSTANCE = InstanceRef("i1", "e1")


def run(coroutine: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(coroutine(), 30))


# The wire ----------------------------------------------------------------------------------------------


def test_python_sdk_requests_do_not_ask_for_polling() -> None:
    # What azure-functions-durable 1.x sends: no asynchronousPatternEnabled, so the extension reads false.
    request = normalize_request(
        {
            "method": "POST",
            "uri": "http://example.invalid/x",
            "content": '{"a": 1}',
            "headers": {"X-One": "1", "x-two": ["a", "b"]},
            "tokenSource": {"resource": "https://management.core.windows.net", "kind": "AzureManagedIdentity"},
        }
    )
    assert request["asynchronousPatternEnabled"] is False
    assert request["headers"] == {"X-One": ["1"], "x-two": ["a", "b"]}
    # ManagedIdentityTokenSource turns the bare ARM resource into its scope.
    assert request["tokenSource"]["resource"] == "https://management.core.windows.net/.default"
    assert normalize_request({"uri": "http://h/"})["method"] == "GET"


# The shim ----------------------------------------------------------------------------------------------


def _action(asynchronous: bool | None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "GET", "uri": "http://api.test/start", "headers": headers or {}}
    if asynchronous is not None:
        request["asynchronousPatternEnabled"] = asynchronous
    return {"actionType": CALL_HTTP, "httpRequest": request}


def _response(status: int, headers: dict[str, Any] | None = None, content: str = "") -> str:
    return json.dumps({"statusCode": status, "headers": headers or {}, "content": content})


def _start() -> list[HistoryEvent]:
    return [
        h.orchestrator_started(T0),
        h.execution_started(
            T0, instance_id="i1", execution_id="e1", name="o", version="", input_json=None, parent=None
        ),
    ]


def _replay(actions: list[dict[str, Any]], history: list[HistoryEvent], new_from: int, **options: Any) -> ReplayResult:
    return ShimReplay(INSTANCE, actions, **options).run(history, new_from)


def _recorded(result: ReplayResult) -> list[HistoryEvent]:
    return [event for _, event in result.decisions]


def test_first_episode_schedules_the_built_in_activity() -> None:
    result = _replay([_action(None, {"x-functions-key": "k"})], _start(), 0)
    [(decision, event)] = result.decisions
    assert isinstance(decision, ScheduleActivity)
    assert (decision.task_id, decision.name) == (0, HTTP_ACTIVITY)
    assert event.type == EventType.TASK_SCHEDULED
    assert event.get("Name") == "BuiltIn::HttpActivity"
    # ScheduleTask's parameters array holds the request object (not a string, as for app activities).
    [scheduled] = json.loads(event.get("Input"))
    assert scheduled["uri"] == "http://api.test/start"
    assert scheduled["asynchronousPatternEnabled"] is False
    assert json.loads(str(decision.input)) == scheduled


def _after_first_answer(status: int, headers: dict[str, Any], asynchronous: bool | None, **options: Any) -> Any:
    t1 = T0 + timedelta(seconds=3)
    history = [
        *_start(),
        HistoryEvent(EventType.TASK_SCHEDULED, T0, 0, {"Name": HTTP_ACTIVITY}),
        h.orchestrator_completed(T0),
        h.orchestrator_started(t1),
        h.task_completed(t1, 0, _response(status, headers)),
    ]
    return t1, history, _replay([_action(asynchronous, {"x-functions-key": "k", "Accept": "a"})], history, 3, **options)


def test_a_202_is_the_answer_when_polling_was_not_asked_for() -> None:
    _, _, result = _after_first_answer(202, {"Location": "http://api.test/status", "Retry-After": "5"}, None)
    assert result.decisions == []
    assert result.walk_finished


def test_polling_waits_retry_after_then_gets_location_without_the_function_key() -> None:
    t1, history, result = _after_first_answer(202, {"location": "http://api.test/status", "retry-after": "5"}, True)
    [(timer, timer_event)] = result.decisions
    assert isinstance(timer, CreateTimer)
    assert timer.task_id == 1
    assert timer.fire_at == t1 + timedelta(seconds=5)
    assert not result.walk_finished
    # The timer fires: the poll is the next sequence id, a GET of Location.
    t2 = t1 + timedelta(seconds=5)
    history += [
        timer_event,
        h.orchestrator_completed(t1),
        h.orchestrator_started(t2),
        h.timer_fired(t2, 1, h.format_timestamp(t2)),
    ]
    actions = [_action(True, {"x-functions-key": "k", "Accept": "a"})]
    result = _replay(actions, history, len(history) - 2)
    [(poll, poll_event)] = result.decisions
    assert isinstance(poll, ScheduleActivity)
    assert poll.task_id == 2
    [request] = json.loads(poll_event.get("Input"))
    assert (request["method"], request["uri"]) == ("GET", "http://api.test/status")
    assert request["headers"] == {"Accept": "a"}
    # A final answer ends the call.
    t3 = t2 + timedelta(seconds=1)
    history += [
        poll_event,
        h.orchestrator_completed(t2),
        h.orchestrator_started(t3),
        h.task_completed(t3, 2, _response(200)),
    ]
    result = _replay(actions, history, len(history) - 2)
    assert result.decisions == []
    assert result.walk_finished


def test_polling_without_retry_after_sleeps_the_configured_interval() -> None:
    t1, _, result = _after_first_answer(
        202, {"Location": "http://api.test/status"}, True, http_poll_interval=timedelta(milliseconds=1500)
    )
    [(timer, _)] = result.decisions
    assert isinstance(timer, CreateTimer)
    assert timer.fire_at == t1 + timedelta(milliseconds=1500)


def test_polling_is_bounded_by_max_orchestration_actions() -> None:
    # The call itself is one action and each poll two (timer and request): with 2 allowed, no poll.
    _, _, result = _after_first_answer(
        202, {"Location": "http://api.test/status", "Retry-After": "1"}, True, max_actions=2
    )
    assert result.decisions == []
    assert result.walk_finished  # the call's task faulted; the shim moves on, as the extension's does
    assert "Maximum amount of orchestration actions (2) has been reached" in result.warnings[0]


# The activity ----------------------------------------------------------------------------------------


@asynccontextmanager
async def serve(routes: list[web.RouteDef]) -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        await request.read()
        seen.append(request)
        response: web.StreamResponse = await handler(request)
        return response

    application = web.Application(middlewares=[record])
    application.add_routes(routes)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def _echo(request: web.Request) -> web.Response:
    body = await request.text()
    return web.json_response(
        {"method": request.method, "body": body, "type": request.headers.get("Content-Type")},
        headers={"X-Reply": "1", "Set-Cookie": "a=1"},
    )


def test_the_activity_sends_the_request_and_answers_like_durable_http_response() -> None:
    async def body() -> None:
        activity = DurableHttpActivity()
        try:
            async with serve([web.route("*", "/echo", _echo)]) as (base, seen):
                request = {"method": "POST", "uri": f"{base}/echo", "headers": {"X-In": ["a", "b"]}, "content": "hi"}
                answer = json.loads(await activity(json.dumps(request)))
        finally:
            await activity.close()
        assert answer["statusCode"] == 200
        assert json.loads(answer["content"]) == {"method": "POST", "body": "hi", "type": "text/plain"}
        # Response headers only: .NET keeps Content-Type and Content-Length among the content headers.
        assert answer["headers"]["X-Reply"] == "1"
        assert "Content-Type" not in answer["headers"] and "Content-Length" not in answer["headers"]
        assert seen[0].headers.getall("X-In") == ["a", "b"]

    run(body)


def test_a_user_timeout_fails_with_the_extensions_timeout_message() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def body() -> None:
        activity = DurableHttpActivity()
        try:
            async with serve([web.get("/slow", slow)]) as (base, _):
                with pytest.raises(BuiltInActivityError) as info:
                    await activity(json.dumps({"uri": f"{base}/slow", "timeout": "00:00:00.2000000"}))
        finally:
            await activity.close()
        assert info.value.reason == "The operation was canceled. Reached user specified timeout: 00:00:00.2000000."
        assert json.loads(str(info.value.details))["ClassName"] == "System.TimeoutException"

    run(body)


def test_a_response_body_beyond_the_limit_fails_the_task() -> None:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    async def body() -> None:
        activity = DurableHttpActivity(max_response_bytes=4096)
        try:
            async with serve([web.get("/big", big)]) as (base, _):
                with pytest.raises(BuiltInActivityError, match="maximum buffer size: 4096"):
                    await activity(json.dumps({"uri": f"{base}/big"}))
        finally:
            await activity.close()

    run(body)


@pytest.mark.parametrize(
    ("request_json", "reason"),
    [
        ({"uri": "relative/path"}, "An invalid request URI was provided."),
        ({"uri": "ftp://127.0.0.1/x"}, "The 'ftp' scheme is not supported."),
        (
            {"uri": "http://127.0.0.1:9/", "content": "x", "headers": {"Content-Type": "multipart/form-data"}},
            "Multipart content is not supported with CallHttpAsync.",
        ),
        ({"uri": "http://127.0.0.1:9/"}, "Connection refused (127.0.0.1:9)"),
    ],
)
def test_requests_the_extension_refuses(request_json: dict[str, Any], reason: str) -> None:
    async def body() -> None:
        activity = DurableHttpActivity()
        try:
            with pytest.raises(BuiltInActivityError) as info:
                await activity(json.dumps(request_json))
        finally:
            await activity.close()
        assert info.value.reason.startswith(reason)

    run(body)
