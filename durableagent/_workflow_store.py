"""Where workflow runs keep their data in blob storage: checkpoints, per-run indexes, events, answers.

Checkpoints are Agent Framework ``WorkflowCheckpoint`` objects, encoded with Agent Framework's own
checkpoint codec and read back through its ``CheckpointStorage`` protocol, so a checkpoint written by
a durable run can be loaded by an in-process ``workflow.run(checkpoint_id=..., checkpoint_storage=...)``
and the other way round. Everything a run produces is addressed by its run id and step number, so a
step retried after a crash overwrites its own blobs instead of adding new ones.

Layout (one container):
  ``checkpoints/<checkpoint id>.json``                     the checkpoint, metadata: workflow
  ``runs/<workflow>/<run>/checkpoints/<step>/<ts>_<id>``   index entry of a functional step's save,
                                                         metadata: iteration, previous, timestamp, checkpoint
  ``runs/<workflow>/<run>/checkpoints/<step>/<n>_superstep``  index entry of a graph step's save (same
                                                         metadata); the first one holds the step's events
  ``runs/<workflow>/<run>/events/<step>.json``             the events of a functional step (or of a graph
                                                         step that saved no checkpoint)
  ``runs/<workflow>/<run>/answers/<request id>.json``      an answer to a human-in-the-loop request
  ``runs/<workflow>/<run>/payloads/<name>.json``           a large input or output, by reference
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent_framework import WorkflowCheckpoint
from agent_framework._workflows._checkpoint_encoding import decode_checkpoint_value, encode_checkpoint_value
from agent_framework.exceptions import WorkflowCheckpointException
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from ._blobs import ContainerOnce, service_from_environment

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

DEFAULT_CONTAINER = "workflow-checkpoints"
# Checkpoint ids come from Agent Framework (UUIDs) or from callers resuming a run: keep them path-safe.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


def is_safe_id(value: str) -> bool:
    """Whether ``value`` can name a blob segment (checkpoint, run or request id)."""
    return bool(_SAFE_ID.fullmatch(value))


@dataclass(frozen=True)
class CheckpointEntry:
    """One checkpoint of a run, as the run's index lists it (no blob read needed)."""

    checkpoint_id: str
    step: int
    iteration: int
    timestamp: str
    previous_checkpoint_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpointId": self.checkpoint_id,
            "step": self.step,
            "iteration": self.iteration,
            "timestamp": self.timestamp,
            "previousCheckpointId": self.previous_checkpoint_id,
        }


class RecentCheckpoints:
    """The encoded checkpoints this process saved or read last, by id (bounded by count and bytes).

    A durable run's step N+1 restores the checkpoint step N saved, usually in the same process: it
    is read from here instead of from storage (it is still decoded, so no object is shared). A
    checkpoint's blob is written once under a fresh id and never changed, so a copy cannot go stale;
    ``delete`` drops the copy too.
    """

    def __init__(self, max_items: int = 64, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max_items = max_items
        self._max_bytes = max_bytes

    def get(self, checkpoint_id: str) -> bytes | None:
        with self._lock:
            data = self._items.get(checkpoint_id)
            if data is not None:
                self._items.move_to_end(checkpoint_id)
            return data

    def put(self, checkpoint_id: str, data: bytes) -> None:
        if len(data) > self._max_bytes // 4:
            return  # a large checkpoint would push out many small ones: read it from storage
        with self._lock:
            self._drop(checkpoint_id)
            self._items[checkpoint_id] = data
            self._bytes += len(data)
            while len(self._items) > self._max_items or self._bytes > self._max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)

    def drop(self, checkpoint_id: str) -> None:
        with self._lock:
            self._drop(checkpoint_id)

    def _drop(self, checkpoint_id: str) -> None:
        old = self._items.pop(checkpoint_id, None)
        if old is not None:
            self._bytes -= len(old)


