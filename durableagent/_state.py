"""What an agent entity holds: Agent Framework's own session, a bounded window, counters, receipts.

The full transcript is not here (it lives in blob storage, one blob per turn); the entity keeps
only what the next turn needs, so its state stays small at any history length.
"""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from agent_framework import AgentResponse, AgentSession, Message

from ._errors import DurableAgentError

# 2: ``messageCount`` (and a receipt's ``message_count``) counts exchanges, as the product description
# means it, not every message (1 was: question, tool call, tool result and answer all counted).
SCHEMA_VERSION = 2
# Key of our provider's slot in ``AgentSession.state`` (Agent Framework gives each provider one).
WINDOW_SOURCE_ID = "durableagent"


class StateSchemaError(DurableAgentError):
    """Stored state has a schema this version cannot read; nothing is wiped."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Receipt:
    """The recorded outcome of one run, by correlation id: what makes retries idempotent."""

    correlation_id: str
    request_hash: str
    status: str  # "success" | "failed"
    at: str
    turn: int | None = None
    text: str | None = None
    text_truncated: bool = False
    structured: bool = False
    usage: dict[str, Any] | None = None
    message_count: int = 0
    error: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        # Field by field: asdict() deep-copies, and this runs for every receipt kept, on every turn.
        return {
            name: value
            for name in self.__dataclass_fields__
            if (value := getattr(self, name)) is not None and value is not False
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class StateLimits:
    """Bounds that keep entity state small.

    Attributes:
        window_messages: Most messages the model sees from earlier turns.
        window_bytes: Most bytes of serialized window messages.
        receipts: How many recent run outcomes stay in the entity state; older ones move to blob
            storage beside the transcript (one small blob each), so idempotency and run-result URLs
            hold for as long as the session exists while the state stays small.
        inline_text_bytes: Response text kept inside a receipt; longer text is read from the transcript.
    """

    window_messages: int = 40
    window_bytes: int = 24_000
    receipts: int = 32
    inline_text_bytes: int = 512


@dataclass
class AgentState:
    """The serialized session state of one agent session.

    Messages are Agent Framework ``Message`` objects; they are stored with their own ``to_dict()``.
    """

    session: AgentSession = field(default_factory=AgentSession)
    turns: int = 0
    message_count: int = 0
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    receipts: OrderedDict[str, Receipt] = field(default_factory=OrderedDict)
    last_response_turn: int | None = None
    # The session as it was stored (serialized), when restored from storage: what a failed run rolls
    # back to, decoded only then, so a turn decodes the session once (issue 13).
    _stored_session: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    # The window ----------------------------------------------------------------------------------

    # message_count: exchanges (one per question answered), the product description's meaning.

    @property
    def window(self) -> list[dict[str, Any]]:
        slot = self.session.state.setdefault(WINDOW_SOURCE_ID, {})
        messages: list[Any] = slot.setdefault("messages", [])
        # Plain dicts here (decode_session keeps them so); a Message someone put in is converted once.
        if not all(type(m) is dict for m in messages):
            messages[:] = [as_message_dict(m) for m in messages]
        return messages

    def window_messages(self) -> list[Message]:
        return [Message.from_dict(m) for m in self.window]

    def add_user_message(self, content: str | Message, correlation_id: str | None = None, role: str = "user") -> None:
        """Append what the caller said to the window (and count it).

        Args:
            content: The message text (or an Agent Framework ``Message``, kept as it is).
            correlation_id: The run it belongs to; kept on the message's ``additional_properties``
                (chat clients send only the keys they know from there, never this one).
            role: The speaker (``user`` unless the app allows more roles).
        """
        if isinstance(content, Message):
            message = content
        else:
            properties = {"correlation_id": correlation_id} if correlation_id else None
            message = Message(role=role, contents=[content], additional_properties=properties)
        self.window.append(message.to_dict())
        self.message_count += 1  # an exchange begins with what the caller says

    def add_assistant_message(self, content: str, agent_response: AgentResponse | None = None) -> None:
        """Append the agent's answer to the window.

        Args:
            content: The answer's text.
            agent_response: Agent Framework's full response; its messages (tool calls and results
                included, which the model needs on the next turn) go to the window. Without one,
                or with no messages in it, one assistant message with ``content`` does.
        """
        messages = list(agent_response.messages) if agent_response is not None else []
        if not messages:
            messages = [Message(role="assistant", contents=[content])]
        for message in messages:
            self.window.append(message.to_dict())

    def trim(self, limits: StateLimits) -> None:
        """Drop the oldest window messages until within bounds, never starting mid tool exchange."""
        window = self.window

        def drop() -> list[dict[str, Any]]:
            gone = [window.pop(0)]
            # A window must start at a user turn: drop the rest of a cut exchange too.
            while window and window[0].get("role") not in ("user", "system"):
                gone.append(window.pop(0))
            return gone

        # Both bounds shrink as messages leave the front, so the count can be met first, unmeasured.
        while window and len(window) > limits.window_messages:
            drop()
        # Then the rest is encoded once, not message by message. The compact JSON of a list is its
        # items' JSON, a comma between each two and the brackets: what leaves takes its own size and a
        # comma with it (an emptied window ends the loop, so its last item's missing comma is moot).
        total = _size(window)
        while window and total > limits.window_bytes:
            total -= sum(_size(m) + 1 for m in drop())

    # Receipts ------------------------------------------------------------------------------------

    def remember(self, receipt: Receipt, limits: StateLimits) -> list[Receipt]:
        """Keep ``receipt`` among the recent ones; returns those beyond ``limits.receipts`` (oldest first).

        They stay in the state until the caller has stored them elsewhere and calls :meth:`forget`:
        a receipt is never simply forgotten.
        """
        self.receipts[receipt.correlation_id] = receipt
        self.receipts.move_to_end(receipt.correlation_id)
        beyond = len(self.receipts) - limits.receipts
        return list(itertools.islice(self.receipts.values(), beyond)) if beyond > 0 else []

    def forget(self, correlation_ids: Iterable[str]) -> None:
        """Drop receipts that are stored elsewhere now."""
        for correlation_id in correlation_ids:
            self.receipts.pop(correlation_id, None)

    # Serialization -------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """The JSON-ready state, with its schema version."""
        return {
            "schemaVersion": SCHEMA_VERSION,
            "session": encode_session(self.session),
            "turns": self.turns,
            "messageCount": self.message_count,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "lastResponseTurn": self.last_response_turn,
            "receipts": [r.to_dict() for r in self.receipts.values()],
        }

    def restore_state(self, data: dict[str, Any]) -> None:
        """Replace this state with a stored one.

        State written by an older version is migrated as it is read (and written back in the new
        schema by the next operation that changes it).

        Raises:
            StateSchemaError: The version is missing or newer than this code (never wiped silently).
        """
        version = data.get("schemaVersion")
        if version == 1:
            data = migrate_v1(data)
            version = data["schemaVersion"]
        if version != SCHEMA_VERSION:
            raise StateSchemaError(
                f"agent state schema version {version!r} is not supported (expected {SCHEMA_VERSION}); "
                "the stored state is left as it is"
            )
        self.session = decode_session(data["session"])
        self._stored_session = data["session"]
        self.turns = int(data.get("turns", 0))
        self.message_count = int(data.get("messageCount", 0))
        self.created_at = str(data.get("createdAt") or utc_now())
        self.updated_at = str(data.get("updatedAt") or self.created_at)
        self.last_response_turn = data.get("lastResponseTurn")
        self.receipts = OrderedDict()
        for item in data.get("receipts", []):
            receipt = Receipt.from_dict(item)
            self.receipts[receipt.correlation_id] = receipt

    @classmethod
    def from_state(cls, data: dict[str, Any] | None) -> AgentState:
        if not data:
            return cls()
        # restore_state sets every field: skip the defaults (a new session id, two clock reads) it replaces.
        state = cls.__new__(cls)
        state.restore_state(data)
        return state

    def session_snapshot(self) -> dict[str, Any]:
        """The session as stored, serialized: what ``rollback_session`` returns to.

        Cheap after a restore (the stored form is kept); call it before the session changes.
        """
        if self._stored_session is not None:
            return self._stored_session
        return encode_session(self.session)

    def rollback_session(self, snapshot: dict[str, Any]) -> None:
        """Put back the session a failed run may have changed (``snapshot`` from ``session_snapshot``)."""
        self.session = decode_session(snapshot)

    def reset(self) -> None:
        """Forget the conversation (window, counters, receipts); a new session id is issued."""
        self.session = AgentSession()
        self.turns = 0
        self.message_count = 0
        self.receipts = OrderedDict()
        self.last_response_turn = None
        self.updated_at = utc_now()

    def size_bytes(self) -> int:
        return len(json.dumps(self.get_state(), separators=(",", ":")))


def migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: message counts become exchange counts (a copy; ``data`` is left as it is).

    Every committed turn is one exchange, so the session's count is its turn count, and a successful
    run's count is its turn number + 1. A failed run's receipt keeps its number: failures never
    report one.
    """
    turns = int(data.get("turns", 0))
    receipts = []
    for item in data.get("receipts", []):
        receipt = dict(item)
        if receipt.get("status") == "success" and isinstance(receipt.get("turn"), int):
            receipt["message_count"] = receipt["turn"] + 1
        receipts.append(receipt)
    return {**data, "schemaVersion": 2, "messageCount": turns, "receipts": receipts}


