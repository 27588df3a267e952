"""The full conversation in blob storage: one blob per turn, so a turn costs one write.

A blob's name is fixed by its turn number, and writing it again replaces it, so a crash between
the transcript write and the entity commit can neither lose nor duplicate a turn: the retried
operation finds the blob of its correlation id and reuses it instead of calling the model again.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

if TYPE_CHECKING:
    # The blob SDK costs ~80 ms to import: loaded only when a transcript is first touched.
    from azure.storage.blob import ContainerClient

from ._blobs import ContainerOnce, service_from_environment
from ._session_id import AgentSessionId, entity_name_for

DEFAULT_CONTAINER = "agent-transcripts"
_READ_WORKERS = 8


class TranscriptStore:
    """Turn records of every session of every agent, in one container."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container
        self._once = ContainerOnce(container)
        self._pool = ThreadPoolExecutor(max_workers=_READ_WORKERS, thread_name_prefix="durableagent-transcript")

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
        data = json.dumps(record, separators=(",", ":")).encode()
        self._container.upload_blob(self.blob_name(session, turn), data, overwrite=True)

    def read_turn(self, session: AgentSessionId, turn: int) -> dict[str, Any] | None:
        try:
            data = self._container.download_blob(self.blob_name(session, turn)).readall()
        except ResourceNotFoundError:
            return None
        parsed: dict[str, Any] = json.loads(data)
        return parsed

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


def _prefix(session: AgentSessionId) -> str:
    # The key's storage form: free-text keys may hold '/', '..' or characters blob URLs mangle.
    return f"{entity_name_for(session.name)}/{session.entity_key}/"
