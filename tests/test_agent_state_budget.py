"""A 1,000-turn session stays within the state budget (DESIGN §3 "Bounded state", §7); and a turn
adopted after a crash keeps the session's state whole.

The agent entity runs in process, driven the way the Durable extension drives it: one batch per turn
(the entity-trigger JSON the worker decodes with the SDK's converter), the state it returned fed back
into the next batch. The model is a ``ScriptedChatClient`` that answers 2,000 characters to
500-character prompts (the sizes upstream measured at ~2.9 KB of state per turn); the transcript goes
to a real ``TranscriptStore`` in Azurite. The GET route's own handler then reads the session back.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import openai
import pytest
from agent_framework import Agent, Message
from agent_framework.openai import OpenAIChatClient
from azure.functions import meta
from azure.functions.durable_functions import EnitityTriggerConverter
from azure.storage.blob import ContainerClient
from conftest import AzuriteInstance

from durableagent import AgentFunctionApp, AgentSessionId, RequestLimits, StateLimits
from durableagent._app import http_function_names
from durableagent._entity import _SPILL_BACKLOG
from durableagent._loop import run_coroutine
from durableagent._requests import build_run_request
from durableagent.testing import FakeOpenAIServer, Reply, ScriptedChatClient

TURNS = 1_000
STATE_BUDGET_BYTES = 64 * 1024
PROMPT_CHARS = 500
ANSWER_CHARS = 2_000


def _answer(messages: Sequence[Message]) -> Reply:
    last = next(m.text for m in reversed(messages) if m.role == "user")
    head = f"answer to {last[:12]} "
    return Reply.text(head + "x" * (ANSWER_CHARS - len(head)))


@dataclass
class _EntityResult:
    exists: bool
    state: str | None


@dataclass
class _ReadResult:
    """What ``DurableOrchestrationClient.read_entity_state`` returns (the fields the API reads)."""

    entity_exists: bool
    entity_state: Any


class _StateClient:
    """The one client call the GET handler makes, answered from the state the entity returned."""

    def __init__(self, state: str | None) -> None:
        self.state = state

    async def read_entity_state(self, entity_id: Any) -> _ReadResult:
        return _ReadResult(self.state is not None, json.loads(self.state) if self.state else None)


def _invoke_entity(function: Any, name: str, key: str, state: str | None, operation: dict[str, Any]) -> Any:
    """One batch of one signalled operation, as the host's entity worker builds it.

    The stored input of a signal is JSON text of the JSON the SDK client sent (``hosttools.engine``).
    """
    batch = {
        "self": {"name": name, "key": key},
        "exists": state is not None,
        "state": state,
        "batch": [{"name": "run_agent", "input": json.dumps(json.dumps(operation)), "isSignal": True}],
    }
    context = EnitityTriggerConverter.decode(meta.Datum(json.dumps(batch), "json"), trigger_metadata=None)
    outcome = json.loads(str(EnitityTriggerConverter.encode(function(context), expected_type=None).value))
    results = outcome["results"]
    assert len(results) == 1 and not results[0].get("isError"), results
    return outcome


def test_a_thousand_turns_stay_within_the_state_budget(
    azurite: AzuriteInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    container_name = f"budget-{uuid.uuid4().hex[:12]}"
    client = ScriptedChatClient(responder=_answer)
    app = AgentFunctionApp(agents=[Agent(client=client, name="Budget")], transcript_container=container_name)
    functions = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}
    entity = functions["agent-budget"]
    session = AgentSessionId("Budget", f"long-{uuid.uuid4().hex[:8]}")
    limits = StateLimits()

    state: str | None = None
    sizes: list[int] = []
    seconds: list[float] = []
    for turn in range(TURNS):
        prompt = f"turn-{turn:04d} " + "p" * (PROMPT_CHARS - 10)
        request = build_run_request(
            "Budget", {"message": prompt, "correlationId": f"c-{turn}"}, RequestLimits(), session_override=session.key
        )
        began = time.perf_counter()
        outcome = _invoke_entity(entity, "agent-budget", session.key, state, request.to_operation_input())
        seconds.append(time.perf_counter() - began)
        result = json.loads(outcome["results"][0]["result"])
        assert result["status"] == "success", result
        assert result["turn"] == turn
        state = outcome["entityState"]
        assert outcome["entityExists"] and state is not None
        sizes.append(len(state.encode()))
        assert sizes[-1] <= STATE_BUDGET_BYTES, f"state is {sizes[-1]} bytes after turn {turn}"

    # Exactly one model call per turn, and the last one saw a bounded window of recent turns only.
    assert len(client.calls) == TURNS
    last_seen = client.calls[-1].messages
    assert len(last_seen) <= limits.window_messages, len(last_seen)
    seen_text = [m.text for m in last_seen]
    assert seen_text[-1].startswith("turn-0999 ")
    assert any(t.startswith("turn-0998 ") for t in seen_text), "the window lost the previous turn"
    assert not any(t.startswith("turn-0000 ") for t in seen_text), "the window is not bounded"
    stored = json.loads(state)
    assert stored["turns"] == TURNS and stored["messageCount"] == TURNS  # one exchange per turn

    # One blob per turn, all there; and one per run whose receipt left the state (all but the recent
    # ones), so every run id is still known; no journal is left behind.
    container = ContainerClient.from_connection_string(azurite.connection_string, container_name)
    with container:
        prefix = f"agent-budget/{session.key}/"
        names = sorted(b.name for b in container.list_blobs(name_starts_with=prefix))
    turn_names = [n for n in names if not n.startswith(f"{prefix}runs/")]
    assert turn_names == [f"{prefix}{turn:010d}.json" for turn in range(TURNS)]
    spilled = {n[len(f"{prefix}runs/") : -len(".json")] for n in names if n.startswith(f"{prefix}runs/")}
    in_state = [r["correlation_id"] for r in stored["receipts"]]  # oldest first
    # The newest receipts stay; one beyond the limit waits in the state until its upload is seen done.
    assert limits.receipts <= len(in_state) <= limits.receipts + _SPILL_BACKLOG
    assert spilled | set(in_state) == {f"c-{turn}" for turn in range(TURNS)}
    assert not spilled & set(in_state[-limits.receipts :])

    # GET-style reads through the route's own handler: the first page and the last turn. Unwrapped
    # from the SDK's client middleware, which would build a real client from the binding's JSON.
    get = inspect.unwrap(functions[http_function_names("Budget")["session"]])  # the agent's own GET route

    def read(params: dict[str, str]) -> dict[str, Any]:
        req = func.HttpRequest(
            "GET",
            f"http://localhost/api/agents/Budget/{session.key}",
            params=params,
            route_params={"sessionId": session.key},
            body=b"",
        )
        response = asyncio.run(get(req=req, client=_StateClient(state)))
        assert response.status_code == 200, response.get_body()
        body: dict[str, Any] = json.loads(response.get_body())
        return body

    first = read({"cursor": "0", "page_size": "1"})
    assert first["turn_count"] == TURNS and first["message_count"] == TURNS  # one exchange per turn
    assert [e["role"] for e in first["conversation_history"]] == ["user", "assistant"]
    assert first["conversation_history"][0]["content"].startswith("turn-0000 ")
    assert first["page"]["next_cursor"] == 1
    last = read({"cursor": str(TURNS - 1), "page_size": "5"})
    assert last["conversation_history"][0]["content"].startswith("turn-0999 ")
    assert last["conversation_history"][1]["content"].startswith("answer to turn-0999 ")
    assert last["last_response"] == last["conversation_history"][1]["content"]
    assert last["page"]["next_cursor"] is None

    early = statistics.median(seconds[10:30]) * 1000
    late = statistics.median(seconds[-20:]) * 1000
    print(
        f"\nper-turn time (median): {early:.2f} ms at ~10 prior turns, {late:.2f} ms at ~1,000 "
        f"(ratio {late / early:.2f}); state max {max(sizes)} bytes, last {sizes[-1]} bytes"
    )


def test_turn_recovered_after_a_crash_stays_in_service_side_history(
    azurite: AzuriteInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the transcript write but before the entity commit: the retried operation adopts
    the written turn. With service-side history (Responses API) the next turn must continue from that
    turn's response, or the model silently forgets an acknowledged turn."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    with FakeOpenAIServer() as model:
        sdk = openai.AsyncOpenAI(base_url=model.base_url, api_key="test", max_retries=0)
        client = OpenAIChatClient(model="fake-model", async_client=sdk)
        app = AgentFunctionApp(
            agents=[Agent(client=client, name="Service")], transcript_container=f"recover-{uuid.uuid4().hex[:12]}"
        )
        entity = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}["agent-service"]
        key = f"crash-{uuid.uuid4().hex[:8]}"

        def run(state: str | None, message: str, correlation: str) -> tuple[str, dict[str, Any]]:
            request = build_run_request(
                "Service", {"message": message, "correlationId": correlation}, RequestLimits(), session_override=key
            )
            outcome = _invoke_entity(entity, "agent-service", key, state, request.to_operation_input())
            return outcome["entityState"], json.loads(outcome["results"][0]["result"])

        first, _ = run(None, "the code word is heron", "c0")
        # Turn 1 runs and writes its transcript, but the host dies before the entity state commits ...
        run(first, "the colour is blue", "c1")
        # ... so the operation is delivered again against the old state: it adopts the written turn.
        recovered, result = run(first, "the colour is blue", "c1")
        assert (result["status"], result["turn"]) == ("success", 1)
        assert len(model.requests) == 2  # adopted, not asked again

        run(recovered, "what colour?", "c2")
        last = model.requests[-1]
        assert last.body.get("previous_response_id"), last.body
        # The agents' shared loop made the SDK's connections: close them there.
        run_coroutine(sdk.close())
        users = [text for role, text in last.transcript() if role == "user"]
        assert users == ["the code word is heron", "the colour is blue", "what colour?"]
