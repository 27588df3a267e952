"""Workflows as durable orchestrations, through the local host and Azurite."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_framework._serialization import make_json_safe
from hosttools.host_process import HostProcess, copy_app
from zoo_loader import zoo

from durableagent._workflow_http import event_json

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
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert status["outputs"] == ["done:OLLEH"]
    # entry checkpoint + one per superstep (3 supersteps)
    assert [c["iteration"] for c in status["checkpoints"]] == [0, 1, 2, 3]


# -- differential: the durable run equals an in-process workflow.run() ------------------------------


def in_process(build: Callable[[], Any], message: Any, answers: list[Any] = ()) -> tuple[list[Any], list[Any]]:
    """Events (as JSON) and outputs of ``workflow.run()``, answering each pending request in turn."""

    async def go() -> tuple[list[Any], list[Any]]:
        wf = build()
        result = await wf.run(message)
        events = list(result)
        for answer in answers:
            pending = [e for e in events if e.type == "request_info" and e.request_id not in answered]
            answered.add(pending[0].request_id)
            result = await wf.run(responses={pending[0].request_id: answer})
            events.extend(result)
        outputs = [e.data for e in events if e.type == "output"]
        return [event_json(e) for e in events if e.type not in ("started", "status")], outputs

    answered: set[str] = set()
    return asyncio.run(go())


def durable(
    host: HostProcess, workflow: str, message: Any, answers: list[Any] = ()
) -> tuple[list[Any], dict[str, Any]]:
    """Events (over HTTP) and final status of a durable run, answering each pending request in turn."""
    run_id = start(host, workflow, {"input": message})["runId"]
    answered: set[str] = set()
    for answer in answers:

        def open_request(s: dict[str, Any]) -> bool:
            return s["state"] == "failed" or any(r["requestId"] not in answered for r in s["pendingRequests"])

        status = wait_run(host, workflow, run_id, until=open_request)
        request_id = next(r["requestId"] for r in status["pendingRequests"] if r["requestId"] not in answered)
        code, body = call(host, "POST", f"/api/workflows/{workflow}/runs/{run_id}/requests/{request_id}", answer)
        assert code == 202, body
        answered.add(request_id)
    status = wait_run(host, workflow, run_id)
    code, body = call(host, "GET", f"/api/workflows/{workflow}/runs/{run_id}/events")
    assert code == 200, body
    return body["events"], status


def normalized(events: list[Any]) -> list[Any]:
    """Request ids are random per run: number them in order of appearance."""
    ids: dict[str, str] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and value in ids:
            return ids[value]
        return value

    for event in events:
        if "requestId" in event:
            ids.setdefault(event["requestId"], f"request-{len(ids)}")
    return [walk(e) for e in events]


DIFFERENTIAL = [
    ("sequential", "hello", []),
    ("fanout", "banana cab", []),
    ("routing", {"kind": "refund", "amount": 150}, []),
    ("routing", {"kind": "sale", "amount": 5}, []),
    ("routing", {"kind": "gift", "amount": 100}, []),
    ("approval", "durability", [True]),
    ("approval", "durability", [False]),
    ("nested", "x", []),
    ("looping", 7, []),
    ("functional", "hello durable world", [True]),
    ("agents", "a poem about state", []),
]
BUILDERS: dict[str, Callable[[], Any]] = {**zoo.GRAPH_BUILDERS, "functional": lambda: zoo.functional.build()}


@pytest.mark.parametrize(("workflow", "message", "answers"), DIFFERENTIAL)
def test_durable_run_equals_in_process_run(host: HostProcess, workflow: str, message: Any, answers: list[Any]) -> None:
    build = BUILDERS[workflow]
    typed = zoo.Ticket(**message) if workflow == "routing" else message
    expected_events, expected_outputs = in_process(build, typed, answers)
    events, status = durable(host, workflow, message, answers)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert status["outputs"] == [make_json_safe(o) for o in expected_outputs]
    assert normalized(events) == normalized(expected_events)
