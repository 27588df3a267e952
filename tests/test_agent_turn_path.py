"""The turn path's costs (issue 13): one session decode per turn, encodings equal to Agent Framework's,
and a waiting request woken by the entity instead of sleeping out its back-off. No timings asserted."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import pytest
from agent_framework import AgentSession, Content, Message
from test_agent_entity import FakeContext, MemoryTranscripts, make, run

from durableagent import AgentState, _http_api, _wakeups
from durableagent._entity import waiter_key
from durableagent._http_api import AgentHttpApi, AgentInfo, HttpSettings
from durableagent._requests import RequestLimits
from durableagent._session_id import AgentSessionId
from durableagent._state import WINDOW_SOURCE_ID, StateLimits, decode_session, encode_session
from durableagent.testing import Reply


@pytest.fixture
def codec_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts ``AgentSession.from_dict`` / ``to_dict`` calls (the bulk of a turn's CPU before issue 13)."""
    calls = {"from_dict": 0, "to_dict": 0}
    from_dict, to_dict = AgentSession.from_dict.__func__, AgentSession.to_dict  # type: ignore[attr-defined]

    def counted_from_dict(cls: type[AgentSession], data: dict[str, Any]) -> AgentSession:
        calls["from_dict"] += 1
        return from_dict(cls, data)  # type: ignore[no-any-return]

    def counted_to_dict(self: AgentSession) -> dict[str, Any]:
        calls["to_dict"] += 1
        return to_dict(self)

    monkeypatch.setattr(AgentSession, "from_dict", classmethod(counted_from_dict))
    monkeypatch.setattr(AgentSession, "to_dict", counted_to_dict)
    yield calls


def _stored(context: FakeContext) -> Any:
    # What the host keeps and hands back: JSON.
    return json.loads(json.dumps(context.state))


def test_a_turn_decodes_and_encodes_the_session_once(codec_calls: dict[str, int]) -> None:
    entity, client, _ = make(*[Reply.text(f"answer {i}") for i in range(30)])
    state = None
    for i in range(25):  # past the window's 40 messages: trimming happens too
        state = _stored(run(entity, state, f"question {i}", f"c{i}"))
    codec_calls.update(from_dict=0, to_dict=0)
    context = run(entity, state, "one more", "c-last")
    assert context.result["status"] == "success"
    assert codec_calls == {"from_dict": 1, "to_dict": 1}
    # The model still saw the (trimmed) window, and the state still holds it.
    seen = [m.text for m in client.calls[-1].messages]
    assert seen[-1] == "one more" and len(seen) <= 41
    assert AgentState.from_state(_stored(context)).window[-1]["role"] == "assistant"


def test_a_restored_state_sets_every_field_its_defaults_would() -> None:
    # from_state skips the defaults (restore_state replaces them): a factory-made field restore_state
    # forgot would be missing here (a plain default still reads as the class's, as before).
    entity, _, _ = make(Reply.text("one"), Reply.text("two"))
    stored = _stored(run(entity, _stored(run(entity, None, "first", "c1")), "second", "c2"))
    restored = AgentState.from_state(stored)
    expected = AgentState()
    expected.restore_state(stored)
    for item in dataclasses.fields(AgentState):
        assert getattr(restored, item.name) == getattr(expected, item.name) or item.name == "session", item.name
    assert restored.session.to_dict() == expected.session.to_dict()
    assert restored.turns == 2 and list(restored.receipts) == ["c1", "c2"]


def test_a_failed_run_decodes_the_stored_session_again_to_roll_back(codec_calls: dict[str, int]) -> None:
    entity, client, _ = make(Reply.text("fine"), Reply.error(500), Reply.text("again"))
    ok = _stored(run(entity, None, "first", "c1"))
    before = copy.deepcopy(ok)
    codec_calls.update(from_dict=0, to_dict=0)
    failed = run(entity, ok, "doomed", "c2")
    assert failed.result["status"] == "failed"
    assert codec_calls["from_dict"] == 2  # the restore, and the rollback
    assert ok == before  # the stored state it rolled back from was not changed by the run
    assert failed.state["session"] == ok["session"]
    run(entity, _stored(failed), "next", "c3")
    assert [m.text for m in client.calls[-1].messages] == ["first", "fine", "next"]


