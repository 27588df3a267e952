"""Unit tests of the agent library's pure parts: session ids, state, requests, names, exports."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timedelta, timezone

import azure.durable_functions as df
import pytest
from agent_framework import Agent, AgentResponse, BaseChatClient, ChatResponse, Content, Message

import durableagent
from durableagent import AgentFunctionApp, AgentRegistrationError, AgentSessionId, AgentState, RequestLimits
from durableagent._app import (
    DELETE_SESSION_FUNCTION,
    HEALTH_FUNCTION,
    RUN_FUNCTION,
    RUN_RESULT_FUNCTION,
    SESSION_FUNCTION,
)
from durableagent._background import AgentSchedule, default_queue_name, occurrence_for
from durableagent._conversation import history_entries
from durableagent._entity import StructuredOutputError, _checked_structured_value, classify_failure
from durableagent._errors import RequestError
from durableagent._requests import build_run_request, check_idempotency, parse_bool
from durableagent._state import SCHEMA_VERSION, Receipt, StateLimits, StateSchemaError


class _Echo(BaseChatClient):  # type: ignore[type-arg]
    async def _inner_get_response(self, *, messages, stream, options, **kwargs):  # type: ignore[no-untyped-def]
        return ChatResponse(messages=[Message(role="assistant", contents=["ok"])])


def _agent(name: str) -> Agent:  # type: ignore[type-arg]
    return Agent(client=_Echo(), name=name)


# Public surface -----------------------------------------------------------------------------------


def test_export_list_is_pinned() -> None:
    # Widening the public API is a decision: change this list on purpose.
    assert sorted(durableagent.__all__) == [
        "AgentCallbackContext",
        "AgentFunctionApp",
        "AgentRegistrationError",
        "AgentResponseCallbackProtocol",
        "AgentSchedule",
        "AgentSessionId",
        "AgentState",
        "BlobCheckpointStorage",
        "CheckpointEntry",
        "DurableAgent",
        "DurableAgentError",
        "DurableAgentResponse",
        "RequestLimits",
        "StateLimits",
        "WorkflowRunError",
        "chat_client_from_settings",
    ]


def test_generated_function_names_are_pinned() -> None:
    # Renaming a generated function orphans existing sessions: these names are a contract.
    app = AgentFunctionApp()
    app.add_agent(_agent("Weather_Bot"), schedules=[AgentSchedule("0 0 9 * * *", "morning report", name="daily")])
    functions = app.get_functions()  # the library refuses a second get_functions() on one app
    names = {f.get_function_name() for f in functions}
    assert names == {
        RUN_FUNCTION,
        SESSION_FUNCTION,
        DELETE_SESSION_FUNCTION,
        RUN_RESULT_FUNCTION,
        HEALTH_FUNCTION,
        "workflows-start",
        "workflows-status",
        "workflows-respond",
        "workflows-terminate",
        "workflows-events",
        "agent-weather_bot",
        "agent-weather_bot-run",
        "agent-weather_bot-session",
        "agent-weather_bot-session-delete",
        "agent-weather_bot-run-result",
        "agent-weather_bot-queue",
        "agent-weather_bot-schedule-daily",
    }
    assert (RUN_FUNCTION, SESSION_FUNCTION, RUN_RESULT_FUNCTION) == (
        "agents-run",
        "agents-session",
        "agents-run-result",
    )
    bindings = {f.get_function_name(): [json.loads(b) for b in f.get_raw_bindings()] for f in functions}
    # Each agent has its own routes ("This creates separate routes for each agent"); the shared
    # agents/{name}/... routes only answer 404 agent_not_found for names no agent has.
    routes = {
        name: (trigger["route"], trigger["methods"])
        for name, found in bindings.items()
        for trigger in found
        if trigger["type"] == "httpTrigger"
    }
    assert routes["agent-weather_bot-run"] == ("agents/Weather_Bot/run", ["POST"])
    assert routes["agent-weather_bot-session"] == ("agents/Weather_Bot/{sessionId}", ["GET"])
    assert routes["agent-weather_bot-session-delete"] == ("agents/Weather_Bot/{sessionId}", ["DELETE"])
    assert routes["agent-weather_bot-run-result"] == ("agents/Weather_Bot/{sessionId}/runs/{correlationId}", ["GET"])
    assert routes[RUN_FUNCTION] == ("agents/{name}/run", ["POST"])
    entity = bindings["agent-weather_bot"][0]
    assert entity["type"] == "entityTrigger" and entity["entityName"] == "agent-weather_bot"
    queue = next(b for b in bindings["agent-weather_bot-queue"] if b["type"] == "queueTrigger")
    assert queue["queueName"] == "weather-bot-runs"


def test_agent_registration_errors() -> None:
    app = AgentFunctionApp(agents=[_agent("Joker")])
    with pytest.raises(ValueError, match="already registered"):
        app.add_agent(_agent("joker"))  # names compare case-insensitively
    with pytest.raises(ValueError, match="needs a name"):
        app.add_agent(Agent(client=_Echo()))
    with pytest.raises(ValueError, match="invalid"):
        app.add_agent(_agent("has space"))
    with pytest.raises(AgentRegistrationError, match="queue name"):
        app.add_agent(_agent("Other"), queue_name="Bad_Queue")
    # Generated names derive from agent names: 'X-run' would be the entity function 'agent-x-run', the
    # run function of agent 'X'. Refused at registration, not by the host at start.
    app.add_agent(_agent("X"))
    with pytest.raises(AgentRegistrationError, match="function names"):
        app.add_agent(_agent("X-run"))
    with pytest.raises(AgentRegistrationError, match="six fields"):
        AgentSchedule("*/5 * * * *", "five fields")
    assert list(app.agents) == ["Joker", "X"]


@pytest.mark.parametrize(
    ("agent", "queue"),
    [
        ("Joker", "joker-runs"),
        ("My_Agent--2", "my-agent-2-runs"),
        ("__x__", "x-runs"),
        ("A" * 63, "a" * 63),  # cut to 63 characters, suffix included
    ],
)
def test_default_queue_names(agent: str, queue: str) -> None:
    assert default_queue_name(agent) == queue
    assert len(default_queue_name(agent)) <= 63


# Session ids --------------------------------------------------------------------------------------


def test_session_id_round_trips() -> None:
    sid = AgentSessionId("Joker", "abc-123")
    assert str(sid) == "@Joker@abc-123"
    assert AgentSessionId.parse("@Joker@abc-123") == sid
    assert AgentSessionId.parse("abc-123", "Joker") == sid
    entity = sid.to_entity_id()
    # The name keeps its case (Durable compares entity names case-insensitively; the scheduler id,
    # what addresses the entity, is lower-cased as before).
    assert isinstance(entity, df.EntityId) and (entity.name, entity.key) == ("agent-Joker", "abc-123")
    assert df.EntityId.get_scheduler_id(entity) == "@agent-joker@abc-123"
    assert AgentSessionId.from_entity_id(entity) == sid
    random = AgentSessionId.with_random_key("Joker")
    assert random.name == "Joker" and len(random.key) == 32


@pytest.mark.parametrize(
    "key",
    ["someone@example.com", "a/b", "../..", "sp ace", "q?x#y%z", "-leading", "~tilde", "Grüße, 世界", "@at", "@" * 128],
)
def test_free_text_keys_round_trip_through_a_safe_storage_form(key: str) -> None:
    sid = AgentSessionId("Joker", key)
    entity = sid.to_entity_id()
    # The storage form is URL-, blob- and scheduler-id-safe: base64url behind a '~' no plain key starts with.
    assert re.fullmatch(r"~[A-Za-z0-9_-]+", entity.key), entity.key
    assert df.EntityId.get_entity_id(df.EntityId.get_scheduler_id(entity)).key == entity.key
    assert AgentSessionId.from_entity_id(entity) == sid
    assert AgentSessionId.parse(str(sid), "Joker") == sid


def test_plain_keys_keep_their_storage_form() -> None:
    # Every key sessions could have before free-text keys: its entity and transcript stay where they are.
    for key in ("user-123", "a.b:c~d_e", "9"):
        assert AgentSessionId("Joker", key).to_entity_id().key == key


@pytest.mark.parametrize("bad", ["", "   ", "x" * 129, "tab\t", "line\nbreak", "nul\x00", "bell\x07", "\ud800"])
def test_session_keys_are_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        AgentSessionId("Joker", bad)


def test_session_id_of_another_agent_is_rejected() -> None:
    with pytest.raises(ValueError, match="belongs to agent"):
        AgentSessionId.parse("@Other@k", "Joker")
    with pytest.raises(ValueError):
        AgentSessionId.parse("@Joker")
    # An entity key that is no session key's storage form (not canonical base64url behind '~').
    for key in ("~!!", "~YQ=", "has space"):
        with pytest.raises(ValueError):
            AgentSessionId.from_entity_id(df.EntityId("agent-joker", key))


# State --------------------------------------------------------------------------------------------


def test_state_round_trip_and_messages() -> None:
    state = AgentState()
    state.add_user_message("hello", correlation_id="c1")
    state.add_assistant_message("hi there", AgentResponse(messages=[Message(role="assistant", contents=["hi there"])]))
    data = json.loads(json.dumps(state.get_state()))
    assert data["schemaVersion"] == SCHEMA_VERSION
    restored = AgentState()
    restored.restore_state(data)
    assert [m.text for m in restored.window_messages()] == ["hello", "hi there"]
    assert restored.message_count == 1  # one exchange
    restored.reset()
    assert restored.window_messages() == [] and restored.message_count == 0


def test_state_with_unknown_schema_is_refused_not_wiped() -> None:
    data = AgentState().get_state()
    for version in (None, SCHEMA_VERSION + 1, "1"):
        changed = {**data, "schemaVersion": version}
        with pytest.raises(StateSchemaError):
            AgentState().restore_state(changed)
        assert changed["session"] == data["session"]  # nothing was touched


def test_window_is_bounded_and_starts_at_a_user_turn() -> None:
    state = AgentState()
    limits = StateLimits(window_messages=5, window_bytes=10_000)
    for i in range(10):
        state.add_user_message(f"question {i}", correlation_id=f"c{i}")
        tool = Message(role="tool", contents=["tool output"])
        response = AgentResponse(messages=[tool, Message(role="assistant", contents=[f"answer {i}"])])
        state.add_assistant_message(f"answer {i}", response)
        state.trim(limits)
    window = state.window
    assert len(window) <= 5 and window[0]["role"] == "user"
    assert state.message_count == 10  # exchanges, not messages (the product description's message_count)


def test_receipts_are_bounded_and_state_stays_small() -> None:
    state = AgentState()
    limits = StateLimits()
    for i in range(1000):
        state.add_user_message("x" * 300, correlation_id=f"c{i}")
        state.add_assistant_message("y" * 1200)
        state.trim(limits)
        beyond = state.remember(Receipt(f"c{i}", "h", "success", "now", turn=i, text="y" * 400), limits)
        assert [r.correlation_id for r in beyond] == ([f"c{i - 32}"] if i >= 32 else [])
        state.forget(r.correlation_id for r in beyond)  # once stored elsewhere
    assert len(state.receipts) == limits.receipts
    assert "c999" in state.receipts and "c0" not in state.receipts
    assert state.size_bytes() <= 64 * 1024


# Requests -----------------------------------------------------------------------------------------


def test_request_aliases_and_defaults() -> None:
    limits = RequestLimits()
    for alias in ("sessionId", "sessionKey", "session_id", "thread_id", "conversation_id"):
        request = build_run_request("Joker", {"message": "hi", alias: "k1"}, limits)
        assert request.session == AgentSessionId("Joker", "k1")
    request = build_run_request("Joker", {"message": " hi "}, limits)
    assert request.role == "user" and request.enable_tool_calls and not request.session_was_given
    with_header = build_run_request("Joker", {"message": "hi"}, limits, correlation_header="abc")
    assert with_header.correlation_id == "abc"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "message_required"),
        ({"message": "   "}, "message_required"),
        ({"message": 5}, "invalid_request"),
        ({"message": "hi", "role": "system"}, "invalid_role"),
        ({"message": "hi", "role": "assistant"}, "invalid_role"),
        ({"message": "hi", "sessionId": "line\nbreak"}, "invalid_session_id"),
        ({"message": "hi", "sessionId": "k" * 129}, "invalid_session_id"),
        ({"message": "hi", "sessionId": "a", "thread_id": "b"}, "invalid_session_id"),
        ({"message": "hi", "sessionId": 7}, "invalid_session_id"),
        ({"message": "hi", "correlationId": "bad id!"}, "invalid_correlation_id"),
        ({"message": "hi", "enable_tool_calls": "yes"}, "invalid_request"),
        ({"message": "hi", "response_schema": {"type": 12}}, "invalid_response_schema"),
        ({"message": "hi", "response_schema": {"type": "string"}}, "invalid_response_schema"),
        ({"message": "x" * 40_000}, "message_too_large"),
        ({"message": "hi", "replyQueue": "Bad_Queue"}, "invalid_request"),
        ({"message": "hi", "timeoutSeconds": 0}, "invalid_request"),
    ],
)
def test_bad_requests_have_stable_codes(body: dict[str, object], code: str) -> None:
    with pytest.raises(RequestError) as caught:
        build_run_request("Joker", body, RequestLimits())
    assert caught.value.error.code == code
    assert caught.value.body()["error"]["code"] == code  # type: ignore[index]


def test_an_empty_response_schema_is_a_plain_run() -> None:
    # The product description's own request example sends "response_schema": {} and shows a text answer.
    empty = build_run_request("Joker", {"message": "hi", "sessionId": "s", "response_schema": {}}, RequestLimits())
    plain = build_run_request("Joker", {"message": "hi", "sessionId": "s"}, RequestLimits())
    assert empty.response_schema is None and "responseSchema" not in empty.to_operation_input()
    assert empty.request_hash == plain.request_hash  # the same request: a retry of either matches


def test_custom_limits_allow_more_roles_and_size() -> None:
    limits = RequestLimits(max_message_bytes=10, allowed_roles=frozenset({"user", "system"}))
    assert build_run_request("Joker", {"message": "hi", "role": "System"}, limits).role == "system"
    with pytest.raises(RequestError):
        build_run_request("Joker", {"message": "12345678901"}, limits)


def test_idempotency_conflict_is_409() -> None:
    limits = RequestLimits()
    first = build_run_request("Joker", {"message": "a", "sessionId": "s", "correlationId": "c"}, limits)
    same = build_run_request("Joker", {"message": "a", "sessionId": "s", "correlationId": "c"}, limits)
    other = build_run_request("Joker", {"message": "b", "sessionId": "s", "correlationId": "c"}, limits)
    check_idempotency(first.request_hash, same)
    with pytest.raises(RequestError) as caught:
        check_idempotency(first.request_hash, other)
    assert caught.value.error.status == 409


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False), ("maybe", None)]
)
def test_parse_bool(text: str, value: bool | None) -> None:
    assert parse_bool(text) is value


# Schedules ----------------------------------------------------------------------------------------


def test_schedules_are_real_ncrontab_or_a_setting_reference() -> None:
    AgentSchedule("%DIGEST_SCHEDULE%", "digest")  # resolved by the host at start
    AgentSchedule("*/10 * * * * *", "every ten seconds")
    for bad in ("a b c d e f", "61 * * * * *", "* * * * *", "%BAD SETTING%"):
        with pytest.raises(AgentRegistrationError):
            AgentSchedule(bad, "x")
    with pytest.raises(AgentRegistrationError):
        AgentFunctionApp(session_ttl=timedelta(hours=1), maintenance_schedule="every hour")


def test_a_firing_maps_to_its_occurrence(monkeypatch: pytest.MonkeyPatch) -> None:
    # A late or redelivered firing of the same occurrence gets the same correlation id.
    at = datetime(2026, 1, 1, 9, 0, 0, tzinfo=timezone.utc)
    assert occurrence_for("0 0 9 * * *", at + timedelta(seconds=40)) == at
    assert occurrence_for("0 0 9 * * *", at) == at
    assert occurrence_for("*/10 * * * * *", at + timedelta(seconds=17)) == at + timedelta(seconds=10)
    monkeypatch.setenv("DIGEST_SCHEDULE", "0 */5 * * * *")
    assert occurrence_for("%DIGEST_SCHEDULE%", at + timedelta(minutes=7)) == at + timedelta(minutes=5)


# Structured output --------------------------------------------------------------------------------

_TICKET = {
    "type": "object",
    "properties": {"priority": {"type": "integer", "minimum": 1}},
    "required": ["priority"],
}


@pytest.mark.parametrize("text", ["not json", '{"priority": "high"}', '{"other": 1}', '{"priority": 0}'])
def test_structured_output_that_breaks_the_schema_is_a_failure(text: str) -> None:
    response = AgentResponse(messages=[Message(role="assistant", contents=[text])])
    with pytest.raises(StructuredOutputError) as caught:
        _checked_structured_value(response, _TICKET)
    assert classify_failure(caught.value)["code"] == "invalid_structured_output"


def test_structured_output_that_fits_is_the_parsed_value() -> None:
    response = AgentResponse(messages=[Message(role="assistant", contents=['{"priority": 2}'])])
    assert _checked_structured_value(response, _TICKET) == {"priority": 2}


def test_failures_never_carry_client_text() -> None:
    class ClientError(Exception):
        status_code = 500

    try:
        try:
            raise ClientError("secret internal detail from the SDK")
        except ClientError as inner:
            raise RuntimeError("wrapped: secret internal detail") from inner
    except RuntimeError as outer:
        error = classify_failure(outer)
    assert error["code"] == "agent_run_failed" and "secret" not in error["message"]
    assert "500" in error["message"]


# The conversation as read ------------------------------------------------------------------------


def _record(**extra: object) -> dict[str, object]:
    response = AgentResponse(
        messages=[
            Message(
                role="assistant",
                contents=[Content.from_function_call(call_id="c1", name="lookup", arguments='{"city": "Oslo"}')],
            ),
            Message(role="tool", contents=[Content.from_function_result(call_id="c1", result="sunny")]),
            Message(role="assistant", contents=["It is sunny."]),
        ],
        usage_details={"input_token_count": 30, "output_token_count": 7},
    )
    return {
        "turn": 0,
        "correlationId": "c",
        "createdAt": "2026-01-01T10:00:05.000Z",
        "request": {"role": "user", "message": "Weather in Oslo?"},
        "messages": [],
        "response": response.to_dict(),
        "text": response.text,
        **extra,
    }


def test_agent_response_fields_are_derived_from_the_stored_response() -> None:
    user, assistant = history_entries(_record(receivedAt="2026-01-01T10:00:00.000Z"))
    assert (user["timestamp"], assistant["timestamp"]) == ("2026-01-01T10:00:00.000Z", "2026-01-01T10:00:05.000Z")
    view = assistant["agent_response"]
    assert (view["text"], view["kind"]) == ("It is sunny.", "agent_message")
    assert view["tool_calls"] == [{"call_id": "c1", "name": "lookup", "arguments": {"city": "Oslo"}, "result": "sunny"}]
    # total_tokens is the sum when the model reported only the parts.
    assert view["usage"] == {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}
    assert view["usage_details"] == {"input_token_count": 30, "output_token_count": 7}  # the framework's, beside


def test_records_written_before_receivedAt_existed_still_read() -> None:
    record = _record()
    del record["response"]["usage_details"]  # type: ignore[attr-defined]
    user, assistant = history_entries(record)
    assert user["timestamp"] == assistant["timestamp"] == "2026-01-01T10:00:05.000Z"
    assert assistant["agent_response"]["usage"] == {
        "prompt_tokens": None,
        "completion_tokens": None,
        "total_tokens": None,
    }


def test_v1_state_is_migrated_on_restore() -> None:
    v1 = {
        **AgentState().get_state(),
        "schemaVersion": 1,
        "turns": 3,
        "messageCount": 10,
        "receipts": [
            {
                "correlation_id": "a",
                "request_hash": "h",
                "status": "success",
                "at": "t",
                "turn": 2,
                "message_count": 10,
            },
            {"correlation_id": "b", "request_hash": "h", "status": "failed", "at": "t", "message_count": 10},
        ],
    }
    state = AgentState.from_state(v1)
    assert state.message_count == 3 and state.receipts["a"].message_count == 3
    assert state.get_state()["schemaVersion"] == SCHEMA_VERSION == 2
    assert v1["messageCount"] == 10  # the stored dict is not changed in place


def test_a_receipt_encodes_as_its_fields_without_none_or_false() -> None:
    full = Receipt("c1", "h", "failed", "now", turn=0, text="", usage={"input_token_count": 3},
                   message_count=0, error={"code": "x", "message": "y"})  # fmt: skip
    bare = Receipt("c2", "h", "success", "now")
    for receipt in (full, bare):
        expected = {k: v for k, v in dataclasses.asdict(receipt).items() if v is not None and v is not False}
        assert receipt.to_dict() == expected
        assert Receipt.from_dict(receipt.to_dict()) == receipt
    assert "text_truncated" not in bare.to_dict() and full.to_dict()["turn"] == 0 and full.to_dict()["text"] == ""
