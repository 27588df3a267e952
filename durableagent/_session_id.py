"""Session ids: ``@<agent>@<key>``, one Durable Entity instance per session.

A session key is whatever the caller uses: any printable text up to ``MAX_KEY_LENGTH`` characters
(``user-123``, ``someone@example.com``, ``Ticket #4711``). Inside Durable Functions and blob storage
the key takes a storage form, because the Durable SDK puts entity keys into management URLs
unescaped and splits entity ids at ``@``: keys made only of ``[A-Za-z0-9._:~-]`` starting with a
letter or digit (every key sessions had before free-text keys) are stored as they are, so existing
sessions keep their entity and transcript; any other key is stored as ``~`` + base64url of its
UTF-8, which no plain key can collide with (plain keys never start with ``~``).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass

import azure.durable_functions as df

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:~-]*\Z")
_ENCODED_MARK = "~"
MAX_KEY_LENGTH = 128
ENTITY_PREFIX = "agent-"


def entity_name_for(agent_name: str) -> str:
    """The Durable Entity name of an agent (entity names are case-insensitive: lower-cased)."""
    return f"{ENTITY_PREFIX}{agent_name}".lower()


def validate_key(key: str, max_length: int = MAX_KEY_LENGTH) -> str:
    """Return ``key`` if it is a valid session key; raise ``ValueError`` saying why not."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError("session key must be a non-empty string")
    if len(key) > max_length:
        raise ValueError(f"session key is longer than {max_length} characters")
    if not key.isprintable():
        raise ValueError("session key must be printable text (no control characters, tabs or line breaks)")
    return key


def entity_key_for(key: str) -> str:
    """The storage form of a session key: its entity key and its transcript folder."""
    if _PLAIN_KEY.fullmatch(key):
        return key
    encoded = base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")
    return _ENCODED_MARK + encoded


def key_from_entity_key(entity_key: str) -> str:
    """The session key an entity key stands for (the inverse of ``entity_key_for``).

    Raises:
        ValueError: ``entity_key`` is not the storage form of any session key.
    """
    if _PLAIN_KEY.fullmatch(entity_key):
        return entity_key
    if entity_key.startswith(_ENCODED_MARK):
        body = entity_key[len(_ENCODED_MARK) :]
        try:
            key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            key = ""
        # Only the one canonical spelling decodes, so each session has exactly one entity.
        if key and entity_key_for(key) == entity_key:
            return key
    raise ValueError(f"'{entity_key}' is not the entity key of an agent session")


@dataclass(frozen=True)
class AgentSessionId:
    """Identifies one conversation with one agent.

    Attributes:
        name: The agent's name (as registered; compared case-insensitively when routing).
        key: The session key, unique per agent: any printable text up to ``MAX_KEY_LENGTH`` characters.
    """

    name: str
    key: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("agent name must be non-empty")
        if "@" in self.name:
            raise ValueError("agent name must not contain '@'")
        validate_key(self.key)

    @staticmethod
    def with_random_key(name: str) -> AgentSessionId:
        """A new session of agent ``name`` with a random key."""
        return AgentSessionId(name, uuid.uuid4().hex)

    @property
    def entity_key(self) -> str:
        """The key's storage form (see the module docstring)."""
        return entity_key_for(self.key)

    def to_entity_id(self) -> df.EntityId:
        """The Durable Entity that holds this session.

        The name keeps its case so ``from_entity_id`` gives this id back; Durable Functions compares
        entity names case-insensitively, so it addresses the same entity as the lower-cased name.
        """
        return df.EntityId(f"{ENTITY_PREFIX}{self.name}", self.entity_key)

    @staticmethod
    def from_entity_id(entity_id: df.EntityId) -> AgentSessionId:
        """The session an entity id stands for: ``from_entity_id(s.to_entity_id()) == s``.

        The entity name is ``agent-<agent name>`` as ``to_entity_id`` makes it, or the agent's name
        itself (``EntityId("AgentEntity", "user-123")`` is agent ``AgentEntity``, key ``user-123``).

        Raises:
            ValueError: The key is not the storage form of a session key.
        """
        name = entity_id.name
        if name.lower().startswith(ENTITY_PREFIX) and len(name) > len(ENTITY_PREFIX):
            name = name[len(ENTITY_PREFIX) :]
        return AgentSessionId(name, key_from_entity_key(entity_id.key))

    @staticmethod
    def parse(session_id_string: str, agent_name: str | None = None) -> AgentSessionId:
        """Parse ``@name@key``; a bare key is accepted when ``agent_name`` is given.

        The key is everything after the second ``@`` (agent names contain none), so
        ``@Mail@someone@example.com`` is key ``someone@example.com``. A bare key that starts with
        ``@`` must be given in the full form (``@Mail@@handle``).

        Raises:
            ValueError: Malformed, or naming another agent than ``agent_name``.
        """
        text = session_id_string
        if text.startswith("@"):
            name, sep, key = text[1:].partition("@")
            if not sep or not name:
                raise ValueError(f"'{text}' is not of the form @name@key")
            if agent_name is not None and name.lower() != agent_name.lower():
                raise ValueError(f"session '{text}' belongs to agent '{name}', not '{agent_name}'")
            return AgentSessionId(agent_name or name, key)
        if agent_name is None:
            raise ValueError(f"'{text}' is not of the form @name@key")
        return AgentSessionId(agent_name, text)

    def __str__(self) -> str:
        return f"@{self.name}@{self.key}"
