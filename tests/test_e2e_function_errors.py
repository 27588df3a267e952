"""End to end: functions the host cannot serve go into error; the host starts and serves the others."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import REPO, HostProcess, copy_app

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "function_errors"

IN_ERROR = {
    "on_event": "eventHubTrigger",
    "mcp_tool": "mcpToolTrigger",
    "lookup": "cosmosDB",
    "archive": "table",
}
SERVED = ("hello", "start", "greet", "say_hello", "archive_flow")


def error_line(name: str, binding_type: str) -> str:
    return (
        f"The '{name}' function is in error: The binding type(s) '{binding_type}' are not registered. "
        "Please ensure the type is correct and the binding extension is installed."
    )


@pytest.fixture(scope="module")
def host(azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    app_dir = copy_app(APP, tmp_path_factory.mktemp("function_errors") / "app")
    env = {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": "E2eFunctionErrors"}
    with HostProcess(app_dir, env=env) as proc:
        yield proc


def listing(log: str) -> list[str]:
    """The function names of the "Functions:" listing."""
    section = log.split("\nFunctions:\n", 1)[1].split("Host started on", 1)[0]
    return [line.strip().split(":", 1)[0] for line in section.splitlines() if line.strip()]


def test_each_function_in_error_is_reported_on_one_line(host: HostProcess) -> None:
    lines = host.log().splitlines()
    for name, binding_type in IN_ERROR.items():
        matching = [line for line in lines if f"The '{name}' function is in error" in line]
        assert len(matching) == 1, (name, matching)
        assert matching[0].endswith(error_line(name, binding_type)), matching[0]


def test_the_listing_has_only_the_served_functions(host: HostProcess) -> None:
    assert listing(host.log()) == list(SERVED)


def test_working_http_function_answers(host: HostProcess) -> None:
    code, _, body = host.request("GET", "/api/hello?name=Ada")
    assert (code, body) == (200, b"Hello, Ada!")


def test_route_of_an_http_function_in_error_is_not_registered(host: HostProcess) -> None:
    code, _, body = host.request("GET", "/api/lookup/42")
    assert (code, json.loads(body)["error"]["code"]) == (404, "route_not_found")


def test_orchestration_runs(host: HostProcess) -> None:
    code, _, body = host.request("POST", "/api/start/greet")
    assert code == 202, body
    status = host.wait_for(json.loads(body)["id"])
    assert (status["runtimeStatus"], status["output"]) == ("Completed", ["Hello Tokyo!", "Hello Lima!"])


def test_calling_an_activity_in_error_fails_as_an_unknown_function(host: HostProcess) -> None:
    code, _, body = host.request("POST", "/api/start/archive_flow")
    assert code == 202, body
    status = host.wait_for(json.loads(body)["id"])
    assert status["runtimeStatus"] == "Failed", status
    assert "The function 'archive' doesn't exist, is disabled, or is not an activity function." in status["output"]


def test_functions_in_error_never_run(host: HostProcess) -> None:
    assert host.request("GET", "/api/hello")[0] == 200
    log = host.log()
    assert "Executing 'Functions.hello'" in log
    for name in IN_ERROR:
        assert f"Functions.{name}'" not in log


def test_a_function_the_worker_refuses_still_stops_the_app(tmp_path: Path) -> None:
    app_dir = tmp_path / "refused"
    app_dir.mkdir()
    (app_dir / "host.json").write_text((APP / "host.json").read_text())
    # Its eventHubTrigger alone would put it in error; the parameter the bindings lack makes the worker refuse it.
    (app_dir / "function_app.py").write_text(
        "import azure.functions as func\n\n"
        "app = func.FunctionApp()\n\n"
        "@app.event_hub_message_trigger(arg_name='event', event_hub_name='events', connection='EventHubConnection')\n"
        "def refused(event: func.EventHubEvent, extra: str) -> None:\n"
        "    return None\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "durableagent.devhost", "--app-dir", str(app_dir), "--port", "0", "--no-azurite"],
        cwd=REPO,
        env={"TASKHUB_NAME": "E2eRefused", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "cannot load the refused function: the following parameters are declared in Python" in output
    assert "error: " in output
    assert "is in error" not in output
    assert "Host started" not in output
