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


# -- human in the loop ------------------------------------------------------------------------------


def waiting(host: HostProcess, workflow: str, run_id: str) -> dict[str, Any]:
    return wait_run(host, workflow, run_id, until=lambda s: s["state"] in ("waiting_for_input", "failed", "completed"))


def answer(host: HostProcess, workflow: str, run_id: str, request_id: str, value: Any) -> tuple[int, Any]:
    return call(host, "POST", f"/api/workflows/{workflow}/runs/{run_id}/requests/{request_id}", value)


def test_pending_request_is_listed_with_its_data_and_respond_url(host: HostProcess) -> None:
    run_id = start(host, "approval", {"input": "tea"})["runId"]
    status = waiting(host, "approval", run_id)
    assert status["state"] == "waiting_for_input" and status["runtimeStatus"] == "Running"
    [request] = status["pendingRequests"]
    assert request["data"] == {"text": "draft about tea"}
    assert request["sourceExecutor"] == "approver" and request["responseType"] == "bool"
    assert request["respondUri"].endswith(f"/api/workflows/approval/runs/{run_id}/requests/{request['requestId']}")
    # A wrong type is refused and changes nothing; the run keeps waiting.
    code, body = answer(host, "approval", run_id, request["requestId"], {"not": "a bool"})
    assert (code, body["error"]["code"]) == (400, "invalid_response")
    # Only runs of that workflow take answers.
    code, body = answer(host, "sequential", run_id, request["requestId"], True)
    assert (code, body["error"]["code"]) == (404, "run_not_found")
    assert waiting(host, "approval", run_id)["pendingRequests"] == [request]
    code, body = answer(host, "approval", run_id, request["requestId"], True)
    assert code == 202 and body["status"] == "accepted"
    # The same answer again is idempotent; a different one is a conflict.
    assert answer(host, "approval", run_id, request["requestId"], True)[0] in (202, 409)
    status = wait_run(host, "approval", run_id)
    assert status["outputs"] == ["published: draft about tea"]
    # Answering a finished run is a conflict.
    code, body = answer(host, "approval", run_id, request["requestId"], False)
    assert (code, body["error"]["code"]) == (409, "run_finished")


def test_a_different_second_answer_is_refused(host: HostProcess) -> None:
    run_id = start(host, "approval", {"input": "coffee"})["runId"]
    request_id = waiting(host, "approval", run_id)["pendingRequests"][0]["requestId"]
    # An answer to a request the run has not asked yet is buffered, not refused.
    assert answer(host, "approval", run_id, "not-yet-asked", True)[0] == 202
    assert answer(host, "approval", run_id, request_id, False)[0] == 202
    assert answer(host, "approval", run_id, request_id, False)[0] == 202
    code, body = answer(host, "approval", run_id, request_id, True)
    assert (code, body["error"]["code"]) == (409, "request_already_answered")
    assert wait_run(host, "approval", run_id)["outputs"] == ["rejected: draft about coffee"]


def test_an_early_answer_is_buffered_until_the_run_is_idle(host: HostProcess) -> None:
    # The approver asks in superstep 2 while another branch keeps the run busy for 6 more supersteps.
    run_id = start(host, "busyapproval", {"input": "news"})["runId"]
    status = wait_run(
        host,
        "busyapproval",
        run_id,
        until=lambda s: bool(s["pendingRequests"]) or s["state"] not in ("pending", "running"),
    )
    assert status["state"] == "running", status
    code, _ = answer(host, "busyapproval", run_id, status["pendingRequests"][0]["requestId"], True)
    assert code == 202
    final = wait_run(host, "busyapproval", run_id)
    assert final["runtimeStatus"] == "Completed", final.get("error")
    assert sorted(final["outputs"]) == ["published: draft about news", "slow branch done"]


def test_request_timeout_answers_with_the_timeout_response(host: HostProcess) -> None:
    run_id = start(host, "timedapproval", {"input": "late"})["runId"]
    status = wait_run(host, "timedapproval", run_id, timeout=30)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert status["outputs"] == ["rejected: draft about late"]


def test_request_timeout_without_a_timeout_response_fails_the_run(host: HostProcess) -> None:
    run_id = start(host, "strictapproval", {"input": "late"})["runId"]
    status = wait_run(host, "strictapproval", run_id, timeout=30)
    assert status["runtimeStatus"] == "Failed"
    assert status["error"]["code"] == "request_timed_out"


