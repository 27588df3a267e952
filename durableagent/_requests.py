"""Run requests: parsed and validated once, at the edge (HTTP body, queue message, schedule)."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from ._errors import (
    IDEMPOTENCY_CONFLICT,
    INVALID_CORRELATION_ID,
    INVALID_REQUEST,
    INVALID_RESPONSE_SCHEMA,
    INVALID_ROLE,
    INVALID_SESSION_ID,
    MESSAGE_REQUIRED,
    MESSAGE_TOO_LARGE,
    RequestError,
    shown,
)
from ._session_id import MAX_KEY_LENGTH, AgentSessionId
from ._state import utc_now

# fullmatch, not match with "$": "$" also matches before a trailing newline.
_CORRELATION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_QUEUE_NAME_PATTERN = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")


def is_queue_name(name: str) -> bool:
    """Whether ``name`` is a valid Azure Storage queue name."""
    return bool(_QUEUE_NAME_PATTERN.fullmatch(name))


# conversation_id: the product description's name for it ("HTTP Trigger receives user message with optional
# conversation_id").
SESSION_ALIASES = ("sessionId", "sessionKey", "session_id", "thread_id", "conversation_id")


@dataclass(frozen=True)
class RequestLimits:
    """Limits on run requests; every one can be changed on the app.

    Attributes:
        max_message_bytes: Largest message (UTF-8 bytes); larger gets 413.
        max_session_key_length: Longest session key (at most ``MAX_KEY_LENGTH``, 128 characters).
        allowed_roles: Roles a caller may send (default only ``user``, so callers cannot inject
            ``system`` or ``assistant`` turns).
    """

    max_message_bytes: int = 32_768
    max_session_key_length: int = MAX_KEY_LENGTH
    allowed_roles: frozenset[str] = field(default_factory=lambda: frozenset({"user"}))


class _RunBody(BaseModel):
    """The JSON shape of a run request (HTTP body or queue message)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message: StrictStr | None = None
    role: StrictStr | None = None
    enable_tool_calls: StrictBool | None = None
    response_schema: dict[str, Any] | None = None
    wait_for_response: StrictBool | None = None
    correlation_id: StrictStr | None = Field(default=None, alias="correlationId")
    reply_queue: StrictStr | None = Field(default=None, alias="replyQueue")
    timeout_seconds: float | None = Field(default=None, alias="timeoutSeconds", gt=0, le=230)


