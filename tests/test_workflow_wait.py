"""A waiting workflow start (``?wait=true``) is woken by its orchestration instead of sleeping out its
back-off (issue 13). No timings asserted: polls are a minute apart, so an answer shows the wake-up."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from agent_framework import Executor, WorkflowBuilder, WorkflowContext, handler

from durableagent import _wakeups, _workflow_http
from durableagent._workflow_http import WorkflowHttpApi
from durableagent._workflow_orchestrator import WorkflowRunError, orchestrate
from durableagent._workflow_step import WorkflowSpec, pack, run_step, waiter_key
from durableagent._workflow_store import BlobCheckpointStorage, CheckpointEntry, RecentIndexes, RunStore

NAME = "Echo"


class _Echo(Executor):
    @handler
    async def echo(self, message: str, ctx: WorkflowContext[Any, str]) -> None:
        await ctx.yield_output(message)


def _spec() -> WorkflowSpec:
    return WorkflowSpec(name=NAME, workflow=WorkflowBuilder(name=NAME, start_executor=_Echo(id="echo")).build())


def _step_result(checkpoint_id: str, *, pending: dict[str, Any] | None = None, error: Any = None) -> dict[str, Any]:
    return {
        "checkpointId": checkpoint_id,
        "iteration": 1,
        "hasMessages": False,
        "pending": pending or {},
        "outputs": [],
        "eventCount": 0,
        "error": error,
    }


@dataclass
class _Context:
    """Enough of ``DurableOrchestrationContext`` to drive ``orchestrate`` by hand."""

    instance_id: str
    orchestration_input: dict[str, Any]
    is_replaying: bool = False
    custom_status: Any = None
    current_utc_datetime: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc))

    def get_input(self) -> dict[str, Any]:
        return self.orchestration_input

    def call_activity(self, name: str, request: Any) -> tuple[str, Any]:
        return ("activity", name)

    def set_custom_status(self, status: Any) -> None:
        self.custom_status = status

    def wait_for_external_event(self, name: str) -> tuple[str, str]:
        return ("event", name)


def _drive(context: _Context, spec: WorkflowSpec, results: list[Any]) -> Any:
    """Run the orchestrator generator, answering each activity in turn; its return value."""
    body = orchestrate(context, spec)
    body.send(None)
    try:
        for result in results:
            body.send(result)
    except StopIteration as stop:
        return stop.value
    return None


@pytest.mark.parametrize(
    ("results", "raises"),
    [
        ([_step_result("c1")], False),  # completed
        ([_step_result("c1", error={"code": "executor_failed", "message": "Executor 'x' failed."})], True),
        ([_step_result("c1", pending={"r1": {"requestId": "r1"}}), {}], False),  # waiting for input
    ],
    ids=["completed", "failed", "waiting_for_input"],
)
def test_the_orchestration_wakes_a_waiter_of_its_run_when_it_settles(results: list[Any], raises: bool) -> None:
    spec = _spec()

    async def main(replaying: bool) -> bool:
        with _wakeups.watch(waiter_key(NAME), "run-1") as woken:
            context = _Context("run-1", {"input": {"inline": "x"}}, is_replaying=replaying)
            try:
                _drive(context, spec, results)
            except WorkflowRunError:
                assert raises
            await asyncio.sleep(0)  # the notify is delivered through the loop
            await asyncio.sleep(0)
            return woken.is_set()

    assert asyncio.run(main(replaying=False))
    assert not asyncio.run(main(replaying=True))  # a replayed episode settled nothing new


class _Forward(Executor):
    @handler
    async def forward(self, message: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(message + "!")


class _MemoryContainer:
    """Just enough of a blob container client, in memory."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, Any]] = {}

    def create_container(self) -> None:
        pass

    def upload_blob(self, name: str, data: bytes, overwrite: bool = True, metadata: Any = None) -> None:
        self.blobs[name] = (bytes(data), metadata)

    def download_blob(self, name: str) -> Any:
        return SimpleNamespace(readall=lambda: self.blobs[name][0])

    def list_blobs(self, name_starts_with: str, include: Any = None) -> list[Any]:
        found = [(n, m) for n, (_, m) in self.blobs.items() if n.startswith(name_starts_with)]
        return [SimpleNamespace(name=n, metadata=m) for n, m in found]


