"""What an agent entity holds: Agent Framework's own session, a bounded window, counters, receipts.

The full transcript is not here (it lives in blob storage, one blob per turn); the entity keeps
only what the next turn needs, so its state stays small at any history length.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
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
        return {k: v for k, v in asdict(self).items() if v is not None and v is not False}

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

    # The window ----------------------------------------------------------------------------------

    # message_count: exchanges (one per question answered), the product description's meaning.

    @property
    def window(self) -> list[dict[str, Any]]:
        slot = self.session.state.setdefault(WINDOW_SOURCE_ID, {})
        messages: list[Any] = slot.setdefault("messages", [])
        # AgentSession.from_dict revives typed dicts into Message objects; keep plain dicts here.
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
        while window and (len(window) > limits.window_messages or _size(window) > limits.window_bytes):
            window.pop(0)
            # A window must start at a user turn: drop the rest of a cut exchange too.
            while window and window[0].get("role") not in ("user", "system"):
                window.pop(0)

    # Receipts ------------------------------------------------------------------------------------

    def remember(self, receipt: Receipt, limits: StateLimits) -> list[Receipt]:
        """Keep ``receipt`` among the recent ones; returns those that no longer fit (oldest first).

        The caller stores what is returned elsewhere before the state commits: a receipt is never
        simply forgotten.
        """
        self.receipts[receipt.correlation_id] = receipt
        self.receipts.move_to_end(receipt.correlation_id)
        evicted: list[Receipt] = []
        while len(self.receipts) > limits.receipts:
            evicted.append(self.receipts.popitem(last=False)[1])
        return evicted

    # Serialization -------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """The JSON-ready state, with its schema version."""
        return {
            "schemaVersion": SCHEMA_VERSION,
            "session": self.session.to_dict(),
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
        self.session = AgentSession.from_dict(data["session"])
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
        state = cls()
        if data:
            state.restore_state(data)
        return state

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


def as_message_dict(message: Any) -> dict[str, Any]:
    """A window entry as a plain dict, whether stored as a dict or revived as a ``Message``."""
    if isinstance(message, Message):
        return message.to_dict()
    return dict(message)


def _size(window: list[dict[str, Any]]) -> int:
    return len(json.dumps(window, separators=(",", ":")))