def test_a_timeout_response_that_does_not_fit_fails_the_run(host: HostProcess) -> None:
    run_id = start(host, "misfitapproval", {"input": "late"})["runId"]
    status = wait_run(host, "misfitapproval", run_id, timeout=30)
    assert status["runtimeStatus"] == "Failed"
    assert status["error"]["code"] == "invalid_answer"
    assert status["step"] <= 3  # failed at once, not a loop of retries


def test_functional_request_and_answer(host: HostProcess) -> None:
    run_id = start(host, "functional", {"input": "one two"})["runId"]
    [request] = waiting(host, "functional", run_id)["pendingRequests"]
    assert request["requestId"] == "publish" and request["data"] == {"question": "publish ONE TWO?"}
    assert answer(host, "functional", run_id, "publish", False)[0] == 202
    status = wait_run(host, "functional", run_id)
    assert status["outputs"] == [{"loud": "ONE TWO", "again": "ONE TWO!", "words": 2, "approved": False}]
    # one checkpoint per @step, plus the ones at the interruption and at the end
    assert len(status["checkpoints"]) >= 3


# -- checkpoints: list, resume, fork ---------------------------------------------------------------


def test_fork_from_a_middle_checkpoint(host: HostProcess) -> None:
    run_id = start(host, "sequential", {"input": "abc"})["runId"]
    first = wait_run(host, "sequential", run_id)
    after_upper = next(c for c in first["checkpoints"] if c["iteration"] == 1)
    forked = start(host, "sequential", {"checkpointId": after_upper["checkpointId"]})
    status = wait_run(host, "sequential", forked["runId"])
    assert status["outputs"] == first["outputs"] == ["done:CBA"]
    _, body = call(host, "GET", f"/api/workflows/sequential/runs/{forked['runId']}/events")
    executors = [e.get("executorId") for e in body["events"] if e["type"] == "executor_invoked"]
    assert executors == ["reverse", "finish"]  # upper is not run again
    # The fork's checkpoints continue the lineage of the one it started from.
    assert status["checkpoints"][0]["previousCheckpointId"] == after_upper["checkpointId"]


def test_resume_a_waiting_run_from_its_checkpoint_and_answer_there(host: HostProcess) -> None:
    run_id = start(host, "approval", {"input": "fork"})["runId"]
    original = waiting(host, "approval", run_id)
    request_id = original["pendingRequests"][0]["requestId"]
    resumed = start(host, "approval", {"checkpointId": original["checkpoints"][-1]["checkpointId"]})["runId"]
    status = waiting(host, "approval", resumed)
    assert [r["requestId"] for r in status["pendingRequests"]] == [request_id]
    assert answer(host, "approval", resumed, request_id, True)[0] == 202
    assert wait_run(host, "approval", resumed)["outputs"] == ["published: draft about fork"]
    # The original run is untouched by the fork's answer.
    assert waiting(host, "approval", run_id)["state"] == "waiting_for_input"
    assert call(host, "POST", f"/api/workflows/approval/runs/{run_id}/terminate", {"reason": "test"})[0] == 202


def test_checkpoints_are_readable_with_agent_frameworks_checkpoint_storage(host: HostProcess, azurite: Any) -> None:
    from azure.storage.blob import BlobServiceClient

    from durableagent import BlobCheckpointStorage

    run_id = start(host, "sequential", {"input": "local"})["runId"]
    status = wait_run(host, "sequential", run_id)
    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        "workflow-checkpoints"
    )
    storage = BlobCheckpointStorage(container)
    middle = next(c for c in status["checkpoints"] if c["iteration"] == 2)["checkpointId"]
    checkpoint = asyncio.run(storage.load(middle))
    assert checkpoint.workflow_name == "sequential" and checkpoint.iteration_count == 2
    assert middle in asyncio.run(storage.list_checkpoint_ids(workflow_name="sequential"))

    async def finish_in_process() -> list[Any]:
        result = await zoo.sequential().run(checkpoint_id=middle, checkpoint_storage=storage)
        return result.get_outputs()

    assert asyncio.run(finish_in_process()) == ["done:LACOL"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"checkpointId": "no-such-checkpoint"}, 404, "checkpoint_not_found"),
        ({"checkpointId": "../../etc"}, 404, "checkpoint_not_found"),
        ({"checkpointId": "x", "input": "y"}, 400, "invalid_request"),
    ],
)
def test_bad_checkpoint_starts(host: HostProcess, body: Any, status: int, code: str) -> None:
    answer_code, answer_body = call(host, "POST", "/api/workflows/sequential/runs", body)
    assert (answer_code, answer_body["error"]["code"]) == (status, code)


