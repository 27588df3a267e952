"""Errors: one root for runtime failures, one for misuse at registration, and the HTTP error table."""

from __future__ import annotations

from dataclasses import dataclass


class DurableAgentError(Exception):
    """Root of the runtime errors durableagent raises."""


class AgentRegistrationError(ValueError):
    """An agent, schedule or option was registered wrongly (found when the app is built)."""


@dataclass(frozen=True)
class ErrorCode:
    """A stable machine code with its HTTP status."""

    code: str
    status: int


# Every non-2xx answer of the agent routes uses one of these; the codes are part of the API.
INVALID_JSON = ErrorCode("invalid_json", 400)
INVALID_REQUEST = ErrorCode("invalid_request", 400)
MESSAGE_REQUIRED = ErrorCode("message_required", 400)
INVALID_ROLE = ErrorCode("invalid_role", 400)
INVALID_SESSION_ID = ErrorCode("invalid_session_id", 400)
INVALID_CORRELATION_ID = ErrorCode("invalid_correlation_id", 400)
INVALID_RESPONSE_SCHEMA = ErrorCode("invalid_response_schema", 400)
UNSUPPORTED_MEDIA_TYPE = ErrorCode("unsupported_media_type", 415)
AGENT_NOT_FOUND = ErrorCode("agent_not_found", 404)
SESSION_NOT_FOUND = ErrorCode("session_not_found", 404)
RUN_NOT_FOUND = ErrorCode("run_not_found", 404)
IDEMPOTENCY_CONFLICT = ErrorCode("idempotency_key_reused", 409)
MESSAGE_TOO_LARGE = ErrorCode("message_too_large", 413)
AGENT_RUN_FAILED = ErrorCode("agent_run_failed", 502)
MODEL_RATE_LIMITED = ErrorCode("model_rate_limited", 503)
INTERNAL_ERROR = ErrorCode("internal_error", 500)
# Workflow routes.
WORKFLOW_NOT_FOUND = ErrorCode("workflow_not_found", 404)
INVALID_INPUT = ErrorCode("invalid_input", 400)
INVALID_RESPONSE = ErrorCode("invalid_response", 400)
CHECKPOINT_NOT_FOUND = ErrorCode("checkpoint_not_found", 404)
CHECKPOINT_INCOMPATIBLE = ErrorCode("checkpoint_incompatible", 409)
RUN_EXISTS = ErrorCode("run_exists", 409)
RUN_FINISHED = ErrorCode("run_finished", 409)
REQUEST_ALREADY_ANSWERED = ErrorCode("request_already_answered", 409)


def model_http_status(exc: BaseException) -> int | None:
    """The HTTP status a model service answered with, from ``exc`` or its causes (``None``: not an HTTP failure)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = getattr(current, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool):
            return status
        current = current.__cause__ or current.__context__
    return None


def shown(value: object, limit: int = 64) -> str:
    """A caller-supplied value as an error message may quote it: at most ``limit`` characters, with
    anything unprintable (control characters, lone surrogates) written as an escape."""
    text = str(value)
    out = "".join(c if c.isprintable() else _escaped(c) for c in text[:limit])
    return out + ("…" if len(text) > limit else "")


def _escaped(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


class RequestError(DurableAgentError):
    """A request the API rejects; carries the code, a message for humans and optional details."""

    def __init__(self, error: ErrorCode, message: str, **details: object) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.details = details

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"error": {"code": self.error.code, "message": self.message}}
        if self.details:
            body["error"] = {**body["error"], **self.details}  # type: ignore[dict-item]
        return body