def encode_session(session: AgentSession) -> dict[str, Any]:
    """``session.to_dict()``, without walking our window: its messages are already JSON-ready dicts.

    The result is what ``AgentSession.to_dict()`` gives (Agent Framework's own format); only the
    recursive walk over up to ``window_messages`` stored messages, the bulk of the work, is skipped.
    """
    slot = session.state.get(WINDOW_SOURCE_ID)
    messages = slot.get("messages") if isinstance(slot, dict) else None
    if not isinstance(messages, list) or not all(type(m) is dict for m in messages):
        return session.to_dict()
    assert isinstance(slot, dict)
    del slot["messages"]
    try:
        data = session.to_dict()
    finally:
        slot["messages"] = messages
    data["state"][WINDOW_SOURCE_ID]["messages"] = list(messages)
    return data


def decode_session(data: dict[str, Any]) -> AgentSession:
    """``AgentSession.from_dict(data)``, except that our window's messages stay plain dicts.

    ``from_dict`` would revive each stored message into a ``Message``, which the window turns back
    into a dict at once; the model sees them through our history provider, which revives them itself.
    ``data`` is not changed (each message dict is copied), so it can be decoded again on a rollback.
    """
    state = data.get("state")
    slot = state.get(WINDOW_SOURCE_ID) if isinstance(state, dict) else None
    messages = slot.get("messages") if isinstance(slot, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return AgentSession.from_dict(data)
    assert isinstance(state, dict) and isinstance(slot, dict)
    rest = {k: v for k, v in slot.items() if k != "messages"}
    session = AgentSession.from_dict({**data, "state": {**state, WINDOW_SOURCE_ID: rest}})
    session.state.setdefault(WINDOW_SOURCE_ID, {})["messages"] = [dict(m) for m in messages]
    return session


def as_message_dict(message: Any) -> dict[str, Any]:
    """A window entry as a plain dict, whether stored as a dict or revived as a ``Message``."""
    if isinstance(message, Message):
        return message.to_dict()
    return dict(message)


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))
