"""Workflows as durable orchestrations, through the local host and Azurite."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hosttools.host_process import HostProcess, copy_app

APP = Path(__file__).parent / "apps" / "workflows"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host(azurite: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    app_dir = copy_app(APP, tmp_path_factory.mktemp("workflows") / "app")
    env = {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": "Workflows"}
    with HostProcess(app_dir, env=env) as proc:
        yield proc


def call(host: HostProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    code, _, raw = host.request(method, path, body=body)
    return code, json.loads(raw) if raw else None


def start(host: HostProcess, workflow: str, body: Any) -> dict[str, Any]:
    code, answer = call(host, "POST", f"/api/workflows/{workflow}/runs", body)
    assert code == 202, answer
    return answer


def wait_run(
    host: HostProcess,
    workflow: str,
    run_id: str,
    until: Callable[[dict[str, Any]], bool] | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    check = until or (lambda s: s["state"] in ("completed", "failed", "terminated"))
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, status = call(host, "GET", f"/api/workflows/{workflow}/runs/{run_id}")
        assert code == 200, status
        if check(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not settle: {status}")


def test_sequential_run_completes_with_outputs_and_checkpoints(host: HostProcess) -> None:
    started = start(host, "sequential", {"input": "hello"})
    status = wait_run(host, "sequential", started["runId"])
    assert status["runtimeStatus"] == "Completed", status
    assert status["outputs"] == ["done:OLLEH"]
    # entry checkpoint + one per superstep (3 supersteps)
    assert [c["iteration"] for c in status["checkpoints"]] == [0, 1, 2, 3]