def test_a_checkpoint_of_another_workflow_is_not_found(host: HostProcess) -> None:
    run_id = start(host, "sequential", {"input": "q"})["runId"]
    checkpoint_id = wait_run(host, "sequential", run_id)["checkpoints"][1]["checkpointId"]
    code, body = call(host, "POST", "/api/workflows/fanout/runs", {"checkpointId": checkpoint_id})
    assert (code, body["error"]["code"]) == (404, "checkpoint_not_found")


# -- size: many supersteps keep one execution's history bounded -------------------------------------


def test_two_hundred_supersteps_with_bounded_history(host: HostProcess) -> None:
    run_id = start(host, "looping", {"input": 200})["runId"]
    status = wait_run(host, "looping", run_id, timeout=240)
    assert status["runtimeStatus"] == "Completed", status.get("error")
    assert status["outputs"] == [200] and status["step"] == 200
    _, _, raw = host.request("GET", f"/runtime/webhooks/durabletask/instances/{run_id}?showHistory=true")
    history = json.loads(raw)["historyEvents"]
    size = len(json.dumps(history))
    print(f"\n200 supersteps: history of the last execution has {len(history)} events, {size} bytes")
    assert len(history) <= 3 * 50 + 10  # one continue-as-new per 50 supersteps
    assert len(status["checkpoints"]) == 201


# -- errors, waiting, failure, termination ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/workflows/nope/runs", {"input": "x"}, 404, "workflow_not_found"),
        ("/api/workflows/sequential/runs", b"{not json", 400, "invalid_json"),
        ("/api/workflows/sequential/runs", [1, 2], 400, "invalid_json"),
        ("/api/workflows/sequential/runs", {}, 400, "invalid_input"),
        ("/api/workflows/sequential/runs", {"input": 42}, 400, "invalid_input"),
        ("/api/workflows/routing/runs", {"input": "not a ticket"}, 400, "invalid_input"),
        ("/api/workflows/sequential/runs", {"input": "x", "runId": "has space"}, 400, "invalid_request"),
        ("/api/workflows/sequential/runs", {"input": "x", "runId": 7}, 400, "invalid_request"),
        ("/api/workflows/sequential/runs", {"input": "x", "timeoutSeconds": "soon"}, 400, "invalid_request"),
        ("/api/workflows/sequential/runs", {"input": "x", "waitForCompletion": "yes"}, 400, "invalid_request"),
        ("/api/workflows/sequential/runs/unknown-run", None, 404, "run_not_found"),
    ],
)
def test_bad_requests_get_stable_codes(host: HostProcess, path: str, body: Any, status: int, code: str) -> None:
    method = "GET" if path.endswith("unknown-run") else "POST"
    answer_code, answer_body = call(host, method, path, body)
    assert (answer_code, answer_body["error"]["code"]) == (status, code), answer_body


def test_bad_requests_start_nothing(host: HostProcess) -> None:
    for body in (
        {"runId": "bad-run-1"},
        {"input": 5, "runId": "bad-run-2"},
        {"input": "x", "runId": "bad-run-3", "timeoutSeconds": 0},
    ):
        assert call(host, "POST", "/api/workflows/sequential/runs", body)[0] == 400
    for run_id in ("bad-run-1", "bad-run-2", "bad-run-3"):
        assert call(host, "GET", f"/api/workflows/sequential/runs/{run_id}")[0] == 404


def test_wait_for_completion_and_custom_run_id(host: HostProcess) -> None:
    code, body = call(host, "POST", "/api/workflows/sequential/runs?wait=true", {"input": "w", "runId": "my-run-1"})
    assert code == 200 and body["runId"] == "my-run-1" and body["outputs"] == ["done:W"]
    code, body = call(host, "POST", "/api/workflows/sequential/runs", {"input": "w", "runId": "my-run-1"})
    assert (code, body["error"]["code"]) == (409, "run_exists")
    # A waiting run answers when it needs input, with the request to answer.
    code, body = call(host, "POST", "/api/workflows/approval/runs", {"input": "w", "waitForCompletion": True})
    assert code == 200 and body["state"] == "waiting_for_input" and body["pendingRequests"]
    call(host, "POST", f"/api/workflows/approval/runs/{body['runId']}/terminate")