@dataclass(frozen=True)
class RunRequest:
    """A validated request to run an agent once on one session."""

    session: AgentSessionId
    message: str
    role: str
    correlation_id: str
    enable_tool_calls: bool = True
    response_schema: dict[str, Any] | None = None
    wait_for_response: bool | None = None
    reply_queue: str | None = None
    timeout_seconds: float | None = None
    session_was_given: bool = True
    received_at: str = field(default_factory=utc_now)
    correlation_supplied: bool = True

    @functools.cached_property
    def request_hash(self) -> str:
        """What must match when a correlation id is reused (409 otherwise)."""
        canonical = json.dumps(
            [self.session.key, self.message, self.role, self.enable_tool_calls, self.response_schema],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def to_operation_input(self) -> dict[str, Any]:
        """What the entity's ``run_agent`` operation receives."""
        payload: dict[str, Any] = {
            "message": self.message,
            "role": self.role,
            "correlationId": self.correlation_id,
            "requestHash": self.request_hash,
            "enableToolCalls": self.enable_tool_calls,
            "receivedAt": self.received_at,
        }
        if not self.correlation_supplied:
            # A fresh id of ours cannot have run before: the entity skips the look-up in storage.
            payload["correlationSupplied"] = False
        if self.response_schema is not None:
            payload["responseSchema"] = self.response_schema
        if self.reply_queue:
            payload["replyQueue"] = self.reply_queue
        return payload


def build_run_request(
    agent_name: str,
    body: dict[str, Any],
    limits: RequestLimits,
    *,
    session_override: str | None = None,
    correlation_header: str | None = None,
    wait_override: bool | None = None,
) -> RunRequest:
    """Validate a run body into a ``RunRequest``.

    Raises:
        RequestError: With a stable code for every kind of bad input.
    """
    session_values = {alias: body[alias] for alias in SESSION_ALIASES if body.get(alias) not in (None, "")}
    try:
        parsed = _RunBody.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise RequestError(INVALID_REQUEST, f"Invalid field '{where}': {first.get('msg')}", field=where) from exc

    message = parsed.message
    if message is None or not message.strip():
        raise RequestError(MESSAGE_REQUIRED, "A non-empty 'message' is required.")
    if len(message.encode("utf-8")) > limits.max_message_bytes:
        raise RequestError(
            MESSAGE_TOO_LARGE,
            f"The message is larger than {limits.max_message_bytes} bytes.",
            limit=limits.max_message_bytes,
        )

    role = (parsed.role or "user").strip().lower()
    if role not in limits.allowed_roles:
        raise RequestError(
            INVALID_ROLE, f"Role '{shown(role)}' is not allowed; allowed: {', '.join(sorted(limits.allowed_roles))}."
        )

    session = _session(agent_name, session_values, session_override, limits)

    correlation = _correlation_id(parsed.correlation_id, correlation_header)

    response_schema = parsed.response_schema
    if response_schema == {}:
        # The empty schema constrains nothing (the product description's own request example sends it
        # and shows a text answer): a plain run, the same request as one without a schema.
        response_schema = None
    if response_schema is not None:
        # Data, never a fetch: local references only, bounded size/depth, no loops, compilable patterns.
        from ._response_schema import ResponseSchemaError, check_response_schema

        try:
            check_response_schema(response_schema)
        except ResponseSchemaError as exc:
            raise RequestError(INVALID_RESPONSE_SCHEMA, str(exc)) from None
        if response_schema.get("type", "object") != "object":
            raise RequestError(INVALID_RESPONSE_SCHEMA, "response_schema must describe a JSON object.")

    reply_queue = parsed.reply_queue
    if reply_queue is not None and not is_queue_name(reply_queue):
        raise RequestError(INVALID_REQUEST, f"'{shown(reply_queue)}' is not a valid queue name.", field="replyQueue")

    return RunRequest(
        session=session,
        message=message,
        role=role,
        correlation_id=correlation,
        enable_tool_calls=True if parsed.enable_tool_calls is None else parsed.enable_tool_calls,
        response_schema=response_schema,
        wait_for_response=wait_override if wait_override is not None else parsed.wait_for_response,
        reply_queue=reply_queue,
        timeout_seconds=parsed.timeout_seconds,
        session_was_given=bool(session_values or session_override),
        correlation_supplied=bool(parsed.correlation_id or correlation_header),
    )


def _session(agent_name: str, values: dict[str, Any], override: str | None, limits: RequestLimits) -> AgentSessionId:
    candidates = list(values.values()) + ([override] if override else [])
    for value in candidates:
        if not isinstance(value, str):
            raise RequestError(INVALID_SESSION_ID, "The session id must be a string.")
    distinct = {v for v in candidates}
    if len(distinct) > 1:
        raise RequestError(
            INVALID_SESSION_ID, f"Conflicting session ids given: {', '.join(shown(d) for d in sorted(distinct))}."
        )
    if not distinct:
        return AgentSessionId.with_random_key(agent_name)
    text = distinct.pop()
    try:
        session = AgentSessionId.parse(text, agent_name)
    except ValueError as exc:
        raise RequestError(INVALID_SESSION_ID, f"Invalid session id: {shown(exc, 200)}") from exc
    if len(session.key) > limits.max_session_key_length:
        raise RequestError(
            INVALID_SESSION_ID, f"The session key is longer than {limits.max_session_key_length} characters."
        )
    return session


def _correlation_id(in_body: str | None, in_header: str | None) -> str:
    if in_body and in_header and in_body != in_header:
        raise RequestError(INVALID_CORRELATION_ID, "The Idempotency-Key header and the correlationId field differ.")
    value = in_body or in_header
    if value is None:
        return uuid.uuid4().hex
    if not _CORRELATION_PATTERN.fullmatch(value):
        raise RequestError(
            INVALID_CORRELATION_ID,
            "A correlation id is 1-128 letters, digits and . _ : - starting with a letter or digit.",
        )
    return value


def check_operation_input(payload: Any, limits: RequestLimits) -> dict[str, str] | None:
    """What the entity re-checks of a ``run_agent`` input, whatever path brought it (HTTP, queue, the
    management API, an orchestration, another app): ``None`` when acceptable, else an error record.

    The edge checks the same and more; this makes the bounds hold for inputs that never passed it.
    """
    if not isinstance(payload, dict):
        return {"code": INVALID_REQUEST.code, "message": "The operation input must be a JSON object."}
    message = payload.get("message")
    if not isinstance(message, str) or not message.strip():
        return {"code": MESSAGE_REQUIRED.code, "message": "A non-empty 'message' is required."}
    if len(message.encode("utf-8", "surrogatepass")) > limits.max_message_bytes:
        limit = limits.max_message_bytes
        return {"code": MESSAGE_TOO_LARGE.code, "message": f"The message is larger than {limit} bytes."}
    role = payload.get("role", "user")
    if not isinstance(role, str) or role.strip().lower() not in limits.allowed_roles:
        return {
            "code": INVALID_ROLE.code,
            "message": f"The role is not allowed; allowed: {', '.join(sorted(limits.allowed_roles))}.",
        }
    for flag in ("enableToolCalls", "returnResponse", "correlationSupplied"):
        if flag in payload and not isinstance(payload[flag], bool):
            return {"code": INVALID_REQUEST.code, "message": f"'{flag}' must be true or false."}
    schema = payload.get("responseSchema")
    if schema is not None and not isinstance(schema, dict):
        # Its full check (check_response_schema) is the entity's: it keeps the analysis to validate the answer.
        return {"code": INVALID_RESPONSE_SCHEMA.code, "message": "responseSchema must be a JSON object."}
    queue = payload.get("replyQueue")
    if queue is not None and not (isinstance(queue, str) and is_queue_name(queue)):
        return {"code": INVALID_REQUEST.code, "message": "replyQueue is not a valid queue name."}
    return None


def is_correlation_id(value: Any) -> bool:
    """Whether ``value`` is a well-formed correlation id (1-128 letters, digits and . _ : -)."""
    return isinstance(value, str) and bool(_CORRELATION_PATTERN.fullmatch(value))


def check_idempotency(existing_hash: str | None, request: RunRequest) -> None:
    """409 when a correlation id was already used for a different request."""
    if existing_hash is not None and existing_hash != request.request_hash:
        raise RequestError(
            IDEMPOTENCY_CONFLICT,
            f"Correlation id '{request.correlation_id}' was already used for a different request.",
        )


def parse_flag(text: str | None, name: str) -> bool | None:
    """A query or header flag: absent or empty is ``None``; otherwise it must be one ``parse_bool`` knows.

    Raises:
        RequestError: ``invalid_request`` naming the flag, for any other value.
    """
    if text is None or not text.strip():
        return None
    value = parse_bool(text) if len(text) <= 16 else None
    if value is None:
        raise RequestError(INVALID_REQUEST, f"'{name}' must be true or false.", field=name)
    return value


def parse_bool(text: str | None) -> bool | None:
    """``true/1/yes/on`` and ``false/0/no/off`` (any case); anything else is ``None``."""
    if text is None:
        return None
    value = text.strip().lower()
    if value in ("true", "1", "yes", "y", "on"):
        return True
    if value in ("false", "0", "no", "n", "off"):
        return False
    return None
