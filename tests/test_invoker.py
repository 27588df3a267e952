"""Invoking functions with the worker's semantics, through the real azure.functions converters."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import typing
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, TypeVar  # noqa: UP035 - Dict: see the echo activity

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequest

from durableagent.devhost._app_loader import index_function_app
from durableagent.devhost._binding_expressions import BindingExpressionError
from durableagent.devhost._functions import IndexedFunction
from durableagent.devhost._invoker import (
    FunctionInvocationError,
    FunctionLoadError,
    HttpRequestData,
    HttpResponseData,
    Invoker,
    UnsupportedBindingError,
)
from durableagent.devhost._trigger_input import TriggerInput

T = TypeVar("T")

CLIENT_BINDING = {
    "taskHubName": "TestHubName",
    "creationUrls": {},
    "managementUrls": {"id": "INSTANCEID"},
    "baseUrl": "http://localhost:7071/runtime/webhooks/durabletask",
    "requiredQueryStringParameters": "",
    "rpcBaseUrl": "http://127.0.0.1:17071/durabletask/",
}


class FakeSink:
    """Records queue outputs as the invoker hands them over."""

    def __init__(self) -> None:
        self.queued: list[tuple[dict[str, Any], Datum]] = []

    async def queue(self, binding: dict[str, Any], datum: Datum) -> None:
        self.queued.append((binding, datum))


def run(awaitable: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await awaitable()

    return asyncio.run(main())


def functions_of(app: func.FunctionRegister) -> dict[str, IndexedFunction]:
    return {f.name: f for f in index_function_app(app)}


def make_invoker(
    app: func.FunctionRegister, **kwargs: Any
) -> tuple[Invoker, dict[str, IndexedFunction], list[str | None]]:
    """An invoker for every function of ``app``; the list records origins asked for client bindings."""
    origins: list[str | None] = []

    def client_binding_json(origin: str | None) -> str:
        origins.append(origin)
        return json.dumps(CLIENT_BINDING)

    functions = functions_of(app)
    kwargs.setdefault("output_sink", FakeSink())
    invoker = Invoker(functions.values(), client_binding_json=client_binding_json, **kwargs)
    return invoker, functions, origins


def http_request(
    url: str = "http://localhost:7071/api/items/42?q=1&empty=",
    *,
    method: str = "POST",
    body: bytes = b'{"a": 1}',
    route_params: dict[str, str] | None = None,
) -> HttpRequestData:
    return HttpRequestData(
        method=method,
        url=url,
        headers={"Content-Type": "application/json", "X-Custom": "v"},
        query={"q": "1", "empty": ""},
        route_params=route_params if route_params is not None else {"id": "42"},
        body=body,
    )


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


def test_http_request_reaches_the_function_like_the_worker_builds_it() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    seen: dict[str, Any] = {}

    @app.route(route="items/{id}", methods=["POST"])
    def items(req: func.HttpRequest) -> func.HttpResponse:
        seen.update(
            method=req.method,
            url=req.url,
            headers=dict(req.headers),
            params=dict(req.params),
            route_params=dict(req.route_params),
            body=req.get_body(),
            json=req.get_json(),
        )
        return func.HttpResponse(
            json.dumps({"id": req.route_params["id"]}),
            status_code=201,
            headers={"X-Out": "yes"},
            mimetype="application/json",
        )

    invoker, functions, _ = make_invoker(app)
    response = run(lambda: invoker.invoke_http(functions["items"], http_request()))
    assert seen == {
        "method": "POST",
        "url": "http://localhost:7071/api/items/42?q=1&empty=",
        "headers": {"content-type": "application/json", "x-custom": "v"},
        "params": {"q": "1"},
        "route_params": {"id": "42"},
        "body": b'{"a": 1}',
        "json": {"a": 1},
    }
    assert response.status == 201
    assert dict(response.headers) == {"X-Out": "yes", "content-type": "application/json"}
    assert json.loads(response.body) == {"id": "42"}


def test_empty_body_is_bytes_and_not_json() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="empty")
    def empty(req: func.HttpRequest) -> str:
        try:
            req.get_json()
        except ValueError as exc:
            return f"{req.get_body()!r} {exc}"
        return "parsed"

    invoker, functions, _ = make_invoker(app)
    response = run(lambda: invoker.invoke_http(functions["empty"], http_request(body=b"")))
    assert response.body == b"b'' HTTP request does not contain valid JSON data"


def test_str_return_is_a_200_text_response() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="hello")
    def hello(req: func.HttpRequest) -> str:
        return "Hello, World"

    invoker, functions, _ = make_invoker(app)
    response = run(lambda: invoker.invoke_http(functions["hello"], http_request()))
    assert response == HttpResponseData(200, (("Content-Type", "text/plain; charset=utf-8"),), b"Hello, World")


def test_cookies_become_set_cookie_headers() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="cookie")
    def cookie(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok", headers={"Set-Cookie": "session=abc; Path=/"})

    invoker, functions, _ = make_invoker(app)
    response = run(lambda: invoker.invoke_http(functions["cookie"], http_request()))
    # The host writes cookies through ASP.NET Core: lower-case attribute names.
    assert ("Set-Cookie", "session=abc; path=/") in response.headers


def test_out_http_response_parameter_answers_the_request() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.generic_trigger(arg_name="req", type="httpTrigger", route="out")
    @app.generic_output_binding(arg_name="res", type="http")
    def out(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
        res.set(func.HttpResponse("via Out", status_code=202))

    invoker, functions, _ = make_invoker(app)
    response = run(lambda: invoker.invoke_http(functions["out"], http_request()))
    assert response.status == 202
    assert response.body == b"via Out"


def test_returning_none_from_an_http_function_fails_like_the_worker() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="nothing")
    def nothing(req: func.HttpRequest):  # type: ignore[no-untyped-def]  # "-> None" fails at load
        return None

    invoker, functions, _ = make_invoker(app)
    with pytest.raises(FunctionInvocationError) as info:
        run(lambda: invoker.invoke_http(functions["nothing"], http_request()))
    assert info.value.exception_type == "TypeError"
    assert "unable to encode outgoing TypedData" in info.value.message
    assert 'for Python type "NoneType"' in info.value.message


def test_queue_output_goes_to_the_sink_encoded() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="enqueue")
    @app.queue_output(arg_name="msg", queue_name="out-q", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="many", queue_name="many-q", connection="AzureWebJobsStorage")
    def enqueue(
        req: func.HttpRequest,
        msg: func.Out[str],
        many: func.Out[typing.List[str]],  # noqa: UP006 - the queue converter's check knows typing.List only
    ) -> str:
        msg.set("hello")
        many.set(["a", "b"])
        return "queued"

    sink = FakeSink()
    invoker, functions, _ = make_invoker(app, output_sink=sink)
    response = run(lambda: invoker.invoke_http(functions["enqueue"], http_request()))
    assert response.body == b"queued"
    by_queue = {binding["queueName"]: datum for binding, datum in sink.queued}
    # Out[str] uses the worker's generic binding; a list goes through the queue converter.
    assert by_queue["out-q"] == Datum("hello", "string")
    assert by_queue["many-q"] == Datum(json.dumps(["a", "b"]), "json")


def test_unset_outputs_are_not_sent() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="maybe")
    @app.queue_output(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def maybe(req: func.HttpRequest, msg: func.Out[str]) -> str:
        return "nothing queued"

    sink = FakeSink()
    invoker, functions, _ = make_invoker(app, output_sink=sink)
    run(lambda: invoker.invoke_http(functions["maybe"], http_request()))
    assert sink.queued == []


def test_context_parameter() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="ctx")
    def ctx(req: func.HttpRequest, context: func.Context) -> str:
        local = context.thread_local_storage
        return json.dumps(
            {
                "invocation_id": context.invocation_id,
                "function_name": context.function_name,
                "directory": context.function_directory,
                "trace_parent": context.trace_context.trace_parent,
                "retry_count": context.retry_context.retry_count,
                "thread_local": getattr(local, "invocation_id", None),
            }
        )

    invoker, functions, _ = make_invoker(app)
    request = HttpRequestData(
        method="GET",
        url="http://localhost:7071/api/ctx",
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    response = run(lambda: invoker.invoke_http(functions["ctx"], request, invocation_id="inv-1"))
    seen = json.loads(response.body)
    assert seen["invocation_id"] == "inv-1"
    assert seen["thread_local"] == "inv-1"
    assert seen["function_name"] == "ctx"
    assert seen["directory"] == str(__import__("pathlib").Path(__file__).parent)
    assert seen["trace_parent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert seen["trace_parent"].endswith("-01")
    assert seen["retry_count"] == 0


def test_sync_functions_run_in_threads_and_async_on_the_loop() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    threads: dict[str, int] = {}

    @app.route(route="sync")
    def sync_fn(req: func.HttpRequest) -> str:
        threads["sync"] = threading.get_ident()
        return "sync"

    @app.route(route="async")
    async def async_fn(req: func.HttpRequest) -> str:
        asyncio.get_running_loop()  # raises outside a loop
        threads["async"] = threading.get_ident()
        return "async"

    invoker, functions, _ = make_invoker(app)

    async def both() -> int:
        await invoker.invoke_http(functions["sync_fn"], http_request())
        await invoker.invoke_http(functions["async_fn"], http_request())
        return threading.get_ident()

    loop_thread = run(both)
    assert threads["async"] == loop_thread
    assert threads["sync"] != loop_thread


def test_durable_client_gets_the_binding_json_for_the_request_origin() -> None:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="client")
    @app.durable_client_input(client_name="client")
    async def client_fn(req: func.HttpRequest, client: df.DurableOrchestrationClient, context: func.Context) -> str:
        return f"{client._orchestration_bindings.task_hub_name} {client._function_invocation_id}"

    invoker, functions, origins = make_invoker(app)
    request = http_request("http://127.0.0.1:8080/api/client")
    response = run(lambda: invoker.invoke_http(functions["client_fn"], request, invocation_id="inv-9"))
    assert response.body == b"TestHubName inv-9"
    assert origins == ["http://127.0.0.1:8080"]


# ---------------------------------------------------------------------------------------------
# Failures and timeouts
# ---------------------------------------------------------------------------------------------


def test_failure_is_reported_in_the_worker_format(caplog: pytest.LogCaptureFixture) -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="boom")
    def boom(req: func.HttpRequest) -> str:
        raise ValueError("it broke")

    invoker, functions, _ = make_invoker(app)
    caplog.set_level(logging.INFO, logger="durableagent.devhost.functions")
    with pytest.raises(FunctionInvocationError) as info:
        run(lambda: invoker.invoke_http(functions["boom"], http_request(), invocation_id="inv-2"))
    error = info.value
    assert error.message == "ValueError: it broke"
    assert error.exception_type == "ValueError"
    assert error.exception_message == "it broke"
    assert error.function_name == "boom"
    assert error.invocation_id == "inv-2"
    assert 'raise ValueError("it broke")' in error.stack
    assert not error.stack.startswith("Traceback")
    assert error.host_message() == f"Result: Failure\nException: ValueError: it broke\nStack: {error.stack}"
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("Executing 'Functions.boom' (Reason='This function was programmatically") for m in messages)
    assert any(m.startswith("Executed 'Functions.boom' (Failed, Id=inv-2, Duration=") for m in messages)


def test_success_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="fine")
    def fine(req: func.HttpRequest) -> str:
        return "fine"

    invoker, functions, _ = make_invoker(app)
    caplog.set_level(logging.INFO, logger="durableagent.devhost.functions")
    run(lambda: invoker.invoke_http(functions["fine"], http_request(), invocation_id="inv-3"))
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("Executed 'Functions.fine' (Succeeded, Id=inv-3, Duration=") for m in messages)


def test_non_none_return_without_return_binding_fails() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def returns(msg: func.QueueMessage) -> str:
        return "oops"

    invoker, functions, _ = make_invoker(app)
    trigger = TriggerInput(data=b"x", data_type="bytes", metadata={"Id": "1", "DequeueCount": 1})
    with pytest.raises(FunctionInvocationError) as info:
        run(lambda: invoker.invoke_trigger(functions["returns"], trigger))
    assert info.value.message == (
        # The worker passes the format string and its argument to RuntimeError separately.
        """RuntimeError: ('function %s without a $return bindingreturned a non-None value', "'returns'")"""
    )


def test_function_timeout() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="slow")
    async def slow(req: func.HttpRequest) -> str:
        await asyncio.sleep(10)
        return "late"

    invoker, functions, _ = make_invoker(app, function_timeout=timedelta(milliseconds=50))
    with pytest.raises(FunctionInvocationError) as info:
        run(lambda: invoker.invoke_http(functions["slow"], http_request(), invocation_id="inv-4"))
    assert info.value.exception_type == "FunctionTimeoutException"
    assert "exceeded by function 'Functions.slow' (Id: 'inv-4')" in info.value.message


# ---------------------------------------------------------------------------------------------
# Load-time checks (the worker's Registry.add_indexed_function)
# ---------------------------------------------------------------------------------------------


def test_orchestrator_context_name_must_be_context() -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="ctx")
    def orchestrator(ctx: df.DurableOrchestrationContext) -> Any:
        return None

    # The SDK's wrapper takes "context"; the worker then expects func.Context there (as in Azure).
    with pytest.raises(
        FunctionLoadError,
        match=r'the "context" parameter is expected to be of type azure\.functions\.Context',
    ):
        Invoker(index_function_app(app))


def test_unsupported_output_binding() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="table")
    @app.table_output(arg_name="out", table_name="t", connection="AzureWebJobsStorage")
    def table(req: func.HttpRequest, out: func.Out[str]) -> str:
        return "x"

    with pytest.raises(UnsupportedBindingError, match="type 'table' is not supported"):
        Invoker(index_function_app(app), output_sink=FakeSink())


def test_out_annotation_on_an_input_binding_is_rejected() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="wrong")
    def wrong(req: func.Out[func.HttpRequest]) -> str:
        return "x"

    with pytest.raises(FunctionLoadError, match='declared to have the "in" direction'):
        Invoker(index_function_app(app))


def test_wrong_trigger_annotation_is_rejected() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def wrong(msg: func.HttpRequest) -> None:
        return None

    with pytest.raises(
        FunctionLoadError,
        match="do not match the corresponding function parameter's Python type annotation HttpRequest",
    ):
        Invoker(index_function_app(app))


# ---------------------------------------------------------------------------------------------
# Durable functions
# ---------------------------------------------------------------------------------------------


def durable_app() -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.orchestration_trigger(context_name="context")
    def trivial(context: df.DurableOrchestrationContext) -> Any:
        name = context.get_input()
        return f"Hello {name['who']}"
        yield  # a generator orchestrator that schedules nothing

    @app.orchestration_trigger(context_name="context")
    def chain(context: df.DurableOrchestrationContext) -> Any:
        result = yield context.call_activity("Hello", "Tokyo")
        return result

    @app.orchestration_trigger(context_name="context")
    def failing(context: df.DurableOrchestrationContext) -> Any:
        raise RuntimeError("kaboom")
        yield

    @app.activity_trigger(input_name="payload", activity="Echo")
    def echo(payload: Dict[str, Any]) -> dict[str, Any]:  # noqa: UP006 - the worker refuses dict[str, Any] here
        return {"got": payload, "type": type(payload).__name__}

    @app.activity_trigger(input_name="city")
    def hello(city: str) -> str:
        return f"Hello {city}"

    @app.entity_trigger(context_name="context")
    def counter(context: df.DurableEntityContext) -> None:
        value = context.get_state(lambda: 0)
        if context.operation_name == "add":
            value += context.get_input()
        context.set_state(value)
        context.set_result(value)

    return app


def orchestration_context(name: str, input_json: str) -> str:
    """A first-episode context, as the extension builds it (reference §3.1)."""
    now = "2026-01-01T00:00:00.0000000Z"
    return json.dumps(
        {
            "history": [
                {"EventType": 12, "EventId": -1, "IsPlayed": False, "Timestamp": now},
                {
                    "EventType": 0,
                    "EventId": -1,
                    "IsPlayed": False,
                    "Timestamp": now,
                    "OrchestrationInstance": {"InstanceId": "abc", "ExecutionId": "e1"},
                    "ParentInstance": None,
                    "Name": name,
                    "Version": "",
                    "Input": input_json,
                    "Tags": None,
                    "Generation": 0,
                },
            ],
            "input": input_json,
            "instanceId": "abc",
            "isReplaying": False,
            "parentInstanceId": None,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            "longRunningTimerIntervalDuration": "3.00:00:00",
            "maximumShortTimerDuration": "6.00:00:00",
            "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
        }
    )


def test_trivial_orchestrator_returns_its_state_json() -> None:
    invoker, functions, _ = make_invoker(durable_app())
    state = run(
        lambda: invoker.invoke_durable(functions["trivial"], orchestration_context("trivial", '{"who": "World"}'))
    )
    assert json.loads(state) == {"isDone": True, "schemaVersion": 2, "actions": [[]], "output": "Hello World"}


def test_orchestrator_schedules_an_activity() -> None:
    invoker, functions, _ = make_invoker(durable_app())
    state = json.loads(run(lambda: invoker.invoke_durable(functions["chain"], orchestration_context("chain", "null"))))
    assert state["isDone"] is False
    assert state["actions"] == [[{"actionType": 0, "functionName": "Hello", "input": '"Tokyo"'}]]


def test_orchestrator_failure_carries_the_state() -> None:
    invoker, functions, _ = make_invoker(durable_app())
    with pytest.raises(FunctionInvocationError) as info:
        run(lambda: invoker.invoke_durable(functions["failing"], orchestration_context("failing", "null")))
    assert info.value.exception_type == "Exception"
    message, _, state = info.value.exception_message.partition("\n\n$OutOfProcData$:")
    assert message == "kaboom"
    assert json.loads(state)["error"] == "kaboom"


def test_entity_batch() -> None:
    invoker, functions, _ = make_invoker(durable_app())
    batch = {
        "self": {"name": "counter", "key": "k1"},
        "exists": True,
        "state": "3",
        "batch": [{"name": "add", "input": json.dumps("5"), "isSignal": False}],
    }
    result = json.loads(run(lambda: invoker.invoke_durable(functions["counter"], json.dumps(batch))))
    assert result["entityExists"] is True
    assert result["entityState"] == "8"
    assert [r["result"] for r in result["results"]] == ["8"]
    assert result["signals"] == []


@pytest.mark.parametrize(
    ("function", "input_json", "expected"),
    [
        ("hello", json.dumps("Seattle"), json.dumps("Hello Seattle")),
        ("echo", json.dumps({"a": [1, 2]}), json.dumps({"got": {"a": [1, 2]}, "type": "dict"})),
        # Not JSON: the converter falls back to the raw string.
        ("hello", "plain text", json.dumps("Hello plain text")),
    ],
)
def test_activity_round_trip(function: str, input_json: str, expected: str) -> None:
    invoker, functions, _ = make_invoker(durable_app())
    assert run(lambda: invoker.invoke_activity(functions[function], input_json)) == expected


def test_activity_failure() -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="x")
    def bad(x: str) -> str:
        raise KeyError("missing")

    invoker, functions, _ = make_invoker(app)
    with pytest.raises(FunctionInvocationError) as info:
        run(lambda: invoker.invoke_activity(functions["bad"], '"x"'))
    assert info.value.message == "KeyError: 'missing'"


def test_wrong_entry_point_is_a_programming_error() -> None:
    invoker, functions, _ = make_invoker(durable_app())
    with pytest.raises(ValueError, match="activityTrigger"):
        run(lambda: invoker.invoke_durable(functions["hello"], "{}"))


# ---------------------------------------------------------------------------------------------
# Queue and timer triggers
# ---------------------------------------------------------------------------------------------


def test_queue_trigger_with_metadata() -> None:
    app = func.FunctionApp()
    seen: dict[str, Any] = {}

    @app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="done", connection="AzureWebJobsStorage")
    def worker(msg: func.QueueMessage, out: func.Out[func.QueueMessage]) -> None:
        seen.update(
            id=msg.id,
            body=msg.get_body(),
            dequeue_count=msg.dequeue_count,
            insertion_time=msg.insertion_time,
            expiration_time=msg.expiration_time,
            pop_receipt=msg.pop_receipt,
        )
        out.set(func.QueueMessage(id="m2", body="next"))

    sink = FakeSink()
    invoker, functions, _ = make_invoker(app, output_sink=sink)
    inserted = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    trigger = TriggerInput(
        data=b"payload",
        data_type="bytes",
        metadata={
            "Id": "m1",
            "DequeueCount": 2,
            "InsertionTime": inserted,
            "ExpirationTime": inserted + timedelta(days=7),
            "PopReceipt": "receipt",
        },
    )
    run(lambda: invoker.invoke_trigger(functions["worker"], trigger))
    assert seen == {
        "id": "m1",
        "body": b"payload",
        "dequeue_count": 2,
        "insertion_time": inserted,
        "expiration_time": inserted + timedelta(days=7),
        "pop_receipt": "receipt",
    }
    assert sink.queued == [
        (
            {
                "direction": "OUT",
                "type": "queue",
                "name": "out",
                "queueName": "done",
                "connection": "AzureWebJobsStorage",
            },
            Datum(json.dumps({"id": "m2", "body": "next"}), "json"),
        )
    ]


def test_queue_trigger_with_str_annotation_uses_the_generic_binding() -> None:
    app = func.FunctionApp()
    seen: list[Any] = []

    @app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
    def plain(msg: str) -> None:
        seen.append(msg)

    invoker, functions, _ = make_invoker(app)
    run(lambda: invoker.invoke_trigger(functions["plain"], TriggerInput(data=b"text", data_type="string")))
    assert seen == ["text"]


def test_timer_trigger() -> None:
    app = func.FunctionApp()
    seen: list[TimerRequest] = []

    @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        assert isinstance(timer, TimerRequest)
        seen.append(timer)

    invoker, functions, _ = make_invoker(app)
    payload = json.dumps(
        {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": {"Last": "2026-01-01T00:00:00+00:00", "Next": "2026-01-01T00:05:00+00:00"},
            "IsPastDue": True,
        }
    )
    run(lambda: invoker.invoke_trigger(functions["tick"], TriggerInput(data=payload, data_type="json")))
    assert seen[0].past_due is True
    assert seen[0].schedule == {"AdjustForDST": True}
    assert seen[0].schedule_status["Next"] == "2026-01-01T00:05:00+00:00"


def test_return_annotation_none_on_http_fails_at_load() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="nothing")
    def nothing(req: func.HttpRequest) -> None:
        return None

    with pytest.raises(FunctionLoadError, match='return annotation "NoneType" does not match binding type "http"'):
        Invoker(index_function_app(app))


# ---------------------------------------------------------------------------------------------
# Blob triggers, inputs and outputs (the host reads inputs through its input provider)
# ---------------------------------------------------------------------------------------------


class FakeBlobs:
    """An input provider serving canned blobs, and an output sink recording blob writes."""

    def __init__(self, blobs: dict[str, Datum]) -> None:
        self.blobs = blobs
        self.reads: list[tuple[str, dict[str, Any]]] = []
        self.writes: list[tuple[str, Datum, dict[str, Any]]] = []

    async def blob(self, binding: dict[str, Any], *rest: Any) -> Any:
        if str(binding.get("direction")).upper() == "OUT":
            datum, binding_data = rest
            self.writes.append((binding["name"], datum, dict(binding_data)))
            return None
        (binding_data,) = rest
        self.reads.append((binding["name"], dict(binding_data)))
        path = str(binding["path"]).replace("{id}", str(binding_data.get("id")))
        return self.blobs.get(path, Datum(None, None))

    async def queue(self, binding: dict[str, Any], datum: Datum) -> None:
        raise AssertionError("no queue outputs here")


def blob_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="docs/{id}")
    @app.blob_input(arg_name="text", path="docs/{id}.txt", connection="AzureWebJobsStorage")
    @app.blob_input(arg_name="raw", path="docs/{id}.bin", data_type="BINARY", connection="AzureWebJobsStorage")
    @app.blob_input(arg_name="stream", path="docs/{id}.bin", data_type="BINARY", connection="AzureWebJobsStorage")
    def docs(req: func.HttpRequest, text: str, raw: bytes, stream: func.InputStream) -> func.HttpResponse:
        return func.HttpResponse(
            json.dumps(
                {
                    "text": text,
                    "raw": raw.hex() if raw is not None else None,
                    "stream": [stream.name, stream.read().hex()] if stream is not None else None,
                }
            )
        )

    @app.blob_trigger(arg_name="blob", path="uploads/{name}.txt", connection="AzureWebJobsStorage")
    @app.blob_output(arg_name="copy", path="copies/{name}.upper", connection="AzureWebJobsStorage")
    def upper(blob: func.InputStream, copy: func.Out[str]) -> None:
        copy.set(f"{blob.name}:{blob.length}:{blob.read().decode().upper()}")

    return app


def test_blob_inputs_are_read_before_the_call_with_the_invocations_binding_data() -> None:
    blobs = FakeBlobs({"docs/42.txt": Datum("héllo", "string"), "docs/42.bin": Datum(b"\x00\x01", "bytes")})
    invoker, functions, _ = make_invoker(blob_app(), output_sink=blobs, input_provider=blobs)
    response = run(lambda: invoker.invoke_http(functions["docs"], http_request("http://localhost:7071/api/docs/42")))
    # An input binding's converter gets no trigger metadata: the InputStream has no name.
    assert json.loads(response.body) == {"text": "héllo", "raw": "0001", "stream": [None, "0001"]}
    assert sorted(name for name, _ in blobs.reads) == ["raw", "stream", "text"]
    assert all(data["id"] == "42" and data["Query"] == {"q": "1"} for _, data in blobs.reads)


def test_a_missing_blob_is_none() -> None:
    blobs = FakeBlobs({})
    invoker, functions, _ = make_invoker(blob_app(), output_sink=blobs, input_provider=blobs)
    response = run(lambda: invoker.invoke_http(functions["docs"], http_request("http://localhost:7071/api/docs/7")))
    assert json.loads(response.body) == {"text": None, "raw": None, "stream": None}


def test_a_blob_trigger_gets_bytes_and_metadata_and_its_output_gets_the_binding_data() -> None:
    blobs = FakeBlobs({})
    invoker, functions, _ = make_invoker(blob_app(), output_sink=blobs, input_provider=blobs)
    trigger = TriggerInput(
        data=b"abc",
        data_type="bytes",
        metadata={"BlobTrigger": "uploads/report.txt", "Properties": {"ContentLength": 3}, "name": "report"},
        reason="New blob detected(LogsAndContainerScan): uploads/report.txt",
    )
    run(lambda: invoker.invoke_trigger(functions["upper"], trigger))
    ((name, datum, data),) = blobs.writes
    assert (name, datum) == ("copy", Datum("uploads/report.txt:3:ABC", "string"))
    assert (data["name"], data["BlobTrigger"]) == ("report", "uploads/report.txt")


def test_a_failing_input_binding_fails_the_invocation_without_calling_the_function() -> None:
    class Failing(FakeBlobs):
        async def blob(self, binding: dict[str, Any], *rest: Any) -> Any:
            raise BindingExpressionError("id")

    calls: list[str] = []
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="docs/{id}")
    @app.blob_input(arg_name="text", path="docs/{id}.txt", connection="AzureWebJobsStorage")
    def docs(req: func.HttpRequest, text: str) -> str:
        calls.append(text)
        return text

    blobs = Failing({})
    invoker, functions, _ = make_invoker(app, output_sink=blobs, input_provider=blobs)
    with pytest.raises(FunctionInvocationError) as info:
        run(lambda: invoker.invoke_http(functions["docs"], http_request()))
    assert info.value.message == "BindingExpressionError: No value for named parameter 'id'."
    assert calls == []


def test_a_blob_input_needs_an_input_provider() -> None:
    with pytest.raises(UnsupportedBindingError, match="no input provider"):
        make_invoker(blob_app(), output_sink=FakeBlobs({}))
