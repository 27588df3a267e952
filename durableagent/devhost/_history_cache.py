"""Each live instance's history, kept decoded and pre-encoded between its episodes.

Every episode hands the SDK the whole history, and the shim replays all of it. Reading it back from
SQLite and decoding it (JSON, timestamps) each time, then encoding it again for the SDK, made the
host's part of an episode grow with the history, and a wide fan-out runs many episodes. The cache
keeps the decoded events, each event's JSON as the next episode sends it (``IsPlayed`` true), and
the ids of the completions and timers already recorded, so an episode costs the host work in
proportion to what is new, plus one string join.

The task hub stays the source of truth: an entry is used only when its execution id and length
match the instance's record and stored history, so anything that rewrote the history behind the
worker's back (a management restart, a purge) makes the worker read it again.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._history import EventType, HistoryEvent

__all__ = ["CachedHistory", "HistoryCache", "encode_events", "history_array", "played_json"]

_COMPLETIONS = frozenset(
    {
        EventType.TASK_COMPLETED,
        EventType.TASK_FAILED,
        EventType.SUB_ORCHESTRATION_COMPLETED,
        EventType.SUB_ORCHESTRATION_FAILED,
    }
)
_NOT_PLAYED = '"IsPlayed":false'


def played_json(stored: str) -> str:
    """An event's stored JSON (``HistoryEvent.to_json``) as a later episode sends it: ``IsPlayed`` true.

    ``to_wire`` writes ``IsPlayed`` third, before any type-specific field, so the first occurrence is
    the key itself, never text inside a field.
    """
    return stored.replace(_NOT_PLAYED, '"IsPlayed":true', 1)


@dataclass
class CachedHistory:
    """One execution's history: the events, their played JSON, and what they already record."""

    execution_id: str
    events: list[HistoryEvent] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    # TaskScheduledId of every recorded completion, TimerId of every recorded TimerFired.
    completed: set[int] = field(default_factory=set)
    fired: set[int] = field(default_factory=set)
    started: bool = False

    @classmethod
    def decode(cls, execution_id: str, stored: Sequence[str]) -> CachedHistory:
        """Build from the stored JSON of every event, in order (CPU work: call it off the event loop).

        The played JSON is encoded again from the decoded events, so rows whatever their key order
        (an older host's) go to the SDK exactly as the events encode now."""
        cached = cls(execution_id)
        events = [HistoryEvent.from_json(text) for text in stored]
        cached._add(events, [json.dumps(e.to_wire(is_played=True), separators=(",", ":")) for e in events])
        return cached

    def extend(self, events: Sequence[HistoryEvent], stored: Sequence[str]) -> None:
        """Append committed events; ``stored`` is each one's ``to_json()``, as this host just wrote it."""
        self._add(events, [played_json(text) for text in stored])

    def _add(self, events: Sequence[HistoryEvent], played: Sequence[str]) -> None:
        for event in events:
            if event.type in _COMPLETIONS:
                self.completed.add(int(event.get("TaskScheduledId")))
            elif event.type == EventType.TIMER_FIRED:
                self.fired.add(int(event.get("TimerId")))
            elif event.type == EventType.EXECUTION_STARTED:
                self.started = True
        self.events.extend(events)
        self.played.extend(played)

    def __len__(self) -> int:
        return len(self.events)


class HistoryCache:
    """Per-instance :class:`CachedHistory`, least recently used dropped beyond ``max_instances``.

    Used from the event-loop thread only (the worker hands entries to a thread for the duration of an
    episode, and the dispatcher never runs two episodes of one instance at once).
    """

    def __init__(self, max_instances: int = 256) -> None:
        self._entries: OrderedDict[str, CachedHistory] = OrderedDict()
        self._max = max_instances

    def get(self, instance_id: str, execution_id: str, length: int) -> CachedHistory | None:
        """The entry, if it still describes the stored history (same execution, same length)."""
        entry = self._entries.get(instance_id)
        if entry is None:
            return None
        if entry.execution_id != execution_id or len(entry) != length:
            del self._entries[instance_id]
            return None
        self._entries.move_to_end(instance_id)
        return entry

    def put(self, instance_id: str, entry: CachedHistory) -> None:
        self._entries[instance_id] = entry
        self._entries.move_to_end(instance_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def discard(self, instance_id: str) -> None:
        self._entries.pop(instance_id, None)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._entries


def history_array(played: Sequence[str], new: Sequence[str]) -> str:
    """The context's ``history`` JSON array from pre-encoded events (old ones played, new ones not)."""
    return "[" + ",".join([*played, *new]) + "]"


def encode_events(events: Sequence[HistoryEvent]) -> list[str]:
    """Each event's stored JSON (``to_json``)."""
    return [e.to_json() for e in events]
