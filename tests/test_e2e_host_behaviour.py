"""End to end: the host's own behaviour as the Functions host and the Durable extension show it.

host.json ``logging.logLevel`` decides what is printed; a failed activity reaches the orchestration's
output as the extension records it (and without the local host's stack frames); a Durable app without
its storage connection does not start; another storage provider is named at start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import REPO, HostProcess, copy_app

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "host_behaviour"
STORAGE_REFUSAL = "Unable to resolve the Azure Storage connection named 'Storage'."


def _env(azurite: AzuriteInstance, hub: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": hub}


def _failed_output(host: HostProcess) -> str:
    code, _, body = host.request("POST", "/api/start/fails")
    assert code == 202, body
    status = host.wait_for(json.loads(body)["id"])
    assert status["runtimeStatus"] == "Failed", status
    return str(status["output"])


def test_log_levels_from_host_json_and_a_clean_stop(azurite: AzuriteInstance, tmp_path: Path) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    host = HostProcess(app_dir, env=_env(azurite, "HostLogs")).start()
    try:
        assert host.request("GET", "/api/quiet")[0] == 200
        assert host.request("GET", "/api/loud")[0] == 200
        assert host.request("GET", "/api/chatty")[0] == 200
        _failed_output(host)  # uses the Durable SDK's HTTP session, which must be closed at stop
    finally:
        host.stop()
    log = host.log()
    # "Function": Warning hides the invocation lines and the function's own info lines...
    assert "Executing 'Functions.quiet'" not in log
    assert "Executed 'Functions.quiet'" not in log
    assert "quiet says info" not in log
    assert "quiet says warning" in log
    # ...but a failure is an error, and "Function.loud" is more specific.
    assert "Executed 'Functions.explode' (Failed" in log
    assert "Executing 'Functions.loud'" in log
    assert "loud says info" in log
    # "Function.chatty.User" lets the function's own lines through while its invocation lines stay hidden.
    assert "chatty says info" in log
    assert "Executing 'Functions.chatty'" not in log
    assert "Stopping the host..." in log
    assert "Unclosed" not in log, log[-3000:]


@pytest.mark.parametrize("worker", ["auto", "builtin"])
def test_a_failed_activity_reaches_the_output_as_azure_records_it(
    azurite: AzuriteInstance, tmp_path: Path, worker: str
) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    with HostProcess(app_dir, env=_env(azurite, f"HostFailures{worker}"), extra_args=["--worker", worker]) as host:
        output = _failed_output(host)
    reason, separator, details = output.partition(" \n ")
    assert separator, output
    # TaskActivityShim: "Activity function '<name>' failed: " + the text after "\nException:".
    assert reason == "Orchestrator function 'fails' failed: Activity function 'explode' failed:  KeyError: 'kaboom now'"
    cause: dict[str, Any] = json.loads(details)
    assert cause["ClassName"] == "System.Exception"
    assert cause["Message"] == " KeyError: 'kaboom now'"
    rpc = cause["InnerException"]
    assert rpc["ClassName"] == "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException"
    assert rpc["Message"].startswith("Result: Failure\nException: KeyError: 'kaboom now'\nStack: ")
    # The user's frame stays; the local host's own frames do not.
    assert 'function_app.py", line' in rpc["Message"]
    assert "durableagent" not in output


def _run_host(app_dir: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k.lower() != "azurewebjobsstorage"}
    return subprocess.run(
        [sys.executable, "-m", "durableagent.devhost", "--app-dir", str(app_dir), "--port", "0", "--no-azurite"],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("storage", [None, "", "  "])
def test_a_durable_app_without_storage_does_not_start(tmp_path: Path, storage: str | None) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    env = {"TASKHUB_NAME": "NoStorage"}
    if storage is not None:
        env["AzureWebJobsStorage"] = storage
    result = _run_host(app_dir, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: {STORAGE_REFUSAL}" in result.stderr


def test_an_http_only_app_needs_no_storage(tmp_path: Path) -> None:
    # The Functions host loads the Durable extension only for apps with Durable bindings.
    app_dir = tmp_path / "http_only"
    app_dir.mkdir()
    (app_dir / "host.json").write_text('{"version": "2.0"}')
    (app_dir / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='ping')\n"
        "def ping(req: func.HttpRequest) -> func.HttpResponse:\n"
        "    return func.HttpResponse('pong')\n"
    )
    with HostProcess(app_dir, env={"AzureWebJobsStorage": ""}) as host:
        assert host.request("GET", "/api/ping")[2] == b"pong"


def test_another_storage_provider_is_named_and_the_hub_stays_in_sqlite(tmp_path: Path) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    document = json.loads((app_dir / "host.json").read_text())
    document["extensions"]["durableTask"]["storageProvider"] = {
        "type": "azureManaged",
        "connectionStringName": "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
    }
    (app_dir / "host.json").write_text(json.dumps(document))
    # Durable Task Scheduler apps need no AzureWebJobsStorage for the task hub.
    with HostProcess(app_dir, env={"AzureWebJobsStorage": "", "TASKHUB_NAME": "Dts"}) as host:
        assert "Executed 'Functions.explode' (Failed" not in host.log()
        _failed_output(host)
        log = host.log()
    assert "host.json selects the 'azureManaged' storage provider; the local host keeps the task hub in SQLite" in log
    assert (app_dir / ".durableagent" / "taskhub-Dts.sqlite").exists()
