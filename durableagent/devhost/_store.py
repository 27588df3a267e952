"""The task hub in SQLite (WAL): instances, history, entity state and every pending message.

Each public write is one ``BEGIN IMMEDIATE`` transaction, so a ``kill -9`` at any instant leaves
either all of a work item's effects or none of them. Messages are only ever deleted in the same
transaction that records their effect; that is what makes accepted work impossible to lose.

All methods run on the host's event-loop thread; the store is not shared across threads.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._history import HistoryEvent, RuntimeStatus

ORCHESTRATION = "orchestration"
ACTIVITY = "activity"
ENTITY = "entity"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT,
    execution_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER
);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created_at);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at REAL NOT NULL,
    dequeue_count INTEGER NOT NULL DEFAULT 0,
    dedup_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages(kind, visible_at);
CREATE INDEX IF NOT EXISTS messages_target ON messages(target, id);
-- The dispatcher's oldest-first scan of one kind (activities): walks ids in order and stops at its limit.
CREATE INDEX IF NOT EXISTS messages_kind_id ON messages(kind, id);
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    exists_ INTEGER NOT NULL,
    state TEXT,
    last_modified REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Message:
    """A pending message: an orchestration event, an activity to run, or an entity request."""

    id: int
    kind: str
    target: str
    body: dict[str, Any]
    visible_at: float
    dequeue_count: int


@dataclass(frozen=True)
class NewMessage:
    kind: str
    target: str
    body: dict[str, Any]
    visible_at: float = 0.0
    dedup_key: str | None = None


@dataclass(frozen=True)
class InstanceRecord:
    instance_id: str
    name: str
    version: str | None
    execution_id: str
    status: RuntimeStatus
    input: str | None
    output: str | None
    custom_status: str | None
    created_at: float
    updated_at: float
    parent_instance_id: str | None
    parent_execution_id: str | None
    parent_task_id: int | None


@dataclass(frozen=True)
class EntityRecord:
    entity_id: str
    name: str
    key: str
    exists: bool
    state: str | None
    last_modified: float


@dataclass
class InstanceQuery:
    """Filters of the management API's instance queries."""

    created_from: float | None = None
    created_to: float | None = None
    statuses: Sequence[RuntimeStatus] | None = None
    prefix: str | None = None


