"""The agent entity: one instance per session; its operations run the agent and keep its state.

An operation is all-or-nothing: a failed run records a failed receipt for its correlation id and
leaves the conversation as it was, so the failed turn is never shown to the model again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import azure.durable_functions as df
from agent_framework import AgentResponse, AgentSession, Message, SupportsAgentRun

from ._callbacks import AgentCallbackContext, AgentResponseCallbackProtocol
from ._conversation import conversation
from ._errors import shown
from ._journal import TurnAlreadyWritten, TurnJournal, accepts_middleware
from ._logs import describe_exception, get_logger
from ._loop import run_coroutine
from ._requests import RequestLimits, check_operation_input, is_correlation_id, is_queue_name
from ._response_schema import (
    AnswerRejected,
    ResponseSchemaError,
    SchemaAnalysis,
    check_response_schema,
    checked_structured_value,
)
from ._session_id import AgentSessionId, key_from_entity_key
from ._state import AgentState, Receipt, StateLimits, StateSchemaError, utc_now
from ._transcript import TranscriptStore
from ._wakeups import notify
from ._window import take_pending

_log = get_logger("durableagent.entity")
# Receipts beyond the state's limit that may wait in the state for their upload (see _remember).
_SPILL_BACKLOG = 8

RUN_AGENT = "run_agent"
GET_STATE = "get_state"
RESET = "reset"
DELETE = "delete"


@dataclass
class EntityConfig:
    """What an agent's entity needs besides the agent itself."""

    name: str
    agent: SupportsAgentRun
    transcripts: Callable[[], TranscriptStore]
    limits: StateLimits = field(default_factory=StateLimits)
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    callback: AgentResponseCallbackProtocol | None = None
    run_timeout_seconds: float = 600.0
    reply: Callable[[str, dict[str, Any]], None] | None = None


# A run that ran out of time: run_timeout_seconds (concurrent.futures) or a wait_for inside the agent
# (asyncio). On 3.10 these are distinct from TimeoutError; from 3.11 all three are the same class.
_TIMEOUT_ERRORS = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)


class AgentRunError(Exception):
    """A run failed; raised to an orchestration that called the agent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class StructuredOutputError(Exception):
    """The model's answer to a run with a response schema is not JSON matching that schema."""


def classify_failure(exc: BaseException) -> dict[str, str]:
    """A safe error record: a stable code and a message with no text from inside the model client."""
    if isinstance(exc, StructuredOutputError):
        return {"code": "invalid_structured_output", "message": str(exc)}
    status = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = status or getattr(current, "status_code", None)
        current = current.__cause__ or current.__context__
    if status == 429:
        return {
            "code": "model_rate_limited",
            "message": "The model service is rate limiting requests (HTTP 429).",
        }
    if isinstance(exc, _TIMEOUT_ERRORS):
        return {"code": "agent_run_timeout", "message": "The agent run timed out."}
    if status is not None:
        return {"code": "agent_run_failed", "message": f"The model service answered with HTTP {status}."}
    # No exception type or text: those belong in the log (as its type only), not in what callers see.
    return {"code": "agent_run_failed", "message": "The agent run failed."}


