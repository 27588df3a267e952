"""The full conversation in blob storage: one blob per turn, so a turn costs one write.

A blob's name is fixed by its turn number, and writing it again replaces it, so a crash between
the transcript write and the entity commit can neither lose nor duplicate a turn: the retried
operation finds the blob of its correlation id and reuses it instead of calling the model again.

Beside the turns, under the same session prefix:

- ``<turn>.journal/<correlation id>/<entry>.json``: what an attempt at a turn finished before the
  turn was written (model responses that asked for tools, tool results), so a retried attempt
  replays them instead of calling again. Once the turn's blob exists they are not needed.
- ``runs/<correlation id>.json``: run outcomes (receipts) that no longer fit in the entity state,
  so a retried request is recognised for as long as the session exists.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

if TYPE_CHECKING:
    # The blob SDK costs ~80 ms to import: loaded only when a transcript is first touched.
    from azure.storage.blob import ContainerClient

from ._blobs import ContainerOnce, service_from_environment
from ._logs import get_logger
from ._session_id import AgentSessionId, entity_name_for

DEFAULT_CONTAINER = "agent-transcripts"
_READ_WORKERS = 8
# Receipt uploads tracked at once (a few per busy session); past it, spilling waits for its upload.
_SPILLS_TRACKED = 10_000
_JOURNAL = ".journal/"
_RUNS = "runs/"

_log = get_logger("durableagent.transcript")


@dataclass
class TurnAttempt:
    """What storage holds for the next turn when an attempt at it starts.

    Attributes:
        record: The turn's blob, if a crashed attempt wrote it (it may belong to another run).
        journal: This run's journal entries from earlier attempts, by entry name.
    """

    record: dict[str, Any] | None = None
    journal: dict[str, dict[str, Any]] = field(default_factory=dict)


class TranscriptStore:
    """Turn records of every session of every agent, in one container."""

    def __init__(self, container: ContainerClient) -> None:
        from ._blob_rest import ContainerCalls  # with urllib3 and http.client: loaded when storage is first used

        self._container = container
        # The calls every turn makes, straight over REST when it can sign for the container.
        self._calls = ContainerCalls(container)
        self._once = ContainerOnce(container)
        self._pool = ThreadPoolExecutor(max_workers=_READ_WORKERS, thread_name_prefix="durableagent-transcript")
        # Receipt uploads in flight or done, until the entity drops the receipt from its state.
        self._spills: dict[tuple[str, str], Future[None]] = {}
        self._spill_lock = threading.Lock()

    @classmethod
    def from_environment(
        cls, setting: str = "AzureWebJobsStorage", container: str = DEFAULT_CONTAINER
    ) -> TranscriptStore:
        return cls(service_from_environment(setting).get_container_client(container))

    @staticmethod
    def blob_name(session: AgentSessionId, turn: int) -> str:
        return f"{_prefix(session)}{turn:010d}.json"

    def _ensure_container(self) -> None:
        self._once.ensure()

    def write_turn(self, session: AgentSessionId, turn: int, record: dict[str, Any]) -> None:
        """Store (or replace) the record of one turn."""
        self._ensure_container()
        self._put(self.blob_name(session, turn), json.dumps(record, separators=(",", ":")).encode())

    def read_turn(self, session: AgentSessionId, turn: int) -> dict[str, Any] | None:
        return self._read_json(self.blob_name(session, turn))

    # Attempts and their journal ------------------------------------------------------------------

    def attempt(self, session: AgentSessionId, turn: int, correlation_id: str) -> TurnAttempt:
        """The turn's blob and ``correlation_id``'s journal at ``turn``: one listing, reads only on a retry."""
        base = f"{_prefix(session)}{turn:010d}"
        turn_name = f"{base}.json"
        journal_prefix = f"{base}{_JOURNAL}{correlation_id}/"
        try:
            names = self._calls.names(base)
        except ResourceNotFoundError:
            return TurnAttempt()
        wanted = [n for n in names if n == turn_name or n.startswith(journal_prefix)]
        if not wanted:
            return TurnAttempt()
        found = dict(zip(wanted, self._pool.map(self._read_json, wanted), strict=True))
        attempt = TurnAttempt(record=found.pop(turn_name, None))
        attempt.journal = {n[len(journal_prefix) : -len(".json")]: v for n, v in found.items() if v is not None}
        return attempt

    def write_journal(
        self, session: AgentSessionId, turn: int, correlation_id: str, entry: str, data: dict[str, Any]
    ) -> None:
        """Record one finished step (a model response, a tool result) of an attempt at ``turn``."""
        self._ensure_container()
        self._put(_journal_name(session, turn, correlation_id, entry), json.dumps(data, separators=(",", ":")).encode())

    def discard_journal(self, session: AgentSessionId, turn: int, correlation_id: str, entries: Iterable[str]) -> None:
        """Delete journal entries once the turn's blob holds their outcome (in the background, best effort)."""
        names = [_journal_name(session, turn, correlation_id, e) for e in entries]
        if names:
            self._pool.submit(self._delete_quietly, names)

    def _delete_quietly(self, names: list[str]) -> None:
        for name in names:
            try:
                self._container.delete_blob(name)
            except ResourceNotFoundError:
                pass
            except Exception:  # left behind, deleted with the session; never worth failing a turn
                _log.warning("Could not delete journal entry %s", name)

    # Receipts that left the entity state -----------------------------------------------------------

    def spill(self, session: AgentSessionId, receipts: Sequence[dict[str, Any]], wait: int = 0) -> set[str]:
        """Move run outcomes beyond the entity state's limit to storage; returns the ids stored by now.

        Uploads start in the background; only the oldest ``wait`` are waited for (so the state cannot
        grow without bound), and a failure among those is raised. A receipt not yet known to be stored
        stays in the state: a later operation finds its upload done, or (after a crash, on another
        instance) uploads it again, to the same blob. So spilling costs a turn no round trip.
        """
        if not receipts:
            return set()
        self._ensure_container()
        prefix = _prefix(session)
        stored: set[str] = set()
        awaited: list[tuple[tuple[str, str], Future[None] | None, dict[str, Any]]] = []
        for index, receipt in enumerate(receipts):
            key = (prefix, str(receipt["correlation_id"]))
            with self._spill_lock:
                upload = self._spills.get(key)
                if upload is not None and upload.done():
                    del self._spills[key]
                    if upload.exception() is None:
                        stored.add(key[1])
                        continue
                    upload = None  # it failed: once more
                if upload is None and len(self._spills) >= _SPILLS_TRACKED:
                    # Mostly sessions that went quiet: forget finished uploads (one that is asked
                    # about again is uploaded again, to the same blob).
                    self._spills = {k: f for k, f in self._spills.items() if not f.done()}
                if upload is None and len(self._spills) < _SPILLS_TRACKED:
                    upload = self._pool.submit(self._upload_receipt, session, receipt)
                    self._spills[key] = upload
            if index < wait or upload is None:
                awaited.append((key, upload, receipt))
        for key, upload, receipt in awaited:
            if upload is None:  # too many in flight to track: upload it now
                self._upload_receipt(session, receipt)
            else:
                upload.result()
                with self._spill_lock:
                    self._spills.pop(key, None)
            stored.add(key[1])
        return stored

    def _upload_receipt(self, session: AgentSessionId, receipt: dict[str, Any]) -> None:
        data = json.dumps(receipt, separators=(",", ":")).encode()
        self._put(_receipt_name(session, str(receipt["correlation_id"])), data)

    def _settle_spills(self, session: AgentSessionId) -> None:
        """Wait for this session's uploads in flight, so that none lands after the session is deleted."""
        prefix = _prefix(session)
        with self._spill_lock:
            pending = [key for key in self._spills if key[0] == prefix]
            uploads = [self._spills.pop(key) for key in pending]
        for upload in uploads:
            with contextlib.suppress(Exception):
                upload.result()

    def read_receipt(self, session: AgentSessionId, correlation_id: str) -> dict[str, Any] | None:
        """A stored run outcome, or ``None``."""
        return self._read_json(_receipt_name(session, correlation_id))

    def _read_json(self, name: str) -> dict[str, Any] | None:
        data = self._calls.get(name)
        if data is None:
            return None
        parsed: dict[str, Any] = json.loads(data)
        return parsed

    def _put(self, name: str, data: bytes) -> None:
        self._calls.put(name, data)

    def read_turns(self, session: AgentSessionId, start: int, count: int) -> list[dict[str, Any]]:
        """Turns ``start`` .. ``start + count - 1`` that exist, in order (read in parallel)."""
        turns = range(max(0, start), max(0, start) + max(0, count))
        records = self._pool.map(lambda t: self.read_turn(session, t), turns)
        return [r for r in records if r is not None]

    def session_keys(self, entity_name: str) -> list[str]:
        """Storage keys (``AgentSessionId.entity_key``) of the sessions of one agent with at least one turn."""
        try:
            prefixes = self._container.walk_blobs(name_starts_with=f"{entity_name}/", delimiter="/")
            return [p.name[len(entity_name) + 1 :].rstrip("/") for p in prefixes if p.name.endswith("/")]
        except ResourceNotFoundError:
            return []

    def delete_session(self, session: AgentSessionId) -> int:
        """Delete every turn of a session; returns how many blobs went."""
        self._settle_spills(session)
        deleted = 0
        try:
            for blob in self._container.list_blobs(name_starts_with=_prefix(session)):
                try:
                    self._container.delete_blob(blob.name)
                    deleted += 1
                except ResourceNotFoundError:
                    pass
        except ResourceNotFoundError:
            return 0
        return deleted


def _journal_name(session: AgentSessionId, turn: int, correlation_id: str, entry: str) -> str:
    return f"{_prefix(session)}{turn:010d}{_JOURNAL}{correlation_id}/{entry}.json"


def _receipt_name(session: AgentSessionId, correlation_id: str) -> str:
    # Correlation ids are letters, digits and . _ : - (checked at the edge and in the entity).
    return f"{_prefix(session)}{_RUNS}{correlation_id}.json"


def _prefix(session: AgentSessionId) -> str:
    # The key's storage form: free-text keys may hold '/', '..' or characters blob URLs mangle.
    return f"{entity_name_for(session.name)}/{session.entity_key}/"