def _session_with_a_window() -> AgentSession:
    session = AgentSession(service_session_id=None)
    call = Content.from_function_call(call_id="call-1", name="lookup", arguments={"q": "x"})
    result = Content.from_function_result(call_id="call-1", result="found")
    messages = [
        Message(role="user", contents=["hello"], additional_properties={"correlation_id": "c1"}),
        Message(role="assistant", contents=[call]),
        Message(role="tool", contents=[result]),
        Message(role="assistant", contents=["done"]),
    ]
    session.state[WINDOW_SOURCE_ID] = {"messages": [m.to_dict() for m in messages]}
    session.state["other"] = {"kept": [1, 2, {"a": None}], "message": Message(role="user", contents=["x"])}
    return session


def test_encode_session_is_agent_frameworks_to_dict() -> None:
    session = _session_with_a_window()
    assert encode_session(session) == session.to_dict()
    assert json.loads(json.dumps(encode_session(session))) == session.to_dict()
    # Revived messages (a window someone filled with Message objects) take Agent Framework's path.
    session.state[WINDOW_SOURCE_ID]["messages"].append(Message(role="user", contents=["revived"]))
    assert encode_session(session) == session.to_dict()


def test_decode_session_keeps_the_window_as_dicts_and_leaves_its_input_alone() -> None:
    data = json.loads(json.dumps(_session_with_a_window().to_dict()))
    kept = copy.deepcopy(data)
    ours, theirs = decode_session(data), AgentSession.from_dict(data)
    assert data == kept
    assert ours.session_id == theirs.session_id
    window = ours.state[WINDOW_SOURCE_ID]["messages"]
    assert all(type(m) is dict for m in window)
    assert window == [m.to_dict() for m in theirs.state[WINDOW_SOURCE_ID]["messages"]]
    assert isinstance(ours.state["other"]["message"], Message)  # other slots decode as Agent Framework's
    assert encode_session(ours) == theirs.to_dict()
    window[0]["role"] = "changed"
    assert data == kept  # each message is a copy


def _old_trim(window: list[dict[str, Any]], limits: StateLimits) -> None:
    """The trim before issue 13: re-encodes the whole window for every message dropped."""

    def size() -> int:
        return len(json.dumps(window, separators=(",", ":")))

    while window and (len(window) > limits.window_messages or size() > limits.window_bytes):
        window.pop(0)
        while window and window[0].get("role") not in ("user", "system"):
            window.pop(0)


def test_trim_drops_what_the_whole_window_encoding_did() -> None:
    chooser = random.Random(13)
    for _ in range(200):
        roles = ["user", "assistant", "tool", "system"]
        window = [
            Message(role=chooser.choice(roles), contents=["é" * chooser.randint(0, 300)]).to_dict()
            for _ in range(chooser.randint(0, 60))
        ]
        limits = StateLimits(window_messages=chooser.randint(1, 50), window_bytes=chooser.randint(50, 20_000))
        expected = copy.deepcopy(window)
        _old_trim(expected, limits)
        state = AgentState()
        state.window.extend(window)
        state.trim(limits)
        assert state.window == expected


# Waking the waiter ---------------------------------------------------------------------------------


def test_a_notify_from_another_thread_sets_the_watch_and_a_finished_watch_is_gone() -> None:
    async def main() -> bool:
        with _wakeups.watch("joker/s1", "c1") as woken:
            assert _wakeups.waiting() == 1
            _wakeups.notify("joker/s1", "c2")  # another run: not this watch
            thread = threading.Thread(target=_wakeups.notify, args=("joker/s1", "c1"))
            thread.start()
            thread.join()
            await asyncio.wait_for(woken.wait(), 30)
            return woken.is_set()

    assert asyncio.run(main())
    assert _wakeups.waiting() == 0
    _wakeups.notify("joker/s1", "c1")  # nobody waits: nothing happens


def test_the_entity_wakes_a_waiter_of_its_run_in_this_process() -> None:
    entity, _, _ = make(Reply.text("hi"))
    session = AgentSessionId("Joker", "s1")

    async def main() -> bool:
        with _wakeups.watch(waiter_key(session), "c1") as woken:
            await asyncio.to_thread(run, entity, None, "hello", "c1")
            await asyncio.wait_for(woken.wait(), 30)
            return woken.is_set()

    assert asyncio.run(main())


@dataclass
class _Read:
    entity_exists: bool
    entity_state: Any


