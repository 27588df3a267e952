"""Session ids: ``@<agent>@<key>``, one Durable Entity instance per session."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import azure.durable_functions as df

# Keys become entity keys and blob names: keep them to characters that are safe in both, and
# short enough for a URL segment. '@' would make the scheduler id ambiguous.
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:~-]*$")
MAX_KEY_LENGTH = 128
ENTITY_PREFIX = "agent-"


def entity_name_for(agent_name: str) -> str:
    """The Durable Entity name of an agent (entity names are case-insensitive: lower-cased)."""
    return f"{ENTITY_PREFIX}{agent_name}".lower()


def validate_key(key: str, max_length: int = MAX_KEY_LENGTH) -> str:
    """Return ``key`` if it is a valid session key; raise ``ValueError`` saying why not."""
    if not isinstance(key, str) or not key:
        raise ValueError("session key must be a non-empty string")
    if len(key) > max_length:
        raise ValueError(f"session key is longer than {max_length} characters")
    if not _KEY_PATTERN.match(key):
        raise ValueError(
            "session key may contain only letters, digits and . _ : ~ - and must start with a letter or digit"
        )
    return key


@dataclass(frozen=True)
class AgentSessionId:
    """Identifies one conversation with one agent.

    Attributes:
        name: The agent's name (as registered; compared case-insensitively).
        key: The session key, unique per agent.
    """

    name: str
    key: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("agent name must be non-empty")
        validate_key(self.key)

    @classmethod
    def with_random_key(cls, name: str) -> AgentSessionId:
        """A new session of agent ``name`` with a random key."""
        return cls(name, uuid.uuid4().hex)

    def to_entity_id(self) -> df.EntityId:
        """The Durable Entity that holds this session."""
        return df.EntityId(entity_name_for(self.name), self.key)

    @classmethod
    def from_entity_id(cls, entity_id: df.EntityId) -> AgentSessionId:
        """The session an agent entity id stands for."""
        name = entity_id.name
        if not name.lower().startswith(ENTITY_PREFIX):
            raise ValueError(f"'{name}' is not an agent entity name")
        return cls(name[len(ENTITY_PREFIX) :], entity_id.key)

    @classmethod
    def parse(cls, text: str, agent_name: str | None = None) -> AgentSessionId:
        """Parse ``@name@key``; a bare key is accepted when ``agent_name`` is given.

        Raises:
            ValueError: Malformed, or naming another agent than ``agent_name``.
        """
        if text.startswith("@"):
            name, sep, key = text[1:].partition("@")
            if not sep or not name:
                raise ValueError(f"'{text}' is not of the form @name@key")
            if agent_name is not None and name.lower() != agent_name.lower():
                raise ValueError(f"session '{text}' belongs to agent '{name}', not '{agent_name}'")
            return cls(agent_name or name, key)
        if agent_name is None:
            raise ValueError(f"'{text}' is not of the form @name@key")
        return cls(agent_name, text)

    def __str__(self) -> str:
        return f"@{self.name}@{self.key}"
