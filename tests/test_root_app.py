"""The repository's own function_app.py (what ``./dev start`` serves), offline, through the local host."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hosttools.host_process import HostProcess, root_app_host

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host(azurite: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    app_dir = tmp_path_factory.mktemp("root") / "app"
    with root_app_host(azurite, {"OPENAI_API_KEY": ""}, app_dir, "RootApp") as proc:  # the offline model
        yield proc


def call(host: HostProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    code, _, raw = host.request(method, path, body=body)
    return code, json.loads(raw) if raw else None


def test_health_lists_the_agent_and_the_workflow(host: HostProcess) -> None:
    code, body = call(host, "GET", "/api/health")
    assert code == 200
    assert body["agents"] == [{"name": "Assistant", "type": "Agent"}]
    assert body["workflows"] == [{"name": "draft-review", "type": "graph"}]


def test_the_offline_assistant_answers(host: HostProcess) -> None:
    code, body = call(host, "POST", "/api/agents/Assistant/run", {"message": "hello", "sessionId": "root"})
    assert code == 200 and "[offline model]" in body["response"] and "hello" in body["response"]


def test_draft_review_waits_for_approval_then_completes(host: HostProcess) -> None:
    code, started = call(host, "POST", "/api/workflows/draft-review/runs?wait=true", {"input": "a launch note"})
    assert code == 200 and started["state"] == "waiting_for_input", started
    [request] = started["pendingRequests"]
    assert "a launch note" in request["data"]["draft"]
    code, _ = call(host, "POST", request["respondUri"][len(host.base_url) :], True)
    assert code == 202
    deadline = time.monotonic() + 30
    while True:
        code, status = call(host, "GET", f"/api/workflows/draft-review/runs/{started['runId']}")
        if status["state"] == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status["outputs"] == [{"approved": True, "draft": request["data"]["draft"]}]
