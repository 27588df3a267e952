"""Functions in error: which bindings the host serves, and the host's one-line report for the others."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.functions.meta import Datum

from durableagent.devhost._app_loader import index_function_app
from durableagent.devhost._function_errors import (
    SUPPORTED_INPUTS,
    SUPPORTED_OUTPUTS,
    binding_error_message,
    partition_functions,
    unservable_binding_types,
)
from durableagent.devhost._functions import DURABLE_CLIENT, HTTP_OUTPUT, IndexedFunction
from durableagent.devhost._invoker import (
    _INPUT_READERS,
    _OUTPUT_WRITERS,
    FunctionLoadError,
    Invoker,
    UnsupportedBindingError,
    check_worker_load,
)

# The Functions host's text (FunctionDescriptorProvider.CreateBindingError, ScriptHostLoggerExtension).
HOST_TEXT = (
    "The '{name}' function is in error: The binding type(s) '{types}' are not registered. "
    "Please ensure the type is correct and the binding extension is installed."
)


class NoSink:
    """An output sink and input provider that are never called (nothing is invoked here)."""

    async def queue(self, binding: dict[str, Any], datum: Datum) -> None:
        raise AssertionError("not invoked in these tests")

    async def blob(self, binding: dict[str, Any], *args: Any) -> Any:
        raise AssertionError("not invoked in these tests")


def invoker(functions: list[IndexedFunction] | tuple[IndexedFunction, ...]) -> Invoker:
    return Invoker(functions, output_sink=NoSink(), input_provider=NoSink(), client_binding_json=lambda origin: "{}")


def mixed_app() -> df.DFApp:
    """Every kind of binding the host serves, and functions with ones it does not."""
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="hello")
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi")

    @app.event_hub_message_trigger(arg_name="event", event_hub_name="hub", connection="EventHubConnection")
    def on_event(event: func.EventHubEvent) -> None:
        return None

    @app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="out", connection="AzureWebJobsStorage")
    def relay(msg: func.QueueMessage, out: func.Out[str]) -> None:
        out.set(msg.get_body().decode())

    @app.generic_trigger(arg_name="context", type="mcpToolTrigger", toolName="t", description="d", toolProperties="[]")
    def mcp_tool(context: str) -> str:
        return "x"

    @app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
    def tick(timer: func.TimerRequest) -> None:
        return None

    # Outputs declared above the input: the host still names input types first.
    @app.route(route="report/{id}")
    @app.service_bus_queue_output(arg_name="bus", queue_name="q", connection="ServiceBusConnection")
    @app.table_output(arg_name="row", table_name="t", connection="AzureWebJobsStorage")
    @app.blob_output(arg_name="copy", path="c/{id}.txt", connection="AzureWebJobsStorage")
    @app.cosmos_db_input(arg_name="docs", database_name="db", container_name="c", connection="CosmosDbConnection")
    def report(
        req: func.HttpRequest, bus: func.Out[str], row: func.Out[str], copy: func.Out[str], docs: func.DocumentList
    ) -> func.HttpResponse:
        return func.HttpResponse("x")

    @app.route(route="start/{name}")
    @app.durable_client_input(client_name="client")
    async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        return func.HttpResponse("x")

    @app.orchestration_trigger(context_name="context")
    def flow(context: df.DurableOrchestrationContext) -> Any:
        return None

    @app.activity_trigger(input_name="name")
    def say_hello(name: str) -> str:
        return name

    @app.activity_trigger(input_name="name")
    @app.table_output(arg_name="row", table_name="archive", connection="AzureWebJobsStorage")
    def archive(name: str, row: func.Out[str]) -> str:
        return name

    # Blob trigger, input and output are served.
    @app.blob_trigger(arg_name="blob", path="uploads/{name}", connection="AzureWebJobsStorage")
    @app.blob_input(arg_name="template", path="templates/{name}", connection="AzureWebJobsStorage")
    @app.blob_output(arg_name="copy", path="copies/{name}", connection="AzureWebJobsStorage")
    def on_blob(blob: func.InputStream, template: str, copy: func.Out[str]) -> None:
        return None

    @app.entity_trigger(context_name="context")
    def counter(context: df.DurableEntityContext) -> None:
        return None

    return app


def test_functions_with_unservable_bindings_are_in_error_with_the_hosts_message() -> None:
    partition = partition_functions(index_function_app(mixed_app()))

    assert [f.name for f in partition.servable] == [
        "hello",
        "relay",
        "tick",
        "start",
        "flow",
        "say_hello",
        "on_blob",
        "counter",
    ]
    assert [e.log_line() for e in partition.in_error] == [
        HOST_TEXT.format(name="on_event", types="eventHubTrigger"),
        HOST_TEXT.format(name="mcp_tool", types="mcpToolTrigger"),
        HOST_TEXT.format(name="report", types="cosmosDB, table, serviceBus"),
        HOST_TEXT.format(name="archive", types="table"),
    ]
    assert partition.in_error[2].binding_types == ("cosmosDB", "table", "serviceBus")


def test_the_invoker_accepts_every_servable_function_and_refuses_the_others() -> None:
    partition = partition_functions(index_function_app(mixed_app()))

    invoker(partition.servable).close()
    for failed in partition.in_error:
        with pytest.raises(UnsupportedBindingError, match="is not supported by the local host"):
            invoker([failed.function])


def test_each_type_is_named_once() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="two")
    @app.table_output(arg_name="first", table_name="one", connection="AzureWebJobsStorage")
    @app.table_output(arg_name="second", table_name="two", connection="AzureWebJobsStorage")
    def two(req: func.HttpRequest, first: func.Out[str], second: func.Out[str]) -> func.HttpResponse:
        return func.HttpResponse("x")

    (function,) = index_function_app(app)
    assert unservable_binding_types(function) == ("table",)
    assert binding_error_message(["table"]) == (
        "The binding type(s) 'table' are not registered. "
        "Please ensure the type is correct and the binding extension is installed."
    )


def test_supported_outputs_are_the_ones_the_invoker_can_write() -> None:
    # HTTP responses go back to the caller; every other served output needs a writer.
    assert frozenset({HTTP_OUTPUT, *_OUTPUT_WRITERS}) == SUPPORTED_OUTPUTS


def test_supported_inputs_are_the_ones_the_invoker_can_read() -> None:
    # The Durable client's binding is the host's own JSON; every other served input needs a reader.
    assert frozenset({DURABLE_CLIENT, *_INPUT_READERS}) == SUPPORTED_INPUTS


def test_a_function_in_error_still_goes_through_the_workers_load_checks() -> None:
    app = func.FunctionApp()

    @app.event_hub_message_trigger(arg_name="event", event_hub_name="hub", connection="EventHubConnection")
    def fine(event: func.EventHubEvent) -> None:
        return None

    @app.event_hub_message_trigger(arg_name="event", event_hub_name="hub", connection="EventHubConnection")
    def refused(event: func.EventHubEvent, extra: str) -> None:
        return None

    good, bad = index_function_app(app)
    assert [e.function.name for e in partition_functions([good, bad]).in_error] == ["fine", "refused"]
    check_worker_load(good)
    # The worker's refusal, not the host's binding check: it stops the whole app.
    with pytest.raises(FunctionLoadError, match=r"declared in Python but not in the function definition") as info:
        check_worker_load(bad)
    assert not isinstance(info.value, UnsupportedBindingError)