def test_an_executor_failure_fails_the_run(host: HostProcess) -> None:
    run_id = start(host, "failing", {"input": "boom"})["runId"]
    status = wait_run(host, "failing", run_id)
    assert status["runtimeStatus"] == "Failed"
    # A code and the executor: the exception's text ("cannot handle boom") is for nobody but the log's type.
    assert status["error"]["code"] == "executor_failed" and "boom" not in status["error"]["message"]
    _, body = call(host, "GET", f"/api/workflows/failing/runs/{run_id}/events")
    assert [e["type"] for e in body["events"]][-2:] == ["executor_failed", "failed"]
    assert "boom" not in json.dumps(body["events"][-2:])


def test_terminate(host: HostProcess) -> None:
    run_id = start(host, "approval", {"input": "stop"})["runId"]
    waiting(host, "approval", run_id)
    code, body = call(host, "POST", f"/api/workflows/approval/runs/{run_id}/terminate", {"reason": "no longer needed"})
    assert code == 202, body
    assert wait_run(host, "approval", run_id)["runtimeStatus"] == "Terminated"
    code, body = call(host, "POST", f"/api/workflows/approval/runs/{run_id}/terminate")
    assert (code, body["error"]["code"]) == (409, "run_finished")


def test_health_lists_workflows(host: HostProcess) -> None:
    code, body = call(host, "GET", "/api/health")
    assert code == 200
    kinds = {w["name"]: w["type"] for w in body["workflows"]}
    assert kinds["sequential"] == "graph" and kinds["functional"] == "functional"


# -- size: large inputs and outputs travel by reference --------------------------------------------


def test_large_input_and_output_travel_by_reference(host: HostProcess) -> None:
    text = "abcdefgh" * 8000  # 64 KB
    run_id = start(host, "sequential", {"input": text})["runId"]
    status = wait_run(host, "sequential", run_id)
    assert status["outputs"] == [f"done:{text.upper()[::-1]}"]
    _, _, raw = host.request("GET", f"/runtime/webhooks/durabletask/instances/{run_id}?showHistory=true&showInput=true")
    assert len(raw) < 16 * 1024, len(raw)  # neither the input nor the output is in the history


# -- the Python API ----------------------------------------------------------------------------------


def test_python_api_starts_runs_and_reads_checkpoints_and_events(host: HostProcess) -> None:
    code, body = call(host, "POST", "/api/python/sequential/runs", {"input": "py"})
    assert code == 200
    run_id = body["runId"]
    status = wait_run(host, "sequential", run_id)
    assert status["outputs"] == ["done:YP"]
    code, body = call(host, "GET", f"/api/python/sequential/runs/{run_id}")
    assert body["checkpoints"] == status["checkpoints"]
    assert body["eventTypes"][0] == "superstep_started" and "output" in body["eventTypes"]
    fork_from = status["checkpoints"][2]["checkpointId"]
    code, body = call(host, "POST", "/api/python/sequential/runs", {"checkpointId": fork_from})
    assert wait_run(host, "sequential", body["runId"])["outputs"] == ["done:YP"]
    # The Python API checks checkpoints as the HTTP route does.
    code, body = call(host, "POST", "/api/python/sequential/runs", {"checkpointId": "no-such-checkpoint"})
    assert code == 400 and "No checkpoint" in body["refused"]
    code, body = call(host, "POST", "/api/python/fanout/runs", {"checkpointId": fork_from})
    assert code == 400 and "has no checkpoint" in body["refused"]


def test_an_answer_given_before_the_request_is_asked_is_used(host: HostProcess) -> None:
    run_id = start(host, "lateask", {"input": 1.0})["runId"]
    code, _ = answer(host, "lateask", run_id, "go", True)  # the run is still in its first step
    assert code == 202
    assert wait_run(host, "lateask", run_id)["outputs"] == ["went"]


def test_an_early_answer_that_does_not_fit_is_dropped_and_a_good_one_still_works(host: HostProcess) -> None:
    run_id = start(host, "lateask", {"input": 1.0})["runId"]
    assert answer(host, "lateask", run_id, "go", "maybe")[0] == 202  # cannot be checked yet
    status = waiting(host, "lateask", run_id)
    assert status["state"] == "waiting_for_input"  # the misfit answer was dropped, not used
    assert answer(host, "lateask", run_id, "go", False)[0] == 202
    assert wait_run(host, "lateask", run_id)["outputs"] == ["stayed"]