def test_the_step_that_ends_a_run_wakes_its_waiter_and_earlier_steps_do_not() -> None:
    forward, echo = _Forward(id="forward"), _Echo(id="echo")
    workflow = WorkflowBuilder(name=NAME, start_executor=forward).add_edge(forward, echo).build()
    spec = WorkflowSpec(name=NAME, workflow=workflow)
    storage = BlobCheckpointStorage(_MemoryContainer())  # type: ignore[arg-type]

    async def main() -> list[bool]:
        woken_after = []
        with _wakeups.watch(waiter_key(NAME), "run-1") as woken:
            request: dict[str, Any] = {"runId": "run-1", "step": 0, "checkpointId": None, "answers": None}
            request["input"] = pack("hi", storage, NAME, "run-1", "input")
            for step in range(2):
                result = await run_step(spec, storage, request)
                await asyncio.sleep(0)  # the notify is delivered through the loop
                woken_after.append(woken.is_set())
                request = {"runId": "run-1", "step": step + 1, "checkpointId": result["checkpointId"], "answers": None}
            assert not result["hasMessages"] and result["error"] is None
        return woken_after

    assert asyncio.run(main()) == [False, True]


class _NoContainer:
    """A blob container with one run's checkpoint index in it; counts the listings."""

    def __init__(self, checkpoint_id: str) -> None:
        self.checkpoint_id = checkpoint_id
        self.listings = 0

    def list_blobs(self, name_starts_with: str, include: Any = None) -> list[Any]:
        self.listings += 1
        meta = {"iteration": "1", "previous": "", "timestamp": "2026-01-01T00:00:00"}
        return [SimpleNamespace(name=f"{name_starts_with}00000000/20260101_{self.checkpoint_id}", metadata=meta)]


class _Orchestrations:
    """A durable client whose orchestration runs on a thread once the waiter looked, and whose host
    commits the settled status only after ``commit_after_looks`` more looks than it took to finish."""

    def __init__(self, spec: WorkflowSpec, commit_after_looks: int) -> None:
        self.spec = spec
        self.commit_after_looks = commit_after_looks
        self.looks = 0
        self.looked = threading.Condition()
        self.status: Any = None
        self.threads: list[threading.Thread] = []

    def _wait_looks(self, count: int) -> None:
        with self.looked:
            self.looked.wait_for(lambda: self.looks >= count, 30)

    async def get_status(self, run_id: str) -> Any:
        if not self.threads:
            return None  # not started: the start route asks when given a run id
        with self.looked:
            self.looks += 1
            self.looked.notify_all()
        return self.status or _status(run_id, "Running", {"state": "running"}, None)

    async def start_new(self, name: str, run_id: str, orchestration_input: Any) -> str:
        def run() -> None:
            self._wait_looks(1)  # the run settles after the waiter's first look
            context = _Context(run_id, orchestration_input)
            output = _drive(context, self.spec, [_step_result("c-final")])  # wakes the waiter ...
            seen = self.looks
            self._wait_looks(seen + self.commit_after_looks)  # ... and the host commits later
            self.status = _status(run_id, "Completed", context.custom_status, output)

        thread = threading.Thread(target=run)
        self.threads.append(thread)
        thread.start()
        return run_id


def _status(run_id: str, runtime: str, custom: Any, output: Any) -> Any:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return SimpleNamespace(
        name=f"workflow-{NAME}",
        instance_id=run_id,
        runtime_status=runtime,
        custom_status=custom,
        output=output,
        created_time=now,
        last_updated_time=now,
    )


@pytest.fixture
def slow_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    # Polls a minute apart: a waiting start that answers at once was woken, not polled.
    monkeypatch.setattr(_workflow_http, "_FIRST_POLL_SECONDS", 60.0)
    monkeypatch.setattr(_workflow_http, "_MAX_POLL_SECONDS", 60.0)


def _waited_start(
    storage: BlobCheckpointStorage, commit_after_looks: int = 0, **body: Any
) -> tuple[dict[str, Any], _Orchestrations]:
    spec = _spec()
    api = WorkflowHttpApi(lambda: {NAME.lower(): spec}, lambda: storage)
    client = _Orchestrations(spec, commit_after_looks)
    req = func.HttpRequest(
        "POST",
        f"http://localhost/api/workflows/{NAME}/runs",
        headers={"Content-Type": "application/json"},
        params={"wait": "true", "timeoutSeconds": "120"},  # longer than the test waits
        route_params={"name": NAME},
        body=json.dumps({"input": "x", **body}).encode(),
    )

    async def main() -> func.HttpResponse:
        return await asyncio.wait_for(api.guarded(api.start)(req, client), 50)  # type: ignore[arg-type]

    response = asyncio.run(main())
    for thread in client.threads:
        thread.join()
    answer = json.loads(response.get_body())
    assert response.status_code == 200, answer
    assert answer["runtimeStatus"] == "Completed"
    assert _wakeups.waiting() == 0
    return answer, client