class RecentIndexes:
    """The index entries graph steps wrote in this process, by run (bounded by runs and entries).

    A request waiting for a run reads the run's checkpoints from here instead of listing the index
    (the slowest storage call of a status), but only when they provably are the whole index: every
    step from step 0 on, each checkpoint the parent of the next one, the last the run's final
    checkpoint (``entries`` checks the first two, the caller the last). A step retried in another
    process breaks that chain, and the index is listed as before.
    """

    def __init__(self, max_runs: int = 64, max_entries: int = 512) -> None:
        self._lock = threading.Lock()
        self._runs: OrderedDict[tuple[str, str], dict[int, list[CheckpointEntry]]] = OrderedDict()
        self._max_runs = max_runs
        self._max_entries = max_entries

    def record(self, workflow: str, run_id: str, step: int, entries: list[CheckpointEntry]) -> None:
        """What a graph step indexed (a retry's entries replace its step's; none makes the run unknown)."""
        key = (workflow, run_id)
        with self._lock:
            steps = self._runs.pop(key, None)
            if steps is None:
                if step != 0:
                    return  # the run's earlier steps ran elsewhere (or before this process)
                steps = {}
            if not entries or len(steps) >= self._max_entries:
                return
            steps[step] = list(entries)
            self._runs[key] = steps
            while len(self._runs) > self._max_runs:
                self._runs.popitem(last=False)

    def entries(self, workflow: str, run_id: str) -> list[CheckpointEntry] | None:
        """The run's entries from step 0 on, if every step is there and they chain; else ``None``."""
        with self._lock:
            steps = dict(self._runs.get((workflow, run_id)) or {})
        if not steps or any(i not in steps for i in range(len(steps))):
            return None
        ordered = [entry for i in range(len(steps)) for entry in steps[i]]
        for before, after in itertools.pairwise(ordered):
            if after.previous_checkpoint_id != before.checkpoint_id:
                return None
        return ordered