class TaskHubStore:
    """SQLite task hub. ``on_commit`` is called after every committed write (to wake dispatchers)."""

    def __init__(self, path: Path, on_commit: Callable[[], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process death (the WAL is in the OS cache); only power loss
        # could drop the last transactions, which a local host can accept.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._on_commit = on_commit

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        if self._on_commit is not None:
            self._on_commit()

    # Reads -----------------------------------------------------------------------------------------

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        row = self._db.execute("SELECT * FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        return _instance(row) if row else None

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        return [HistoryEvent.from_json(text) for text in self.get_history_json(instance_id)]

    def get_history_json(self, instance_id: str) -> list[str]:
        """Each stored event's JSON, in order, undecoded (decoding is CPU work the caller may move)."""
        rows = self._db.execute(
            "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def history_length(self, instance_id: str) -> int:
        """How many events the instance's history holds (one index seek)."""
        row = self._db.execute("SELECT MAX(seq) FROM history WHERE instance_id = ?", (instance_id,)).fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def query_instances(
        self, query: InstanceQuery, *, top: int | None = None, after: str | None = None
    ) -> list[InstanceRecord]:
        clauses: list[str] = ["1 = 1"]
        params: list[Any] = []
        if query.created_from is not None:
            clauses.append("created_at >= ?")
            params.append(query.created_from)
        if query.created_to is not None:
            clauses.append("created_at <= ?")
            params.append(query.created_to)
        if query.statuses:
            clauses.append(f"status IN ({','.join('?' * len(query.statuses))})")
            params.extend(int(s) for s in query.statuses)
        if query.prefix:
            clauses.append("instance_id >= ? AND instance_id < ?")
            params.extend([query.prefix, query.prefix + "\U0010ffff"])
        if after is not None:
            clauses.append("instance_id > ?")
            params.append(after)
        sql = f"SELECT * FROM instances WHERE {' AND '.join(clauses)} ORDER BY instance_id"
        if top is not None:
            sql += f" LIMIT {int(top)}"
        return [_instance(row) for row in self._db.execute(sql, params).fetchall()]

    def get_entity(self, entity_id: str) -> EntityRecord | None:
        row = self._db.execute("SELECT * FROM entities WHERE entity_id = ?", (entity_id,)).fetchone()
        if row is None:
            return None
        return EntityRecord(row[0], row[1], row[2], bool(row[3]), row[4], row[5])

    def query_entities(self, name: str | None = None) -> list[EntityRecord]:
        sql = "SELECT * FROM entities WHERE exists_ = 1"
        params: list[Any] = []
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        rows = self._db.execute(sql + " ORDER BY entity_id", params).fetchall()
        return [EntityRecord(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    def ready_targets(self, kind: str, now: float, exclude: set[str], limit: int) -> list[str]:
        """Targets (instances or entities) with at least one visible message, oldest first."""
        rows = self._db.execute(
            "SELECT target, MIN(id) AS first FROM messages WHERE kind = ? AND visible_at <= ? "
            "GROUP BY target ORDER BY first",
            (kind, now),
        )
        found: list[str] = []
        for target, _ in rows:
            if target not in exclude:
                found.append(target)
                if len(found) >= limit:
                    break
        return found

    def ready_messages(
        self,
        kind: str,
        now: float,
        *,
        target: str | None = None,
        exclude: set[int] | None = None,
        limit: int | None = 1000,
    ) -> list[Message]:
        """Visible messages of ``kind`` (of one ``target``), oldest first; ``limit`` None: all of them."""
        params: list[Any] = [kind, now]
        if target is not None:
            sql = "SELECT * FROM messages WHERE kind = ? AND visible_at <= ? AND target = ? ORDER BY id"
            params.append(target)
        else:
            # "+visible_at" keeps SQLite off messages_ready, which would sort every pending message of
            # the kind (thousands during a wide fan-out) on each dispatcher wake-up.
            sql = "SELECT * FROM messages WHERE kind = ? AND +visible_at <= ? ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit + len(exclude or ()))
        found: list[Message] = []
        for row in self._db.execute(sql, params):
            if exclude and row[0] in exclude:
                continue
            found.append(Message(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5]))
            if limit is not None and len(found) >= limit:
                break
        return found

    def next_visible_at(self, now: float) -> float | None:
        row = self._db.execute("SELECT MIN(visible_at) FROM messages WHERE visible_at > ?", (now,)).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def count_messages(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    # Writes (each inside a caller's transaction) ---------------------------------------------------

    @staticmethod
    def put_messages(db: sqlite3.Connection, messages: Sequence[NewMessage]) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO messages (kind, target, body, visible_at, dedup_key) VALUES (?, ?, ?, ?, ?)",
            [
                (m.kind, m.target, json.dumps(m.body, separators=(",", ":")), m.visible_at, m.dedup_key)
                for m in messages
            ],
        )

    @staticmethod
    def delete_messages(db: sqlite3.Connection, ids: Sequence[int]) -> None:
        db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    @staticmethod
    def put_instance(db: sqlite3.Connection, record: InstanceRecord) -> None:
        db.execute(
            "INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.instance_id,
                record.name,
                record.version,
                record.execution_id,
                int(record.status),
                record.input,
                record.output,
                record.custom_status,
                record.created_at,
                record.updated_at,
                record.parent_instance_id,
                record.parent_execution_id,
                record.parent_task_id,
            ),
        )

    @staticmethod
    def append_history(
        db: sqlite3.Connection,
        instance_id: str,
        events: Sequence[HistoryEvent],
        encoded: Sequence[str] | None = None,
    ) -> None:
        """Append ``events``; ``encoded``, if given, is each one's ``to_json()`` already computed."""
        row = db.execute("SELECT COALESCE(MAX(seq), -1) FROM history WHERE instance_id = ?", (instance_id,))
        start = int(row.fetchone()[0]) + 1
        texts = encoded if encoded is not None else [e.to_json() for e in events]
        db.executemany(
            "INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)",
            [(instance_id, start + i, text) for i, text in enumerate(texts)],
        )

    @staticmethod
    def clear_history(db: sqlite3.Connection, instance_id: str) -> None:
        db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))

    @staticmethod
    def put_entity(db: sqlite3.Connection, record: EntityRecord) -> None:
        db.execute(
            "INSERT OR REPLACE INTO entities VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.entity_id,
                record.name,
                record.key,
                int(record.exists),
                record.state,
                record.last_modified,
            ),
        )

    @staticmethod
    def delete_entity(db: sqlite3.Connection, entity_id: str) -> None:
        db.execute("DELETE FROM entities WHERE entity_id = ?", (entity_id,))

    @staticmethod
    def delete_instance(db: sqlite3.Connection, instance_id: str) -> None:
        db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))
        db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))


def now_ts() -> float:
    return time.time()


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _instance(row: Sequence[Any]) -> InstanceRecord:
    return InstanceRecord(
        instance_id=row[0],
        name=row[1],
        version=row[2],
        execution_id=row[3],
        status=RuntimeStatus(row[4]),
        input=row[5],
        output=row[6],
        custom_status=row[7],
        created_at=row[8],
        updated_at=row[9],
        parent_instance_id=row[10],
        parent_execution_id=row[11],
        parent_task_id=row[12],
    )