class _EntityClient:
    """A durable client whose entity runs on a thread when signalled and commits just after it returns."""

    def __init__(self, entity: Any, queued: float = 0.2) -> None:
        self.entity = entity
        self.queued = queued
        self.state: Any = None
        self.reads = 0
        self.reads_before_run = 0  # after a signal, before its operation ran: such a look finds nothing
        self.signals = 0
        self.threads: list[threading.Thread] = []
        self.running = threading.Event()

    async def read_entity_state(self, entity_id: Any) -> _Read:
        self.reads += 1
        if self.signals and not self.running.is_set():
            self.reads_before_run += 1
        return _Read(self.state is not None, self.state)

    async def signal_entity(self, entity_id: Any, operation: str, operation_input: Any = None) -> None:
        self.signals += 1
        self.running.clear()

        def operate() -> None:
            time.sleep(self.queued)  # the signal waits in the queue a moment
            self.running.set()
            context = FakeContext(operation, entity_id.key, self.state, operation_input)
            self.entity(context)  # notifies the waiter as it returns ...
            self.state = json.loads(json.dumps(context.state))  # ... and the host commits after that

        thread = threading.Thread(target=operate)
        self.threads.append(thread)
        thread.start()


def _api(transcripts: MemoryTranscripts) -> AgentHttpApi:
    return AgentHttpApi(
        HttpSettings(
            limits=RequestLimits(),
            wait_timeout_seconds=120.0,
            transcripts=lambda: transcripts,  # type: ignore[arg-type,return-value]
            agents=lambda: {"joker": AgentInfo("Joker", "Agent")},
            workflows=lambda: [],
        )
    )