@pytest.mark.parametrize("commit_after_looks", [0, 2], ids=["committed-at-once", "committed-after-two-looks"])
def test_a_waiting_start_is_woken_by_its_orchestration(slow_polls: None, commit_after_looks: int) -> None:
    container = _NoContainer("c-final")
    answer, _ = _waited_start(BlobCheckpointStorage(container), commit_after_looks)  # type: ignore[arg-type]
    assert [c["checkpointId"] for c in answer["checkpoints"]] == ["c-final"]
    # The index was listed once, while the host committed: the answer did not list it again.
    assert container.listings == 1


def _entry(step: int, checkpoint_id: str, previous: str | None) -> CheckpointEntry:
    return CheckpointEntry(checkpoint_id, step, step + 1, "2026-01-01T00:00:00", previous)


def test_a_waiting_start_whose_steps_ran_here_takes_their_index_without_listing(slow_polls: None) -> None:
    container = _NoContainer("c-final")
    storage = BlobCheckpointStorage(container)  # type: ignore[arg-type]
    storage.recent_indexes.record(NAME, "run-9", 0, [_entry(0, "c0", None)])
    storage.recent_indexes.record(NAME, "run-9", 1, [_entry(1, "c-final", "c0")])
    answer, _ = _waited_start(storage, runId="run-9")
    assert [c["checkpointId"] for c in answer["checkpoints"]] == ["c0", "c-final"]
    assert container.listings == 0
    # When they are not provably the whole index (here: not ending with the final checkpoint), it is listed.
    storage.recent_indexes.record(NAME, "run-10", 0, [_entry(0, "c-other", None)])
    answer, _ = _waited_start(storage, runId="run-10")
    assert [c["checkpointId"] for c in answer["checkpoints"]] == ["c-final"]
    assert container.listings == 1


def test_recent_indexes_hold_only_whole_chained_runs() -> None:
    recent = RecentIndexes(max_runs=2)
    recent.record("w", "r1", 0, [_entry(0, "a", None)])
    recent.record("w", "r1", 1, [_entry(1, "b", "a")])
    assert [e.checkpoint_id for e in recent.entries("w", "r1") or []] == ["a", "b"]
    recent.record("w", "r1", 1, [_entry(1, "b2", "a")])  # a retry here overwrites its step
    assert [e.checkpoint_id for e in recent.entries("w", "r1") or []] == ["a", "b2"]
    recent.record("w", "r1", 2, [_entry(2, "c", "b")])  # made from an attempt elsewhere: the chain breaks
    assert recent.entries("w", "r1") is None
    recent.record("w", "r2", 1, [_entry(1, "x", "y")])  # its step 0 ran elsewhere
    assert recent.entries("w", "r2") is None
    recent.record("w", "r3", 0, [_entry(0, "a", None), _entry(0, "a2", "a")])  # step 0: the entry checkpoint too
    recent.record("w", "r3", 1, [_entry(1, "b", "a2")])
    assert [e.checkpoint_id for e in recent.entries("w", "r3") or []] == ["a", "a2", "b"]
    recent.record("w", "r3", 2, [])  # a step that saved nothing: the run is unknown
    assert recent.entries("w", "r3") is None
    recent.record("w", "r4", 0, [_entry(0, "a", None)])
    recent.record("w", "r5", 0, [_entry(0, "a", None)])
    assert recent.entries("w", "r1") is None  # bounded: the oldest run went
    assert recent.entries("w", "r5") is not None


def test_the_index_this_process_keeps_is_the_stored_one() -> None:
    first, second, echo = _Forward(id="f1"), _Forward(id="f2"), _Echo(id="echo")
    workflow = WorkflowBuilder(name=NAME, start_executor=first).add_chain([first, second, echo]).build()
    spec = WorkflowSpec(name=NAME, workflow=workflow)
    storage = BlobCheckpointStorage(_MemoryContainer())  # type: ignore[arg-type]

    async def main() -> str:
        request: dict[str, Any] = {"runId": "run-1", "step": 0, "checkpointId": None, "answers": None}
        request["input"] = pack("hi", storage, NAME, "run-1", "input")
        for step in range(3):
            result = await run_step(spec, storage, request)
            request = {"runId": "run-1", "step": step + 1, "checkpointId": result["checkpointId"], "answers": None}
        return str(result["checkpointId"])

    final = asyncio.run(main())
    kept = storage.recent_indexes.entries(NAME, "run-1")
    assert kept == RunStore(storage).checkpoints(NAME, "run-1")
    assert kept is not None and kept[-1].checkpoint_id == final
    assert [e.step for e in kept] == [0, 0, 1, 2]  # step 0 also saved Agent Framework's entry checkpoint
