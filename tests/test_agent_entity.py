"""The agent entity's operations, driven directly (fake entity context and in-memory transcript)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from agent_framework import Agent, AgentContext, AgentResponse, AgentResponseUpdate, Message

from durableagent import AgentCallbackContext, AgentSessionId, AgentState
from durableagent._entity import AgentEntity, EntityConfig, classify_failure
from durableagent._journal import tool_entry
from durableagent._state import SCHEMA_VERSION, StateLimits
from durableagent._transcript import TurnAttempt
from durableagent.testing import Reply, ScriptedChatClient


class FakeContext:
    """The slice of ``DurableEntityContext`` the entity uses."""

    def __init__(self, operation: str, key: str, state: Any = None, input_: Any = None) -> None:
        self.operation_name = operation
        self.entity_key = key
        self.state = state
        self._input = input_
        self.result: Any = None
        self.destructed = False

    def get_state(self, initializer: Any = None) -> Any:
        return self.state if self.state is not None else (initializer() if initializer else None)

    def set_state(self, state: Any) -> None:
        self.state = state

    def get_input(self) -> Any:
        return self._input

    def set_result(self, result: Any) -> None:
        self.result = result

    def destruct_on_exit(self) -> None:
        self.destructed = True


class MemoryTranscripts:
    def __init__(self) -> None:
        self.turns: dict[tuple[str, int], dict[str, Any]] = {}
        self.writes = 0
        self.journal: dict[tuple[str, int, str, str], dict[str, Any]] = {}
        self.receipts: dict[tuple[str, str], dict[str, Any]] = {}
        self.receipt_reads = 0

    def write_turn(self, session: AgentSessionId, turn: int, record: dict[str, Any]) -> None:
        self.writes += 1
        self.turns[(str(session), turn)] = record

    def read_turn(self, session: AgentSessionId, turn: int) -> dict[str, Any] | None:
        return self.turns.get((str(session), turn))

    def read_turns(self, session: AgentSessionId, start: int, count: int) -> list[dict[str, Any]]:
        found = (self.read_turn(session, t) for t in range(start, start + count))
        return [r for r in found if r is not None]

    def delete_session(self, session: AgentSessionId) -> int:
        gone = [k for k in self.turns if k[0] == str(session)]
        for k in gone:
            del self.turns[k]
        self.receipts = {k: v for k, v in self.receipts.items() if k[0] != str(session)}
        self.journal = {k: v for k, v in self.journal.items() if k[0] != str(session)}
        return len(gone)

    # The journal and the receipts that left the state, as TranscriptStore keeps them.

    def attempt(self, session: AgentSessionId, turn: int, correlation_id: str) -> TurnAttempt:
        entries = {k[3]: v for k, v in self.journal.items() if k[:3] == (str(session), turn, correlation_id)}
        return TurnAttempt(record=self.read_turn(session, turn), journal=entries)

    def write_journal(
        self, session: AgentSessionId, turn: int, correlation_id: str, entry: str, data: dict[str, Any]
    ) -> None:
        self.journal[(str(session), turn, correlation_id, entry)] = json.loads(json.dumps(data))

    def discard_journal(self, session: AgentSessionId, turn: int, correlation_id: str, entries: Any) -> None:
        for entry in entries:
            self.journal.pop((str(session), turn, correlation_id, entry), None)

    def spill(self, session: AgentSessionId, receipts: Any, wait: int = 0) -> set[str]:
        for receipt in receipts:  # stored at once: the next call reports them all
            self.receipts[(str(session), receipt["correlation_id"])] = dict(receipt)
        return {str(r["correlation_id"]) for r in receipts}

    def read_receipt(self, session: AgentSessionId, correlation_id: str) -> dict[str, Any] | None:
        self.receipt_reads += 1
        return self.receipts.get((str(session), correlation_id))


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.updates: list[str] = []
        self.responses: list[tuple[str, AgentCallbackContext]] = []
        self.fail = fail

    async def on_streaming_response_update(self, update: AgentResponseUpdate, context: AgentCallbackContext) -> None:
        self.updates.append(update.text)
        if self.fail:
            raise RuntimeError("callback broke")

    async def on_agent_response(self, response: AgentResponse, context: AgentCallbackContext) -> None:
        self.responses.append((response.text, context))
        if self.fail:
            raise RuntimeError("callback broke")


def make(*replies: Reply, callback: Any = None) -> tuple[AgentEntity, ScriptedChatClient, MemoryTranscripts]:
    client = ScriptedChatClient(*replies)
    agent = Agent(client=client, name="Joker")
    from durableagent import _window

    _window.install(agent)
    transcripts = MemoryTranscripts()
    entity = AgentEntity(EntityConfig(name="Joker", agent=agent, transcripts=lambda: transcripts, callback=callback))
    return entity, client, transcripts


def run(entity: AgentEntity, state: Any, message: str, cid: str, **extra: Any) -> FakeContext:
    context = FakeContext(
        "run_agent", "s1", state, {"message": message, "correlationId": cid, "requestHash": "h", **extra}
    )
    entity(context)
    return context


def test_turns_accumulate_and_the_model_sees_the_window() -> None:
    entity, client, transcripts = make()
    first = run(entity, None, "hello", "c1")
    assert first.result["status"] == "success" and first.result["text"] == "echo: hello"
    second = run(entity, first.state, "again", "c2")
    # message_count counts exchanges (the product description's meaning), not messages.
    assert second.result["turn"] == 1 and second.result["message_count"] == 2
    seen = [m.text for m in client.calls[-1].messages]
    assert seen == ["hello", "echo: hello", "again"]
    assert transcripts.writes == 2 and transcripts.read_turn(AgentSessionId("Joker", "s1"), 1)["correlationId"] == "c2"


def test_duplicate_correlation_id_answers_from_the_receipt() -> None:
    entity, client, transcripts = make()
    first = run(entity, None, "hello", "c1")
    again = run(entity, first.state, "hello", "c1")
    assert again.result["duplicate"] is True and again.result["turn"] == 0
    assert len(client.calls) == 1 and transcripts.writes == 1


def test_a_crash_after_the_transcript_write_adopts_the_turn_without_a_model_call() -> None:
    entity, client, _ = make()
    committed = run(entity, None, "hello", "c1").state
    crashed = run(entity, committed, "second", "c2")  # its state commit is "lost": replay from `committed`
    calls = len(client.calls)
    retried = run(entity, committed, "second", "c2")
    assert len(client.calls) == calls  # no second model call
    assert retried.result["status"] == "success" and retried.result["turn"] == crashed.result["turn"] == 1
    restored = AgentState.from_state(retried.state)
    assert restored.turns == 2 and [m["role"] for m in restored.window] == ["user", "assistant", "user", "assistant"]


def test_a_failed_run_is_recorded_and_never_shown_to_the_model_again() -> None:
    entity, client, _ = make(Reply.text("fine"), Reply.error(500))
    ok = run(entity, None, "first", "c1")
    failed = run(entity, ok.state, "doomed", "c2")
    assert failed.result["status"] == "failed" and failed.result["error"]["code"] == "agent_run_failed"
    retry = run(entity, failed.state, "doomed", "c2")
    assert retry.result["duplicate"] is True and retry.result["status"] == "failed"
    run(entity, failed.state, "next", "c3")
    assert [m.text for m in client.calls[-1].messages] == ["first", "fine", "next"]
    assert AgentState.from_state(failed.state).turns == 1


def test_a_run_longer_than_its_time_limit_is_a_timeout() -> None:
    client = ScriptedChatClient(Reply.text("late", delay_seconds=2))
    agent = Agent(client=client, name="Joker")
    config = EntityConfig(name="Joker", agent=agent, transcripts=MemoryTranscripts, run_timeout_seconds=0.05)
    failed = run(AgentEntity(config), None, "hurry", "c1")
    assert failed.result["status"] == "failed" and failed.result["error"]["code"] == "agent_run_timeout"


def test_a_wait_for_timeout_inside_the_agent_is_a_timeout() -> None:
    # On 3.10 wait_for raises asyncio.TimeoutError, not the builtin TimeoutError.
    async def too_slow() -> None:
        await asyncio.wait_for(asyncio.sleep(5), timeout=0.01)

    try:
        asyncio.run(too_slow())
    except Exception as exc:
        assert classify_failure(exc)["code"] == "agent_run_timeout"
    else:
        pytest.fail("wait_for did not time out")


def test_callbacks_stream_and_report_and_their_failures_are_ignored() -> None:
    recorder = Recorder()
    entity, _, _ = make(Reply.text("one two three"), callback=recorder)
    result = run(entity, None, "hi", "c1").result
    assert result["status"] == "success"
    assert "".join(recorder.updates).strip() == "one two three"
    text, context = recorder.responses[0]
    assert text == "one two three"
    assert (context.agent_name, context.correlation_id, context.session_id, context.request_message) == (
        "Joker",
        "c1",
        "@Joker@s1",
        "hi",
    )
    broken = Recorder(fail=True)
    entity, client, _ = make(callback=broken)
    result = run(entity, None, "hi", "c1").result
    assert result["status"] == "success" and len(client.calls) == 1  # not failed, not repeated
    assert broken.responses and broken.updates


def test_tools_can_be_switched_off_per_run() -> None:
    entity, client, _ = make()
    run(entity, None, "hi", "c1", enableToolCalls=False)
    assert client.calls[-1].options.get("tool_choice") == "none"


def test_state_operations() -> None:
    entity, _, transcripts = make()
    state = run(entity, None, "hi", "c1").state
    state = run(entity, state, "again", "c2").state
    read = FakeContext("get_state", "s1", state)
    entity(read)
    # get_state returns the conversation, as the product description shows it.
    assert read.result["message_count"] == 2 and read.result["agent_type"] == "Agent"
    assert read.result["last_response"] == "echo: again"
    history = read.result["conversation_history"]
    assert [(e["role"], e["content"]) for e in history] == [
        ("user", "hi"),
        ("assistant", "echo: hi"),
        ("user", "again"),
        ("assistant", "echo: again"),
    ]
    assert (
        history[1]["agent_response"]["text"] == "echo: hi" and history[1]["agent_response"]["kind"] == "agent_message"
    )
    assert (
        read.result["turns"] == 2 and read.result["sessionId"] == "s1" and read.result["agentSessionId"] == "@Joker@s1"
    )
    assert read.state == state  # reading changes nothing
    reset = FakeContext("reset", "s1", state)
    entity(reset)
    # reset forgets the conversation and its transcript: reading it afterwards shows no old turn.
    assert AgentState.from_state(reset.state).turns == 0 and not transcripts.turns
    assert reset.result["transcriptTurnsDeleted"] == 2
    after = FakeContext("get_state", "s1", reset.state)
    entity(after)
    assert (after.result["message_count"], after.result["conversation_history"]) == (0, [])
    state = run(entity, reset.state, "fresh", "c3").state
    delete = FakeContext("delete", "s1", state)
    entity(delete)
    assert delete.destructed and delete.result["transcriptTurnsDeleted"] == 1 and not transcripts.turns
    unknown = FakeContext("explode", "s1", state)
    entity(unknown)
    assert unknown.result["error"]["code"] == "unknown_operation" and unknown.state == state


def test_a_key_that_is_no_session_keys_storage_form_is_refused() -> None:
    entity, client, _ = make()
    context = FakeContext("run_agent", "has space", None, {"message": "hi", "correlationId": "c1"})
    entity(context)
    assert context.result["error"]["code"] == "invalid_session_id" and context.state is None and not client.calls


def test_free_text_keys_run_under_their_storage_form() -> None:
    entity, _, transcripts = make()
    session = AgentSessionId("Joker", "someone@example.com")
    context = FakeContext(
        "run_agent", session.entity_key, None, {"message": "hi", "correlationId": "c1", "requestHash": "h"}
    )
    entity(context)
    assert context.result["status"] == "success" and transcripts.read_turn(session, 0) is not None


def test_v1_state_is_migrated_and_keeps_working() -> None:
    # A session stored by schema 1, where message counts counted every message of a turn.
    entity, client, _ = make()
    v2 = run(entity, None, "hello", "c1").state
    v1 = {
        **v2,
        "schemaVersion": 1,
        "messageCount": 4,  # question, tool call, tool result, answer
        "receipts": [{**v2["receipts"][0], "message_count": 4}],
    }
    again = run(entity, v1, "hello", "c1")  # a retry of the stored run answers from its migrated receipt
    assert again.result["duplicate"] is True and again.result["message_count"] == 1 and len(client.calls) == 1
    nxt = run(entity, v1, "next", "c2")
    assert nxt.result["status"] == "success" and nxt.result["message_count"] == 2
    assert nxt.state["schemaVersion"] == SCHEMA_VERSION == 2 and nxt.state["messageCount"] == 2
    assert [m.text for m in client.calls[-1].messages] == ["hello", "echo: hello", "next"]
    assert v1["schemaVersion"] == 1 and v1["messageCount"] == 4  # the stored dict itself is not mutated


@pytest.mark.parametrize("version", [None, SCHEMA_VERSION + 1])
def test_unknown_state_schema_is_reported_and_left_alone(version: Any) -> None:
    entity, client, _ = make()
    stored = {**AgentState().get_state(), "schemaVersion": version}
    context = run(entity, stored, "hi", "c1")
    assert context.result["error"]["code"] == "state_schema"
    assert context.state is stored and not client.calls


def test_a_reused_correlation_id_for_another_request_runs_nothing() -> None:
    entity, client, transcripts = make()
    first = run(entity, None, "hello", "c1")
    context = FakeContext(
        "run_agent", "s1", first.state, {"message": "other", "correlationId": "c1", "requestHash": "different"}
    )
    entity(context)
    assert context.result["status"] == "conflict" and context.result["error"]["code"] == "idempotency_key_reused"
    assert len(client.calls) == 1 and transcripts.writes == 1
    assert AgentState.from_state(context.state).turns == 1


# The journal: finished model responses and tool results are replayed, not repeated -----------------


def _tool_agent(
    *replies: Reply, limits: StateLimits | None = None
) -> tuple[AgentEntity, ScriptedChatClient, MemoryTranscripts, list[str]]:
    ran: list[str] = []

    def look_up(city: str) -> str:
        """Look a city up."""
        ran.append(city)
        return f"{city}: sunny"

    client = ScriptedChatClient(*replies)
    agent = Agent(client=client, name="Joker", tools=[look_up])
    transcripts = MemoryTranscripts()
    config = EntityConfig(name="Joker", agent=agent, transcripts=lambda: transcripts, limits=limits or StateLimits())
    return AgentEntity(config), client, transcripts, ran


def test_a_retried_attempt_replays_finished_model_calls_and_tool_results() -> None:
    # The first attempt gets through two tool rounds, then "crashes" (here: the model fails, and the
    # retry starts from the state before the attempt, as after a kill the commit never happened).
    entity, client, transcripts, ran = _tool_agent(
        Reply.tool_call("look_up", {"city": "Oslo"}, call_id="call-1"),
        Reply.tool_call("look_up", {"city": "Rome"}, call_id="call-2"),
        Reply.error(500),
        Reply.text("Oslo and Rome are sunny"),
    )
    crashed = run(entity, None, "weather?", "c1")
    assert crashed.result["status"] == "failed"
    assert ran == ["Oslo", "Rome"] and len(client.calls) == 3
    entries = sorted(k[3] for k in transcripts.journal)
    assert entries == sorted(["model-0000", "model-0001", tool_entry("call-1"), tool_entry("call-2")])

    retried = run(entity, None, "weather?", "c1")
    assert retried.result["status"] == "success" and retried.result["text"] == "Oslo and Rome are sunny"
    assert ran == ["Oslo", "Rome"], "a tool that finished ran again"
    assert len(client.calls) == 4, "a finished model call was made again"
    # The model's last call saw the replayed steps exactly as the first attempt produced them.
    results = [str(c.result) for m in client.calls[-1].messages for c in m.contents if c.type == "function_result"]
    assert results == ["Oslo: sunny", "Rome: sunny"]
    # The turn's record holds every step; the journal is gone once the turn is written.
    record = transcripts.read_turn(AgentSessionId("Joker", "s1"), 0)
    assert record is not None and len(record["messages"]) == 6
    assert not transcripts.journal


def test_a_tool_that_failed_fails_again_from_the_journal_without_running() -> None:
    attempts: list[str] = []

    def flaky(city: str) -> str:
        """Fails."""
        attempts.append(city)
        raise RuntimeError("the weather service is down")

    client = ScriptedChatClient(
        Reply.tool_call("flaky", {"city": "Oslo"}, call_id="call-1"), Reply.error(500), Reply.text("sorry")
    )
    transcripts = MemoryTranscripts()
    agent = Agent(client=client, name="Joker", tools=[flaky])
    entity = AgentEntity(EntityConfig(name="Joker", agent=agent, transcripts=lambda: transcripts))
    assert run(entity, None, "weather?", "c1").result["status"] == "failed"
    assert run(entity, None, "weather?", "c1").result["status"] == "success"
    assert attempts == ["Oslo"]
    tool_messages = [m for m in client.calls[-1].messages if m.role == "tool"]
    assert len(tool_messages) == 1


def test_a_streamed_turn_replays_its_journal_too() -> None:
    recorder = Recorder()
    entity, client, transcripts, ran = _tool_agent(
        Reply.tool_call("look_up", {"city": "Oslo"}, call_id="call-1"), Reply.error(500), Reply.text("sunny")
    )
    entity.config.callback = recorder  # streaming: the callback wants every update
    assert run(entity, None, "weather?", "c1").result["status"] == "failed"
    assert [k[3] for k in transcripts.journal] == ["model-0000", tool_entry("call-1")] or sorted(
        k[3] for k in transcripts.journal
    ) == sorted(["model-0000", tool_entry("call-1")])
    retried = run(entity, None, "weather?", "c1")
    assert retried.result["status"] == "success" and retried.result["text"] == "sunny"
    assert ran == ["Oslo"] and len(client.calls) == 3


def test_receipts_that_leave_the_state_still_answer_retries() -> None:
    entity, client, transcripts, _ = _tool_agent(limits=StateLimits(receipts=2))
    state = None
    for n in range(5):
        state = run(entity, state, f"m{n}", f"c{n}").state
    stored = AgentState.from_state(state)
    assert list(stored.receipts) == ["c3", "c4"]
    assert {k[1] for k in transcripts.receipts} == {"c0", "c1", "c2"}
    calls = len(client.calls)
    again = run(entity, state, "m0", "c0")
    assert again.result["duplicate"] is True and again.result["turn"] == 0
    assert len(client.calls) == calls and AgentState.from_state(again.state).turns == 5
    # Reused for another request, even long after: a conflict, nothing runs.
    conflict = run(entity, state, "other", "c1", requestHash="different")
    assert conflict.result["status"] == "conflict" and len(client.calls) == calls


def test_a_fresh_id_of_ours_is_not_looked_up_in_storage() -> None:
    entity, _, transcripts, _ = _tool_agent()
    run(entity, None, "hello", "c1", correlationSupplied=False)
    assert transcripts.receipt_reads == 0
    run(entity, None, "hello", "c2")
    assert transcripts.receipt_reads == 1


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"role": "system"}, "invalid_role"),
        ({"role": "assistant"}, "invalid_role"),
        ({"role": ["user"]}, "invalid_role"),
        ({"message": ""}, "message_required"),
        ({"message": {"text": "hi"}}, "message_required"),
        ({"message": "x" * 40_000}, "message_too_large"),
        ({"enableToolCalls": "yes"}, "invalid_request"),
        ({"responseSchema": "not a schema"}, "invalid_response_schema"),
        ({"replyQueue": "Not A Queue"}, "invalid_request"),
    ],
)
def test_the_entity_enforces_roles_and_limits_whatever_path_reached_it(extra: dict[str, Any], code: str) -> None:
    # As if signalled through the management API: no HTTP validation happened.
    entity, client, transcripts = make()
    committed = run(entity, None, "hello", "c1").state
    payload = {"message": "injected", "correlationId": "c2", "requestHash": "h", **extra}
    context = FakeContext("run_agent", "s1", committed, payload)
    entity(context)
    assert context.result["status"] == "failed" and context.result["error"]["code"] == code
    assert len(client.calls) == 1 and transcripts.writes == 1
    after = AgentState.from_state(context.state)
    assert after.turns == 1 and [m["role"] for m in after.window] == ["user", "assistant"]
    assert after.receipts["c2"].status == "failed"  # the run's URL settles


@pytest.mark.parametrize(
    "given", [None, "text", ["list"], 7, {"message": "hi"}, {"message": "hi", "correlationId": "a\nb"}]
)
def test_a_run_without_a_usable_correlation_id_changes_nothing(given: Any) -> None:
    entity, client, _ = make()
    committed = run(entity, None, "hello", "c1").state
    context = FakeContext("run_agent", "s1", committed, given)
    entity(context)
    assert context.result["error"]["code"] == "invalid_correlation_id"
    assert len(client.calls) == 1 and AgentState.from_state(context.state).turns == 1


def test_a_role_from_another_path_is_normalised_as_the_edge_does() -> None:
    entity, client, transcripts = make()
    context = FakeContext("run_agent", "s1", None, {"message": "hi", "correlationId": "c1", "role": " User "})
    entity(context)
    assert context.result["status"] == "success"
    assert [m.role for m in client.calls[-1].messages] == ["user"]
    assert transcripts.read_turn(AgentSessionId("Joker", "s1"), 0)["request"]["role"] == "user"


# The listing of earlier attempts comes before the run, on the entity's thread (issue 13) -----------


class _GatedListing(MemoryTranscripts):
    """Transcripts whose listing of earlier attempts notes whether the agent had started, then answers."""

    def __init__(self, started: threading.Event, outcome: TurnAttempt | BaseException) -> None:
        super().__init__()
        self._started = started
        self._outcome = outcome
        self.listed_after_start: list[bool] = []

    def attempt(self, session: AgentSessionId, turn: int, correlation_id: str) -> TurnAttempt:
        self.listed_after_start.append(self._started.is_set())
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome


def _agent_started_gate(client: ScriptedChatClient) -> tuple[Agent, threading.Event]:
    """An agent whose own agent middleware says when the run has started (before any model call)."""
    started = threading.Event()

    async def mark(context: AgentContext, call_next: Callable[[], Awaitable[None]]) -> None:
        started.set()
        await call_next()

    return Agent(client=client, name="Joker", middleware=[mark]), started


def _entity_with(transcripts: MemoryTranscripts, agent: Any) -> AgentEntity:
    return AgentEntity(EntityConfig(name="Joker", agent=agent, transcripts=lambda: transcripts))


def test_the_listing_of_earlier_attempts_ends_before_the_agent_starts() -> None:
    client = ScriptedChatClient(Reply.text("hi"))
    agent, started = _agent_started_gate(client)
    transcripts = _GatedListing(started, TurnAttempt())
    done = run(_entity_with(transcripts, agent), None, "hello", "c1")
    assert transcripts.listed_after_start == [False]  # listed once, before the run began
    assert started.is_set() and done.result["status"] == "success" and len(client.calls) == 1


def test_a_turn_written_by_a_crashed_attempt_is_adopted_without_starting_the_agent() -> None:
    client = ScriptedChatClient(Reply.text("never asked"))
    agent, started = _agent_started_gate(client)
    written = {
        "turn": 0,
        "correlationId": "c1",
        "messages": [
            Message(role="user", contents=["hello"]).to_dict(),
            Message(role="assistant", contents=["from the crashed attempt"]).to_dict(),
        ],
        "text": "from the crashed attempt",
    }
    transcripts = _GatedListing(started, TurnAttempt(record=written))
    done = run(_entity_with(transcripts, agent), None, "hello", "c1")
    assert client.calls == [] and not started.is_set()  # adopted: no run, no model call
    assert done.result["status"] == "success" and done.result["text"] == "from the crashed attempt"
    state = AgentState.from_state(done.state)
    assert state.turns == 1 and [m["role"] for m in state.window] == ["user", "assistant"]


def test_a_turn_blob_left_by_another_run_is_not_adopted() -> None:
    # A crashed attempt of another run at the same turn number left its blob: this run runs and replaces it.
    client = ScriptedChatClient(Reply.text("fresh"))
    agent, started = _agent_started_gate(client)
    other = {"turn": 0, "correlationId": "other", "messages": [], "text": "not mine"}
    transcripts = _GatedListing(started, TurnAttempt(record=other))
    done = run(_entity_with(transcripts, agent), None, "hello", "c1")
    assert done.result["status"] == "success" and done.result["text"] == "fresh" and len(client.calls) == 1
    written = transcripts.read_turn(AgentSessionId.parse("@Joker@s1", "Joker"), 0)
    assert written is not None and written["correlationId"] == "c1"


def test_a_listing_that_fails_fails_the_operation_and_records_nothing() -> None:
    client = ScriptedChatClient(Reply.text("never asked"))
    agent, started = _agent_started_gate(client)
    transcripts = _GatedListing(started, OSError("storage unavailable"))
    context = FakeContext("run_agent", "s1", None, {"message": "hello", "correlationId": "c1", "requestHash": "h"})
    with pytest.raises(OSError):
        _entity_with(transcripts, agent)(context)
    assert client.calls == [] and not started.is_set()
    assert context.state is None and transcripts.writes == 0