class AgentEntity:
    """The entity function of one agent (synchronous, as the Python SDK requires)."""

    def __init__(self, config: EntityConfig) -> None:
        self.config = config
        # Whether the turn journal can be attached: a signature look-up, done once, not on every turn.
        self._journaled = accepts_middleware(config.agent)

    def __call__(self, context: df.DurableEntityContext) -> None:
        operation = (context.operation_name or "").lower()
        try:
            session = AgentSessionId(self.config.name, key_from_entity_key(context.entity_key))
        except ValueError as exc:
            # Signalled by key from outside the API (management API, another app): not a session key.
            error = {"code": "invalid_session_id", "message": shown(exc, 200)}
            context.set_result({"status": "failed", "error": error})
            return
        try:
            state = AgentState.from_state(context.get_state(lambda: None))
        except StateSchemaError as exc:
            # Leave the stored state untouched; report instead of wiping it.
            context.set_result({"status": "failed", "error": {"code": "state_schema", "message": str(exc)}})
            return
        if operation == RUN_AGENT:
            given = context.get_input()
            # Anything but an object (from the management API, say) is a run without fields: refused.
            request = given if isinstance(given, dict) else {}
            result = self._run(state, session, request)
            if request.get("returnResponse"):
                # An orchestration called: it gets the response itself, or an exception to catch.
                context.set_state(state.get_state())
                context.set_result(self._orchestration_result(session, result))
                return
            context.set_state(state.get_state())
            context.set_result(result)
            # A request waiting in this process looks at the state now rather than at its next poll.
            notify(waiter_key(session), str(request.get("correlationId")))
            return
        elif operation == GET_STATE:
            result = self._conversation(state, session)
        elif operation == RESET:
            # The transcript goes too, so reading the session no longer shows the old turns.
            deleted = self.config.transcripts().delete_session(session)
            state.reset()
            result = {"status": "reset", "sessionId": session.key, "transcriptTurnsDeleted": deleted}
        elif operation == DELETE:
            deleted = self.config.transcripts().delete_session(session)
            # The SDK's set_result marks the entity as existing again: destruct after it, not before.
            context.set_result({"status": "deleted", "transcriptTurnsDeleted": deleted})
            context.destruct_on_exit()
            return
        else:
            error = {"code": "unknown_operation", "message": f"Unknown operation '{shown(operation)}'."}
            context.set_result({"status": "failed", "error": error})
            return
        context.set_state(state.get_state())
        context.set_result(result)

    def _conversation(self, state: AgentState, session: AgentSessionId) -> dict[str, Any]:
        """``get_state``: the conversation as the product description shows it, plus our summary fields."""
        records = self.config.transcripts().read_turns(session, 0, state.turns)
        last = next((r for r in reversed(records) if r.get("turn") == state.last_response_turn), None)
        body = conversation(
            records,
            message_count=state.message_count,
            last_response=last.get("text") if last else None,
            agent_type=type(self.config.agent).__name__,
        )
        return {**body, **summary(state, session)}

    def _orchestration_result(self, session: AgentSessionId, result: dict[str, Any]) -> Any:
        from ._orchestration import response_from_record

        if result.get("status") != "success":
            error = result.get("error") or {}
            raise AgentRunError(str(error.get("code", "agent_run_failed")), str(error.get("message", "")))
        record = self.config.transcripts().read_turn(session, int(result["turn"]))
        if record is None:
            raise AgentRunError("transcript_missing", f"turn {result['turn']} of {session} is not in the transcript")
        return response_from_record(record, session)

    # run_agent ------------------------------------------------------------------------------------

    def _run(self, state: AgentState, session: AgentSessionId, request: dict[str, Any]) -> dict[str, Any]:
        started_at = utc_now()  # when the message arrived, unless the caller's edge recorded it
        raw_id = request.get("correlationId") if isinstance(request, dict) else None
        if not is_correlation_id(raw_id):
            # Without a well-formed id there is nothing to record an outcome under: answer only.
            return {
                "status": "failed",
                "error": {"code": "invalid_correlation_id", "message": "A well-formed correlationId is required."},
            }
        correlation_id = str(raw_id)
        transcripts = self.config.transcripts()
        known = state.receipts.get(correlation_id)
        if known is None and request.get("correlationSupplied", True) is not False:
            # Only ids a caller chose can repeat; those whose receipt left the state are looked up in
            # storage (one read), so a retry is recognised for as long as the session exists.
            stored = transcripts.read_receipt(session, correlation_id)
            known = Receipt.from_dict(stored) if stored is not None else None
        if known is not None:
            if known.request_hash and request.get("requestHash") and known.request_hash != request["requestHash"]:
                # The id was used for another request: report it, run nothing, change nothing.
                return {
                    "status": "conflict",
                    "correlation_id": correlation_id,
                    "error": {"code": "idempotency_key_reused", "message": "correlation id reused for another request"},
                }
            # A redelivered or retried request: answer from the record, never call the model again.
            return {**known.to_dict(), "duplicate": True}
        problem = check_operation_input(request, self.config.request_limits)
        analysis: SchemaAnalysis | None = None
        if problem is None and request.get("responseSchema") is not None:
            # Before any model call, whichever path the schema came by; analysed once, kept for the answer.
            try:
                analysis = check_response_schema(request["responseSchema"])
            except ResponseSchemaError as exc:
                problem = {"code": "invalid_response_schema", "message": str(exc)}
        if problem is not None:
            # Whatever path brought it (the management API, a queue, another app), the entity keeps its
            # bounds: the run fails and its URL settles; the conversation is untouched.
            _log.warning("Agent %s refused run %s: %s", self.config.name, correlation_id, problem["code"])
            return self._fail(state, session, request, correlation_id, problem)
        # What a crashed earlier attempt left (its turn blob, its journal): one listing, before the run.
        # It runs on this thread: a listing beside the agent's preparation (issue 13) cost two hand-offs
        # between threads, more than it overlapped under the GIL. A listing that fails raises from
        # here: storage could not be read, which is not the agent's failure; nothing is recorded.
        earlier = transcripts.attempt(session, state.turns, correlation_id)
        try:
            journal = TurnJournal(transcripts, session, state.turns, correlation_id, earlier)
        except TurnAlreadyWritten as written:
            # The turn was written but the entity did not commit (a crash): adopt it as it is.
            return self._commit_turn(state, session, request, written.record, transcript_written=True)
        # The run changes the session in place; a failure puts back the stored one, decoded only then.
        before = state.session_snapshot()
        try:
            response, run_session = self._call_agent(state, session, request, journal)
            value = None
            if analysis is not None:
                value = _checked_structured_value(response, request["responseSchema"], analysis)
        except Exception as exc:  # the agent's failure is recorded, never raised out of the entity
            state.rollback_session(before)
            error = classify_failure(exc)
            # The code and the exception's type and place; its text may echo the model request.
            _log.warning(
                "Agent %s run %s failed: %s (%s)",
                self.config.name,
                correlation_id,
                error["code"],
                describe_exception(exc),
            )
            return self._fail(state, session, request, correlation_id, error)
        pending = take_pending(run_session)
        if not pending:
            # The agent keeps its own history provider: record the turn from the run itself.
            pending = [_user_message(request).to_dict(), *[m.to_dict() for m in response.messages]]
        record = {
            "turn": state.turns,
            "correlationId": correlation_id,
            "receivedAt": str(request.get("receivedAt") or started_at),  # when the user said it
            "createdAt": utc_now(),  # when the agent's answer was complete
            "request": {"role": _role(request), "message": request["message"]},
            "messages": pending,
            "response": response.to_dict(),
            "text": response.text,
            "usage": _usage(response),
        }
        if request.get("responseSchema") is not None:
            record["value"] = value
        if run_session.service_session_id:
            # Service-side history (Responses API): a turn adopted after a crash must continue from here.
            record["serviceSessionId"] = run_session.service_session_id
        state.session = run_session
        result = self._commit_turn(state, session, request, record, transcript_written=False, response=response)
        journal.discard()
        return result

    def _call_agent(
        self, state: AgentState, session: AgentSessionId, request: dict[str, Any], journal: TurnJournal
    ) -> tuple[AgentResponse, AgentSession]:
        # No copy: the session was decoded for this operation alone, and a failed run rolls it back.
        run_session = state.session
        options: dict[str, Any] = {}
        if request.get("enableToolCalls") is False:
            options["tool_choice"] = "none"
        if request.get("responseSchema") is not None:
            options["response_format"] = request["responseSchema"]
        message = _user_message(request)
        callback = self.config.callback
        context = AgentCallbackContext(
            agent_name=self.config.name,
            correlation_id=str(request["correlationId"]),
            session_id=str(session),
            request_message=str(request["message"]),
            conversation_id=session.key,
        )
        # ``options`` is Agent's keyword, not part of the SupportsAgentRun protocol: pass it only when set.
        agent: Any = self.config.agent
        extra: dict[str, Any] = {"options": options} if options else {}
        if self._journaled:
            extra["middleware"] = journal.middleware()

        async def run() -> AgentResponse:
            if callback is not None and _overrides(callback, "on_streaming_response_update"):
                stream = agent.run(message, session=run_session, stream=True, **extra)
                async for update in stream:
                    await _safely(callback.on_streaming_response_update(update, context), "streaming update")
                response: AgentResponse = await stream.get_final_response()
            else:
                response = await agent.run(message, session=run_session, **extra)
            if callback is not None:
                await _safely(callback.on_agent_response(response, context), "agent response")
            return response

        return run_coroutine(run(), timeout=self.config.run_timeout_seconds), run_session

    def _commit_turn(
        self,
        state: AgentState,
        session: AgentSessionId,
        request: dict[str, Any],
        record: dict[str, Any],
        *,
        transcript_written: bool,
        response: AgentResponse | None = None,
    ) -> dict[str, Any]:
        limits = self.config.limits
        if transcript_written:
            # Recovery: the window (or the service's conversation id) did not see this turn yet.
            state.window.extend(record.get("messages", []))
            if record.get("serviceSessionId"):
                state.session.service_session_id = str(record["serviceSessionId"])
        state.turns += 1
        state.message_count += 1  # one exchange (tool calls and their results are part of it)
        state.last_response_turn = record["turn"]
        state.trim(limits)
        text = str(record.get("text") or "")
        value = record.get("value")
        inline = json.dumps(value) if value is not None else text
        receipt = Receipt(
            correlation_id=str(record["correlationId"]),
            request_hash=str(request.get("requestHash", "")),
            status="success",
            at=utc_now(),
            turn=int(record["turn"]),
            text=inline if len(inline.encode()) <= limits.inline_text_bytes else None,
            text_truncated=len(inline.encode()) > limits.inline_text_bytes,
            structured=value is not None,
            usage=record.get("usage"),
            message_count=state.message_count,
        )
        self._remember(state, session, receipt, None if transcript_written else record)
        self._reply(request, receipt, record)
        return receipt.to_dict()

    def _fail(
        self,
        state: AgentState,
        session: AgentSessionId,
        request: dict[str, Any],
        correlation_id: str,
        error: dict[str, str],
    ) -> dict[str, Any]:
        """Record a failed run (its URL settles, a retry gets the same answer) and post its outcome."""
        receipt = Receipt(
            correlation_id=correlation_id,
            request_hash=str(request.get("requestHash", "")),
            status="failed",
            at=utc_now(),
            error=error,
            message_count=state.message_count,
        )
        self._remember(state, session, receipt)
        self._reply(request, receipt)
        return receipt.to_dict()

    def _remember(
        self, state: AgentState, session: AgentSessionId, receipt: Receipt, turn_record: dict[str, Any] | None = None
    ) -> None:
        """Record a run's outcome; writes the turn (if given) and moves receipts beyond the limit out.

        The turn is written before the entity commits, so a crash can only repeat it (the same blob),
        never lose it. Receipts beyond the limit upload in the background and leave the state only
        once stored (at a later operation), so none is lost either, and no turn waits for them.
        """
        beyond = state.remember(receipt, self.config.limits)
        state.updated_at = receipt.at
        transcripts = self.config.transcripts()
        if turn_record is not None:
            transcripts.write_turn(session, int(turn_record["turn"]), turn_record)
        if beyond:
            # At most _SPILL_BACKLOG wait in the state for their upload; older ones are waited for now.
            wait = max(0, len(beyond) - _SPILL_BACKLOG)
            state.forget(transcripts.spill(session, [r.to_dict() for r in beyond], wait=wait))

    def _reply(self, request: dict[str, Any], receipt: Receipt, record: dict[str, Any] | None = None) -> None:
        queue = request.get("replyQueue")
        if not isinstance(queue, str) or not is_queue_name(queue) or self.config.reply is None:
            return
        outcome = {
            "agent": self.config.name,
            "correlationId": receipt.correlation_id,
            "status": receipt.status,
            "turn": receipt.turn,
            "error": receipt.error,
        }
        if record is not None:
            outcome["response"] = record.get("value") if record.get("value") is not None else record.get("text")
        try:
            self.config.reply(str(queue), outcome)
        except Exception as exc:  # a reply that cannot be posted must not undo the run
            _log.error(
                "Could not post the outcome of run %s to queue %s: %s",
                receipt.correlation_id,
                queue,
                describe_exception(exc),
            )


