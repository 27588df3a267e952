"""Agents inside orchestrations, through the local host: responses, structured output, failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hosttools.host_process import HostProcess, copy_app

APP = Path(__file__).parent / "apps" / "agent_orchestration"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host(azurite: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    app_dir = copy_app(APP, tmp_path_factory.mktemp("agent_orch") / "app")
    env = {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": "AgentOrch"}
    with HostProcess(app_dir, env=env) as proc:
        yield proc


def start(host: HostProcess, name: str, payload: Any) -> str:
    code, _, body = host.request("POST", f"/api/start/{name}", body=payload)
    assert code == 202, body
    return str(json.loads(body)["id"])


def test_agents_run_inside_an_orchestration(host: HostProcess) -> None:
    instance_id = start(host, "write_twice", "a haiku")
    status = host.wait_for(instance_id)
    assert status["runtimeStatus"] == "Completed", status
    output = status["output"]
    assert output["first"].startswith("[offline model]") and "a haiku" in output["first"]
    assert "and again" in output["second"]
    assert output["types"] == [True, True, True]
    assert output["sameSession"] and output["session"] == f"@Writer@orch-{instance_id}"
    assert set(output["value"]) == {"title", "words"} and isinstance(output["value"]["words"], int)
    # The orchestration's turns are an ordinary session: readable over HTTP.
    code, _, body = host.request("GET", f"/api/agents/Writer/orch-{instance_id}")
    assert code == 200 and json.loads(body)["turn_count"] == 2


def test_a_failed_agent_run_is_a_failure_the_orchestrator_can_catch(host: HostProcess) -> None:
    status = host.wait_for(start(host, "call_broken", None))
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"]["failed"] is True and "agent_run_failed" in status["output"]["error"]
