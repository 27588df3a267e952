"""``BlobCheckpointStorage`` against Azurite: Agent Framework's ``CheckpointStorage`` protocol and run records."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from agent_framework import WorkflowCheckpoint
from agent_framework.exceptions import WorkflowCheckpointException
from azure.storage.blob import BlobServiceClient
from zoo_loader import zoo

from durableagent import BlobCheckpointStorage
from durableagent._workflow_store import RecentCheckpoints, RunCheckpointStorage, RunStore, encode_events

pytestmark = pytest.mark.e2e


@dataclass
class Unregistered:
    value: int


@pytest.fixture
def storage(azurite: Any) -> BlobCheckpointStorage:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return BlobCheckpointStorage(service.get_container_client(f"ckpt-{uuid.uuid4().hex[:12]}"))


def checkpoint(workflow: str, iteration: int = 0, **state: Any) -> WorkflowCheckpoint:
    return WorkflowCheckpoint(workflow_name=workflow, graph_signature_hash="h", iteration_count=iteration, state=state)


def test_protocol_round_trip_and_listing(storage: BlobCheckpointStorage) -> None:
    async def go() -> None:
        first = checkpoint("alpha", 1, ticket=zoo.Ticket("refund", 3), when={"a": [1, 2]})
        second = checkpoint("alpha", 2)
        other = checkpoint("beta")
        for c in (first, second, other):
            assert await storage.save(c) == c.checkpoint_id
        loaded = await storage.load(first.checkpoint_id)
        assert loaded.state == {"ticket": zoo.Ticket("refund", 3), "when": {"a": [1, 2]}}
        assert loaded.iteration_count == 1 and loaded.workflow_name == "alpha"
        assert sorted(await storage.list_checkpoint_ids(workflow_name="alpha")) == sorted(
            [first.checkpoint_id, second.checkpoint_id]
        )
        listed = await storage.list_checkpoints(workflow_name="alpha")
        assert [c.checkpoint_id for c in listed] == [first.checkpoint_id, second.checkpoint_id]
        latest = await storage.get_latest(workflow_name="alpha")
        assert latest is not None and latest.checkpoint_id == second.checkpoint_id
        assert await storage.get_latest(workflow_name="nobody") is None
        assert await storage.delete(first.checkpoint_id) is True
        assert await storage.delete(first.checkpoint_id) is False
        with pytest.raises(WorkflowCheckpointException):
            await storage.load(first.checkpoint_id)

    asyncio.run(go())


def test_unsafe_ids_and_unregistered_types_are_refused(storage: BlobCheckpointStorage) -> None:
    async def go() -> None:
        with pytest.raises(WorkflowCheckpointException):
            await storage.load("../escape")
        assert await storage.delete("../escape") is False
        with pytest.raises(WorkflowCheckpointException, match="blocked for type"):
            await storage.save(checkpoint("alpha", value=Unregistered(1)))
        # Nothing was stored by the refused save.
        assert await storage.list_checkpoint_ids(workflow_name="alpha") == []

    asyncio.run(go())


def test_agent_framework_runs_and_resumes_on_it(storage: BlobCheckpointStorage) -> None:
    async def go() -> None:
        result = await zoo.sequential().run("abc", checkpoint_storage=storage)
        assert result.get_outputs() == ["done:CBA"]
        saved = await storage.list_checkpoints(workflow_name="sequential")
        assert [c.iteration_count for c in saved] == [0, 1, 2, 3]
        resumed = await zoo.sequential().run(checkpoint_id=saved[1].checkpoint_id, checkpoint_storage=storage)
        assert resumed.get_outputs() == ["done:CBA"]

    asyncio.run(go())


def test_run_index_forgets_a_crashed_attempt(storage: BlobCheckpointStorage) -> None:
    async def go() -> None:
        crashed = RunCheckpointStorage(storage, "alpha", "run-1", 3)
        await crashed.save(checkpoint("alpha", 3))
        assert crashed.latest_of_step() == crashed.saved[-1].checkpoint_id
        retry = RunCheckpointStorage(storage, "alpha", "run-1", 3)
        retry.forget_step()
        assert retry.latest_of_step() is None
        await retry.save(checkpoint("alpha", 3))
        await RunCheckpointStorage(storage, "alpha", "run-1", 4).save(checkpoint("alpha", 4))
        entries = RunStore(storage).checkpoints("alpha", "run-1")
        assert [(e.step, e.iteration) for e in entries] == [(3, 3), (4, 4)]
        assert entries[0].checkpoint_id == retry.saved[0].checkpoint_id
        assert RunStore(storage).checkpoints("alpha", "run-2") == []

    asyncio.run(go())


def test_a_graph_steps_index_is_written_after_it_and_a_retry_overwrites_the_crashed_attempts(
    storage: BlobCheckpointStorage,
) -> None:
    async def go() -> None:
        crashed = RunCheckpointStorage(storage, "alpha", "run-1", 3, defer_index=True)
        await crashed.save(checkpoint("alpha", 3))
        assert RunStore(storage).checkpoints("alpha", "run-1") == []  # indexed once the step is over
        crashed.write_index()
        retry = RunCheckpointStorage(storage, "alpha", "run-1", 3, defer_index=True)
        await retry.save(checkpoint("alpha", 3))
        retry.write_index()  # no listing, no delete: the same entry name
        nxt = RunCheckpointStorage(storage, "alpha", "run-1", 4, defer_index=True)
        await nxt.save(checkpoint("alpha", 4))
        nxt.write_index()
        entries = RunStore(storage).checkpoints("alpha", "run-1")
        assert [(e.step, e.iteration, e.checkpoint_id) for e in entries] == [
            (3, 3, retry.saved[0].checkpoint_id),
            (4, 4, nxt.saved[0].checkpoint_id),
        ]
        assert entries[1].previous_checkpoint_id == nxt.saved[0].previous_checkpoint_id
        # Entries named by timestamp and id (functional steps, and runs indexed before) still read.
        functional = RunCheckpointStorage(storage, "alpha", "run-1", 5)
        await functional.save(checkpoint("alpha", 5))
        assert RunStore(storage).checkpoints("alpha", "run-1")[-1].checkpoint_id == functional.saved[0].checkpoint_id

    asyncio.run(go())


def test_a_checkpoint_saved_or_read_in_this_process_is_read_again_without_a_download(
    storage: BlobCheckpointStorage,
) -> None:
    ours = BlobCheckpointStorage(storage.container)
    downloads: list[str] = []
    download = ours._get  # every read of a blob goes through it, over REST or the SDK
    ours._get = lambda name: (downloads.append(name), download(name))[1]  # type: ignore[method-assign]
    step = RunCheckpointStorage(ours, "alpha", "run-1", 0)

    async def go() -> None:
        saved = checkpoint("alpha", 1, ticket=zoo.Ticket("refund", 3))
        await step.save(saved)  # through a step's storage: the app-wide one keeps the copy
        first, second = await ours.load(saved.checkpoint_id), await ours.load(saved.checkpoint_id)
        assert downloads == []
        assert first.state == second.state == {"ticket": zoo.Ticket("refund", 3)}
        assert first.state["ticket"] is not second.state["ticket"]  # decoded each time: nothing shared
        other = checkpoint("alpha", 2)
        await storage.save(other)  # written by another process
        await ours.load(other.checkpoint_id)
        await ours.load(other.checkpoint_id)
        assert len(downloads) == 1
        assert await ours.delete(saved.checkpoint_id) is True
        with pytest.raises(WorkflowCheckpointException):
            await ours.load(saved.checkpoint_id)

    asyncio.run(go())


def test_recent_checkpoints_are_bounded() -> None:
    recent = RecentCheckpoints(max_items=2, max_bytes=100)
    recent.put("a", b"1" * 10)
    recent.put("b", b"2" * 10)
    assert recent.get("a") == b"1" * 10  # now the most recent
    recent.put("c", b"3" * 10)
    assert (recent.get("a"), recent.get("b"), recent.get("c")) == (b"1" * 10, None, b"3" * 10)
    recent.put("big", b"x" * 30)  # over a quarter of the bytes: never kept
    assert recent.get("big") is None
    recent.put("d", b"4" * 20)
    recent.put("e", b"5" * 20)
    assert recent.get("a") is None and recent.get("e") == b"5" * 20
    recent.drop("e")
    assert recent.get("e") is None


def test_answers_are_recorded_once(storage: BlobCheckpointStorage) -> None:
    store = RunStore(storage)
    assert store.put_answer("alpha", "run-1", "req-1", {"ok": True}) is True
    assert store.put_answer("alpha", "run-1", "req-1", {"ok": True}) is True  # same answer: idempotent
    assert store.put_answer("alpha", "run-1", "req-1", {"ok": False}) is False
    assert store.answers("alpha", "run-1", ["req-1", "req-2"]) == {"req-1": {"ok": True}}
    assert store.answers("alpha", "run-2", ["req-1"]) == {}


def test_events_round_trip(storage: BlobCheckpointStorage) -> None:
    async def go() -> list[Any]:
        return list(await zoo.sequential().run("xy"))

    events = asyncio.run(go())
    store = RunStore(storage)
    store.write_events("sequential", "run-1", 1, events[2:])
    store.write_events("sequential", "run-1", 0, events[:2])
    store.write_events("sequential", "run-1", 1, events[2:])  # a retried step overwrites its own blob
    read = store.read_events("sequential", "run-1")
    assert [(e.type, e.executor_id, e.data) for e in read] == [(e.type, e.executor_id, e.data) for e in events]


def test_a_graph_steps_events_ride_in_its_index_entry_and_read_in_step_order(storage: BlobCheckpointStorage) -> None:
    async def go() -> list[Any]:
        events = list(await zoo.sequential().run("xy"))
        assert len(events) >= 4
        for step, part in ((2, events[3:]), (0, events[:1])):  # graph steps: in their index entries
            for _ in range(2):  # a retried step overwrites its own entry
                scoped = RunCheckpointStorage(storage, "sequential", "run-1", step, defer_index=True)
                await scoped.save(checkpoint("sequential", step))
                scoped.write_index(encode_events(part))
        RunStore(storage).write_events("sequential", "run-1", 1, events[1:3])  # a step that saved nothing
        await RunCheckpointStorage(storage, "sequential", "run-1", 1).save(checkpoint("sequential", 1))  # empty entry
        return events

    events = asyncio.run(go())
    read = RunStore(storage).read_events("sequential", "run-1")
    assert [(e.type, e.executor_id, e.data) for e in read] == [(e.type, e.executor_id, e.data) for e in events]
    assert [e.step for e in RunStore(storage).checkpoints("sequential", "run-1")] == [0, 1, 2]