def waiter_key(session: AgentSessionId) -> str:
    """The session's name in ``_wakeups``: the same for the entity and the HTTP function that waits."""
    return f"{session.name.lower()}/{session.key}"


def summary(state: AgentState, session: AgentSessionId) -> dict[str, Any]:
    return {
        "sessionId": session.key,
        "agentSessionId": str(session),
        "turns": state.turns,
        "messageCount": state.message_count,
        "createdAt": state.created_at,
        "updatedAt": state.updated_at,
    }


def _role(request: dict[str, Any]) -> str:
    # As the edge normalises it: an input that came another way may say " User ".
    return str(request.get("role", "user")).strip().lower()


def _user_message(request: dict[str, Any]) -> Message:
    return Message(role=_role(request), contents=[str(request["message"])])


def _usage(response: AgentResponse) -> dict[str, Any] | None:
    usage = getattr(response, "usage_details", None)
    if not usage:
        return None
    return {k: v for k, v in dict(usage).items() if isinstance(v, int | float | str)}


def _checked_structured_value(
    response: AgentResponse, schema: dict[str, Any], analysis: SchemaAnalysis | None = None
) -> Any:
    # Bounded parsing and validation (no fetching, counted work, regex timeouts) live in _response_schema.
    try:
        return checked_structured_value(response, schema, analysis)
    except AnswerRejected as exc:
        raise StructuredOutputError(str(exc)) from None


def _overrides(callback: object, method: str) -> bool:
    implementation = getattr(type(callback), method, None)
    return implementation is not None and implementation is not getattr(AgentResponseCallbackProtocol, method, None)


async def _safely(awaitable: Any, what: str) -> None:
    try:
        await awaitable
    except Exception as exc:
        _log.error("Callback failed on %s; the run goes on: %s", what, describe_exception(exc))