def _post(body: dict[str, Any], headers: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest(
        "POST",
        "http://localhost/api/agents/Joker/run",
        headers={"Content-Type": "application/json", **(headers or {})},
        route_params={"name": "Joker"},
        body=json.dumps(body).encode(),
    )


def _wait_for_run(client: _EntityClient, transcripts: MemoryTranscripts) -> func.HttpResponse:
    """One waiting ``POST …/run`` through the API, its entity on a thread; joined before returning."""

    async def main() -> func.HttpResponse:
        return await asyncio.wait_for(_api(transcripts).run(_post({"message": "hello", "sessionId": "s1"}), client), 50)

    response = asyncio.run(main())
    for thread in client.threads:
        thread.join()
    return response


@pytest.fixture
def slow_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    # Polls a minute apart: a waiting request that answers at once was woken, not polled.
    monkeypatch.setattr(_http_api, "_FIRST_POLL_SECONDS", 60.0)
    monkeypatch.setattr(_http_api, "_MAX_POLL_SECONDS", 60.0)
    monkeypatch.setattr(_http_api, "_UNWOKEN_FIRST_LOOK_SECONDS", 60.0)


def test_a_waiting_run_is_woken_by_its_entity_and_our_fresh_id_is_not_looked_up(slow_polls: None) -> None:
    entity, _, transcripts = make(Reply.text("hi there"))
    client = _EntityClient(entity)

    response = _wait_for_run(client, transcripts)
    assert response.status_code == 200, response.get_body()
    assert json.loads(response.get_body())["response"] == "hi there"
    assert client.signals == 1
    # No look before signalling (the id is ours, so new), none between the signal and the entity's word
    # (they could only miss): one after the wake-up, or a few if the commit came a moment after it.
    assert 1 <= client.reads < 20
    assert client.reads_before_run == 0
    assert _wakeups.waiting() == 0


def test_a_waiter_not_woken_finds_its_run_by_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    # The entity ran on another instance: no word comes, and the wait falls back to reading the state.
    monkeypatch.setattr("durableagent._entity.notify", lambda *args: None)
    monkeypatch.setattr(_http_api, "_UNWOKEN_FIRST_LOOK_SECONDS", 0.01)
    monkeypatch.setattr(_http_api, "_FIRST_POLL_SECONDS", 0.01)
    monkeypatch.setattr(_http_api, "_MAX_POLL_SECONDS", 0.05)
    entity, _, transcripts = make(Reply.text("polled"))
    client = _EntityClient(entity)

    response = _wait_for_run(client, transcripts)
    assert response.status_code == 200, response.get_body()
    assert json.loads(response.get_body())["response"] == "polled"
    assert client.reads >= 1


def test_a_callers_id_is_still_looked_up_before_signalling(slow_polls: None) -> None:
    entity, client_model, transcripts = make(Reply.text("once"))
    client = _EntityClient(entity)
    api = _api(transcripts)

    async def post() -> func.HttpResponse:
        request = _post({"message": "hello", "sessionId": "s1"}, {"Idempotency-Key": "run-1"})
        return await asyncio.wait_for(api.run(request, client), 50)

    first = asyncio.run(post())
    for thread in client.threads:
        thread.join()
    again = asyncio.run(post())
    assert first.status_code == again.status_code == 200
    assert json.loads(again.get_body())["response"] == "once"
    assert client.signals == 1 and len(client_model.calls) == 1  # the retry was answered from the state


def test_a_waiter_whose_run_is_queued_polls_from_its_first_look_on_not_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The run waits 0.6 s behind others; the word comes when it is done. Looks before then can only
    # miss: they back off from the first look's 50 ms (50, 100, 200 ms: 3), not from 5 ms again (7).
    monkeypatch.setattr(_http_api, "_UNWOKEN_FIRST_LOOK_SECONDS", 0.05)
    monkeypatch.setattr(_http_api, "_MAX_POLL_SECONDS", 0.4)
    entity, _, transcripts = make(Reply.text("queued"))
    client = _EntityClient(entity, queued=0.6)

    response = _wait_for_run(client, transcripts)
    assert response.status_code == 200 and json.loads(response.get_body())["response"] == "queued"
    assert 1 <= client.reads_before_run <= 4


def test_a_pause_is_cut_short_by_a_word_and_otherwise_sleeps_out() -> None:
    async def main() -> tuple[bool, bool, bool, bool]:
        woken = asyncio.Event()
        woken.set()
        already = await _wakeups.pause(woken, 60)  # a word that came before the pause ends it at once
        woken.clear()
        silent = await _wakeups.pause(woken, 0.01)
        asyncio.get_running_loop().call_later(0.01, woken.set)
        later = await _wakeups.pause(woken, 60)
        nobody = await _wakeups.pause(None, 0.01)
        return already, silent, later, nobody

    assert asyncio.run(asyncio.wait_for(main(), 30)) == (True, False, True, False)


class _CommitsLate:
    """A durable client whose first look finds the run uncommitted and every later look finds it.

    ``timers`` counts the timers the event loop is asked for (``call_at``, which every sleep and
    timeout goes through); each look, and each end of a pause, notes how many there were by then."""

    def __init__(self, committed: dict[str, Any]) -> None:
        self.committed = committed
        self.timers = 0
        self.timers_at_look: list[int] = []
        self.timers_at_word: list[int] = []

    def count_timers(self, loop: asyncio.AbstractEventLoop) -> None:
        call_at = loop.call_at

        def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            self.timers += 1
            return call_at(when, callback, *args, **kwargs)

        loop.call_at = counted  # type: ignore[method-assign]

    async def read_entity_state(self, entity_id: Any) -> _Read:
        self.timers_at_look.append(self.timers)
        if len(self.timers_at_look) == 1:
            return _Read(True, {**self.committed, "receipts": []})
        return _Read(True, self.committed)


def test_after_the_word_the_first_look_waits_for_no_timer_and_a_miss_looks_again(
    slow_polls: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A timer of any length waits a whole millisecond of epoll when nothing else is ready: the first
    # look after the entity's word only lets the loop run what is queued (the host's commit). When the
    # commit is not done yet, the next look comes after _AFTER_WAKE_SECONDS, not after a poll interval.
    entity, _, transcripts = make(Reply.text("late"))
    first = _EntityClient(entity, queued=0.0)
    assert _wait_for_run(first, transcripts).status_code == 200
    committed = first.state
    correlation_id = committed["receipts"][-1]["correlation_id"]
    client = _CommitsLate(committed)
    pause = _wakeups.pause

    async def noted_pause(woken: asyncio.Event | None, seconds: float) -> bool:
        word = await pause(woken, seconds)
        if word:
            client.timers_at_word.append(client.timers)
        return word

    monkeypatch.setattr(_wakeups, "pause", noted_pause)

    async def main() -> Any:
        client.count_timers(asyncio.get_running_loop())
        woken = asyncio.Event()
        woken.set()  # the word came before the wait began
        return await _api(transcripts).wait_for_receipt(
            client,  # type: ignore[arg-type]
            AgentSessionId("Joker", "s1"),
            correlation_id,
            timeout=50,
            woken=woken,
        )

    receipt = asyncio.run(asyncio.wait_for(main(), 30))
    assert receipt is not None and receipt.correlation_id == correlation_id
    assert len(client.timers_at_look) == 2 and len(client.timers_at_word) == 1
    assert client.timers_at_look[0] == client.timers_at_word[0]  # no timer between the word and the look
    assert client.timers_at_look[1] > client.timers_at_look[0]  # the look again waited _AFTER_WAKE_SECONDS
