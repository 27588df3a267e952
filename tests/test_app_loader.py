"""Importing function_app.py and indexing it like the worker, plus the host's start-time checks."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from durableagent.devhost._app_loader import AppLoadError, LoadedApp, load_function_app


@pytest.fixture(autouse=True)
def isolated_imports() -> Iterator[None]:
    """Loading an app edits sys.path and sys.modules['function_app']; put both back afterwards."""
    saved_path = list(sys.path)
    saved_module = sys.modules.get("function_app")
    yield
    sys.path[:] = saved_path
    if saved_module is None:
        sys.modules.pop("function_app", None)
    else:
        sys.modules["function_app"] = saved_module


def write_app(directory: Path, source: str) -> Path:
    (directory / "function_app.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return directory


def load(directory: Path, source: str, *, route_prefix: str = "api") -> LoadedApp:
    return load_function_app(write_app(directory, source), route_prefix=route_prefix)


def load_error(directory: Path, source: str, *, route_prefix: str = "api") -> AppLoadError:
    with pytest.raises(AppLoadError) as info:
        load(directory, source, route_prefix=route_prefix)
    return info.value


def test_indexes_a_durable_app(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("GREETING = 'hi'\n", encoding="utf-8")
    loaded = load(
        tmp_path,
        """
        import azure.functions as func
        import azure.durable_functions as df
        from helpers import GREETING

        app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

        @app.route(route="start/{name}", methods=["POST"])
        @app.durable_client_input(client_name="client")
        async def start(req: func.HttpRequest, client) -> func.HttpResponse:
            return func.HttpResponse(GREETING)

        @app.route()
        def ping(req: func.HttpRequest) -> str:
            return "pong"

        @app.orchestration_trigger(context_name="context")
        def orchestrator(context):
            return None

        @app.function_name("SayHello")
        @app.activity_trigger(input_name="city", activity="Hello")
        def say_hello(city: str) -> str:
            return city
        """,
    )
    assert loaded.app_dir == tmp_path.resolve()
    assert sys.modules["function_app"] is loaded.module
    assert str(tmp_path.resolve()) in sys.path
    by_name = {f.name: f for f in loaded.functions}
    assert list(by_name) == ["start", "ping", "orchestrator", "SayHello"]

    start = by_name["start"]
    assert start.trigger_type == "httpTrigger"
    assert start.trigger["route"] == "start/{name}"
    assert start.trigger["methods"] == ["POST"]
    assert {b["type"] for b in start.bindings} == {"httpTrigger", "durableClient", "http"}
    assert start.user_function.client_function.__name__ == "start"  # type: ignore[attr-defined]

    # The decorator gives a route-less function its own name as the route.
    assert by_name["ping"].trigger["route"] == "ping"
    assert by_name["orchestrator"].trigger_type == "orchestrationTrigger"
    assert by_name["SayHello"].durable_name == "Hello"
    assert by_name["SayHello"].user_function("x") == "x"


def test_no_function_app_instance(tmp_path: Path) -> None:
    error = load_error(tmp_path, "import azure.functions as func\n")
    assert "Could not find top level function app instances" in error.message


def test_two_function_app_instances(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        import azure.functions as func
        app = func.FunctionApp()
        other = func.FunctionApp()
        """,
    )
    assert "More than one FunctionApp" in error.message
    assert "app" in error.message and "other" in error.message


def test_import_error_carries_the_traceback(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        import azure.functions as func

        def broken():
            raise RuntimeError("cannot configure the app")

        app = func.FunctionApp()
        broken()
        """,
    )
    assert "RuntimeError: cannot configure the app" in error.message
    assert error.traceback_text is not None
    assert "function_app.py" in error.traceback_text
    assert 'raise RuntimeError("cannot configure the app")' in error.traceback_text
    assert error.traceback_text.strip() in str(error)
    assert "function_app" not in sys.modules


def test_missing_script(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match=r"function_app\.py not found"):
        load_function_app(tmp_path)


def test_duplicate_names_are_case_insensitive(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        import azure.functions as func
        app = func.FunctionApp()

        @app.function_name("Hello")
        @app.route(route="a")
        def a(req: func.HttpRequest) -> str:
            return "a"

        @app.function_name("hello")
        @app.route(route="b")
        def b(req: func.HttpRequest) -> str:
            return "b"
        """,
    )
    assert "Duplicate function name" in error.message
    assert "case-insensitive" in error.message


def test_library_duplicate_check_is_reported(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        import azure.functions as func
        app = func.FunctionApp()

        @app.function_name("same")
        @app.route(route="a")
        def a(req: func.HttpRequest) -> str:
            return "a"

        @app.function_name("same")
        @app.route(route="b")
        def b(req: func.HttpRequest) -> str:
            return "b"
        """,
    )
    assert "does not have a unique function name" in error.message


def test_duplicate_durable_names_per_kind(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        import azure.durable_functions as df
        app = df.DFApp()

        @app.activity_trigger(input_name="x", activity="Work")
        def first(x: str) -> str:
            return x

        @app.activity_trigger(input_name="x", activity="WORK")
        def second(x: str) -> str:
            return x
        """,
    )
    assert "Duplicate activity function name" in error.message
    assert "first" in error.message and "second" in error.message


def test_orchestrator_name_must_not_start_with_at(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """
        import azure.durable_functions as df
        app = df.DFApp()

        @app.orchestration_trigger(context_name="context", orchestration="@sneaky")
        def orchestrator(context):
            return None
        """,
    )
    assert "must not start with '@'" in error.message


ROUTES_APP = """
import azure.functions as func
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

@app.route(route="{first}", methods={first_methods})
def first(req: func.HttpRequest) -> str:
    return "first"

@app.route(route="{second}", methods={second_methods})
def second(req: func.HttpRequest) -> str:
    return "second"
"""


def routes_app(first: str, second: str, first_methods: object = None, second_methods: object = None) -> str:
    return (
        ROUTES_APP.replace("{first}", first)
        .replace("{second}", second)
        .replace("{first_methods}", repr(first_methods))
        .replace("{second_methods}", repr(second_methods))
    )


def test_route_conflict(tmp_path: Path) -> None:
    error = load_error(tmp_path, routes_app("items/{id}", "ITEMS/{key:int}", ["GET"], ["get", "POST"]))
    assert "Functions 'first' and 'second' register the same route" in error.message


def test_same_route_with_different_methods_is_fine(tmp_path: Path) -> None:
    loaded = load(tmp_path, routes_app("items/{id}", "items/{key}", ["GET"], ["POST"]))
    assert [f.name for f in loaded.functions] == ["first", "second"]


def test_route_for_all_methods_conflicts_with_any_method(tmp_path: Path) -> None:
    error = load_error(tmp_path, routes_app("items", "Items", None, ["DELETE"]))
    assert "register the same route" in error.message


def test_invalid_route_template(tmp_path: Path) -> None:
    error = load_error(tmp_path, routes_app("items/{id:nope}", "other"))
    assert "Function 'first': invalid route 'items/{id:nope}'" in error.message


def test_route_must_not_shadow_host_routes(tmp_path: Path) -> None:
    error = load_error(tmp_path, routes_app("runtime/webhooks/x", "other"), route_prefix="")
    assert "built-in" in error.message
    # Under a prefix the same route is harmless.
    assert len(load(tmp_path, routes_app("runtime/webhooks/x", "other")).functions) == 2