class BlobCheckpointStorage:
    """Agent Framework ``CheckpointStorage`` backed by Azure Blob Storage (Azurite locally).

    Use it like any Agent Framework checkpoint storage, e.g.
    ``await workflow.run(checkpoint_id=cid, checkpoint_storage=app.checkpoint_storage())``.
    Decoding is restricted like ``FileCheckpointStorage``: Agent Framework, OpenAI and built-in types,
    plus types registered with ``agent_framework.register_checkpoint_type`` or listed here.

    Args:
        container: The blob container holding the checkpoints.
        allowed_checkpoint_types: Extra ``"module:qualname"`` types allowed when decoding.
    """

    def __init__(self, container: ContainerClient, *, allowed_checkpoint_types: list[str] | None = None) -> None:
        from ._blob_rest import ContainerCalls  # with urllib3 and http.client: loaded when storage is first used

        self._container = container
        # Each superstep's writes and reads, straight over REST when it can sign for the container.
        self._calls = ContainerCalls(container)
        self._allowed = frozenset(allowed_checkpoint_types or [])
        self._once = ContainerOnce(container)
        self._recent = RecentCheckpoints()
        self.recent_indexes = RecentIndexes()

    @classmethod
    def from_environment(
        cls,
        setting: str = "AzureWebJobsStorage",
        container: str = DEFAULT_CONTAINER,
        *,
        allowed_checkpoint_types: list[str] | None = None,
    ) -> BlobCheckpointStorage:
        """Storage on the account named by a Functions connection setting."""
        client = service_from_environment(setting).get_container_client(container)
        return cls(client, allowed_checkpoint_types=allowed_checkpoint_types)

    @property
    def container(self) -> ContainerClient:
        return self._container

    def ensure_container(self) -> None:
        self._once.ensure()

    # CheckpointStorage protocol ------------------------------------------------------------------

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        """Store a copy of ``checkpoint`` and return its id."""
        data = self._encode(checkpoint)
        metadata = {"workflow": quote(checkpoint.workflow_name, safe="")}
        await asyncio.to_thread(self._put, _checkpoint_blob(checkpoint.checkpoint_id), data, metadata)
        self._recent.put(checkpoint.checkpoint_id, data)
        return checkpoint.checkpoint_id

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        """Load a checkpoint by id (any workflow).

        Raises:
            WorkflowCheckpointException: No checkpoint has that id, or it cannot be decoded.
        """
        return await asyncio.to_thread(self.load_sync, checkpoint_id)

    async def list_checkpoints(self, *, workflow_name: str) -> list[WorkflowCheckpoint]:
        """Every checkpoint of a workflow, oldest first."""
        ids = await self.list_checkpoint_ids(workflow_name=workflow_name)
        checkpoints = [await self.load(i) for i in ids]
        return sorted(checkpoints, key=lambda c: c.timestamp)

    async def delete(self, checkpoint_id: str) -> bool:
        """Delete a checkpoint; ``False`` when it did not exist."""
        return await asyncio.to_thread(self._delete_sync, checkpoint_id)

    async def get_latest(self, *, workflow_name: str) -> WorkflowCheckpoint | None:
        """The newest checkpoint of a workflow, or ``None``."""
        checkpoints = await self.list_checkpoints(workflow_name=workflow_name)
        return checkpoints[-1] if checkpoints else None

    async def list_checkpoint_ids(self, *, workflow_name: str) -> list[str]:
        """Ids of every checkpoint of a workflow."""
        wanted = quote(workflow_name, safe="")
        return await asyncio.to_thread(
            lambda: [
                b.name[len("checkpoints/") : -len(".json")]
                for b in self._list("checkpoints/", metadata=True)
                if (b.metadata or {}).get("workflow") == wanted
            ]
        )

    # Synchronous helpers (HTTP handlers and activities run them in threads) ----------------------

    def load_sync(self, checkpoint_id: str) -> WorkflowCheckpoint:
        if not is_safe_id(checkpoint_id):
            raise WorkflowCheckpointException(f"No checkpoint found with ID {checkpoint_id}")
        raw = self._recent.get(checkpoint_id) or self._get(_checkpoint_blob(checkpoint_id))
        if raw is None:
            raise WorkflowCheckpointException(f"No checkpoint found with ID {checkpoint_id}")
        self._recent.put(checkpoint_id, raw)
        try:
            decoded = decode_checkpoint_value(json.loads(raw), allowed_types=self._allowed)
        except WorkflowCheckpointException:
            raise
        except Exception as exc:
            raise WorkflowCheckpointException(f"Checkpoint {checkpoint_id} cannot be decoded") from exc
        return WorkflowCheckpoint.from_dict(decoded)

    def _encode(self, checkpoint: WorkflowCheckpoint) -> bytes:
        try:
            encoded = encode_checkpoint_value(checkpoint.to_dict())
            # Refuse at save time what could not be restored later (as FileCheckpointStorage does).
            decode_checkpoint_value(encoded, allowed_types=self._allowed)
        except WorkflowCheckpointException:
            raise
        except Exception as exc:
            raise WorkflowCheckpointException(
                f"Checkpoint {checkpoint.checkpoint_id} cannot be encoded or restored under the allowed types"
            ) from exc
        return json.dumps(encoded, separators=(",", ":")).encode()

    def _delete_sync(self, checkpoint_id: str) -> bool:
        if not is_safe_id(checkpoint_id):
            return False
        self._recent.drop(checkpoint_id)
        try:
            self._container.delete_blob(_checkpoint_blob(checkpoint_id))
            return True
        except ResourceNotFoundError:
            return False

    def _put(self, name: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        self.ensure_container()
        self._calls.put(name, data, metadata)

    def _get(self, name: str) -> bytes | None:
        return self._calls.get(name)

    def _list(self, prefix: str, *, metadata: bool = False) -> list[Any]:
        try:
            return list(self._container.list_blobs(name_starts_with=prefix, include=["metadata"] if metadata else None))
        except ResourceNotFoundError:
            return []


def _checkpoint_blob(checkpoint_id: str) -> str:
    if not is_safe_id(checkpoint_id):
        raise WorkflowCheckpointException(f"Checkpoint id '{checkpoint_id}' cannot be stored")
    return f"checkpoints/{checkpoint_id}.json"


class RunCheckpointStorage(BlobCheckpointStorage):
    """The storage one step of one run writes through: every save is also indexed under the run.

    ``saved`` lists what this step saved, newest last, so the step knows its own checkpoint even
    when the workflow instance remembers checkpoints of other runs.

    With ``defer_index`` (a graph step: one superstep, which a retry redoes from the previous
    checkpoint, so an unindexed checkpoint is never resumed from) a save only stores the checkpoint
    and ``write_index`` indexes what the step saved once it is over, under names fixed by the step
    and the save's ordinal: a retried attempt saves as many checkpoints (two in step 0, whose first
    is Agent Framework's entry checkpoint; one after) and overwrites the entries of the one that
    crashed, so nothing has to be listed or deleted first. Without it (a functional step, which resumes from its
    newest indexed checkpoint) each save is indexed at once, named by its timestamp and id.
    """

    def __init__(
        self, parent: BlobCheckpointStorage, workflow: str, run_id: str, step: int, *, defer_index: bool = False
    ) -> None:
        # The app-wide storage's clients and caches, not new ones for every step.
        self._container = parent.container
        self._calls = parent._calls
        self._allowed = parent._allowed
        self._once = parent._once
        self._recent = parent._recent
        self.recent_indexes = parent.recent_indexes
        self.workflow = workflow
        self.run_id = run_id
        self.step = step
        self.defer_index = defer_index
        self.saved: list[WorkflowCheckpoint] = []

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        checkpoint_id = await super().save(checkpoint)
        if not self.defer_index:
            await asyncio.to_thread(self._index, self._entry(checkpoint))
        self.saved.append(checkpoint)
        return checkpoint_id

    def _entry(self, checkpoint: WorkflowCheckpoint) -> CheckpointEntry:
        return CheckpointEntry(
            checkpoint.checkpoint_id,
            self.step,
            checkpoint.iteration_count,
            checkpoint.timestamp,
            checkpoint.previous_checkpoint_id,
        )

    def write_index(self, events: bytes = b"") -> None:
        """Index what this step saved (with ``defer_index``; without it, saves were indexed already).

        ``events`` (``encode_events``) becomes the body of the step's first entry: one blob is the
        step's index entry and its events (``RunStore.read_events`` reads them from there).
        """
        if self.defer_index:
            entries = [self._entry(checkpoint) for checkpoint in self.saved]
            for ordinal, entry in enumerate(entries):
                self._index(entry, ordinal, events if ordinal == 0 else b"")
            self.recent_indexes.record(self.workflow, self.run_id, self.step, entries)

    def _index(self, entry: CheckpointEntry, ordinal: int | None = None, body: bytes = b"") -> None:
        if ordinal is None:
            leaf = f"{re.sub(r'[^0-9]', '', entry.timestamp)}_{entry.checkpoint_id}"
        else:
            leaf = f"{ordinal:04d}_{_FIXED_LEAF}"
        name = f"{_index_prefix(self.workflow, self.run_id, entry.step)}{leaf}"
        metadata = {"iteration": str(entry.iteration), "previous": entry.previous_checkpoint_id or ""}
        metadata["timestamp"] = entry.timestamp
        metadata["checkpoint"] = entry.checkpoint_id
        self._put(name, body, metadata)

    def forget_step(self) -> None:
        """Drop index entries a crashed earlier attempt of this step left (they are being redone)."""
        for blob in self._list(_index_prefix(self.workflow, self.run_id, self.step)):
            with contextlib.suppress(ResourceNotFoundError):
                self._container.delete_blob(blob.name)

    def latest_of_step(self) -> str | None:
        """The newest checkpoint an earlier attempt of this step saved, if any."""
        entries = RunStore(self).checkpoints(self.workflow, self.run_id, step=self.step)
        return entries[-1].checkpoint_id if entries else None


# The leaf of an index entry named by its step and ordinal: ``<ordinal>_superstep``.
_FIXED_LEAF = "superstep"


def _run_prefix(workflow: str, run_id: str) -> str:
    return f"runs/{workflow}/{run_id}/"


def _index_prefix(workflow: str, run_id: str, step: int | None = None) -> str:
    """Where a run's checkpoint index lives (all of it, or one step's entries)."""
    base = f"{_run_prefix(workflow, run_id)}checkpoints/"
    return base if step is None else f"{base}{step:08d}/"


def encode_events(events: list[Any]) -> bytes:
    """A step's events as stored (Agent Framework's checkpoint codec, as JSON)."""
    return json.dumps(encode_checkpoint_value(events), separators=(",", ":")).encode()


class RunStore:
    """Per-run records beside the checkpoints: the checkpoint index, events and answers."""

    def __init__(self, storage: BlobCheckpointStorage) -> None:
        self.storage = storage

    def checkpoints(self, workflow: str, run_id: str, *, step: int | None = None) -> list[CheckpointEntry]:
        """The run's checkpoints (or one step's) in the order they were made."""
        prefix = _index_prefix(workflow, run_id)
        entries = []
        listed = self.storage._list(_index_prefix(workflow, run_id, step), metadata=True)
        for blob in sorted(listed, key=lambda b: b.name):
            step_text, leaf = blob.name[len(prefix) :].split("/", 1)
            meta = blob.metadata or {}
            entries.append(
                CheckpointEntry(
                    # Entries named by step and ordinal (graph steps) keep the id in their metadata.
                    checkpoint_id=meta.get("checkpoint") or leaf.split("_", 1)[1],
                    step=int(step_text),
                    iteration=int(meta.get("iteration", "0")),
                    timestamp=meta.get("timestamp", ""),
                    previous_checkpoint_id=meta.get("previous") or None,
                )
            )
        return entries

    def write_events(self, workflow: str, run_id: str, step: int, events: list[Any]) -> None:
        """Record a step's events in their own blob (a graph step that saved a checkpoint puts them
        in its index entry instead: ``RunCheckpointStorage.write_index``)."""
        self.storage._put(f"{_run_prefix(workflow, run_id)}events/{step:08d}.json", encode_events(events))

    def read_events(self, workflow: str, run_id: str) -> list[Any]:
        """Every event of the run, in order (Agent Framework ``WorkflowEvent`` objects)."""
        events_prefix = f"{_run_prefix(workflow, run_id)}events/"
        index_prefix = _index_prefix(workflow, run_id)
        steps = [(int(b.name[len(events_prefix) : -len(".json")]), b.name) for b in self.storage._list(events_prefix)]
        for blob in self.storage._list(index_prefix):
            if getattr(blob, "size", 1):  # entries without events are empty
                steps.append((int(blob.name[len(index_prefix) :].split("/", 1)[0]), blob.name))
        events: list[Any] = []
        for _, name in sorted(steps):
            raw = self.storage._get(name)
            if raw:
                events.extend(decode_checkpoint_value(json.loads(raw), allowed_types=self.storage._allowed))
        return events

    def put_answer(self, workflow: str, run_id: str, request_id: str, answer: Any) -> bool:
        """Record an answer once. ``False`` when a different answer is already recorded."""
        name = f"{_run_prefix(workflow, run_id)}answers/{request_id}.json"
        data = json.dumps({"answer": answer}, sort_keys=True, separators=(",", ":")).encode()
        self.storage.ensure_container()
        try:
            self.storage.container.upload_blob(name, data, overwrite=False)
            return True
        except ResourceExistsError:
            return self.storage._get(name) == data

    def drop_answer(self, workflow: str, run_id: str, request_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.storage.container.delete_blob(f"{_run_prefix(workflow, run_id)}answers/{request_id}.json")

    def answers(self, workflow: str, run_id: str, request_ids: list[str]) -> dict[str, Any]:
        """Recorded answers to any of ``request_ids``."""
        found: dict[str, Any] = {}
        for request_id in request_ids:
            raw = self.storage._get(f"{_run_prefix(workflow, run_id)}answers/{request_id}.json")
            if raw is not None:
                found[request_id] = json.loads(raw)["answer"]
        return found

    def put_payload(self, workflow: str, run_id: str, name: str, data: bytes) -> None:
        self.storage._put(f"{_run_prefix(workflow, run_id)}payloads/{name}.json", data)

    def get_payload(self, workflow: str, run_id: str, name: str) -> bytes:
        raw = self.storage._get(f"{_run_prefix(workflow, run_id)}payloads/{name}.json")
        if raw is None:
            raise WorkflowCheckpointException(f"payload '{name}' of run '{run_id}' is missing")
        return raw
