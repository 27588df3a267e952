"""SIGKILL the host again and again while agents run turns with tools; nothing finished may run twice.

Each turn of the ``Crash`` agent (``apps/crash_agents``) is three model calls and two tool calls:
the model asks for ``record_step`` twice, then answers. The model is the fake OpenAI server in this
process, so it outlives every kill and counts every call; the tool logs its start and end.
HTTP clients run sessions turn by turn (each turn with its own ``Idempotency-Key``, re-sent until
answered, across kills), and queue messages add turns to other sessions (a message leased by a
killed host comes back after its lease: ``DURABLEAGENT_QUEUE_LEASE_SECONDS``).

After ``CYCLES`` kills everything must settle, and then:

* every turn is in its session exactly once (none lost, none doubled), answered from its own steps;
* a model call or tool call ran twice only if it was in flight at a kill: the first run's result
  had not been recorded durably (journal entry or turn blob) when the host died. One recorded
  before the kill and run again is a failure;
* the journal was used: some attempts resumed from an earlier one's record.

Set ``CRASH_SEED`` to replay a run's random waits.
"""

from __future__ import annotations

import collections
import json
import os
import random
import threading
import time
import urllib.error
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, copy_app, free_port

from durableagent._background import default_queue_name
from durableagent._journal import tool_entry
from durableagent.testing import FakeOpenAIServer, Reply
from durableagent.testing._openai_wire import last_user_text

pytestmark = pytest.mark.crash

APP = Path(__file__).parent / "apps" / "crash_agents"
CYCLES = 10
HTTP_SESSIONS = 6
QUEUE_SESSIONS = 2
QUEUE_MESSAGES_PER_CYCLE = 3
TOOL_ROUNDS = 2
MODEL_SECONDS = 0.03
SETTLE_SECONDS = 120.0


@dataclass
class Ledger:
    """What the test sent, and what the model was asked."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    turns: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))  # session -> texts
    correlation: dict[str, str] = field(default_factory=dict)  # text -> correlation id
    model_calls: list[tuple[str, int, float]] = field(default_factory=list)  # (text, round, arrival)
    kills: list[tuple[float, float]] = field(default_factory=list)  # (killed at, next host up at)
    answered: int = 0
    retries: int = 0


def _responder(ledger: Ledger) -> Any:
    def answer(body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or []
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        text = last_user_text(body)
        done = sum(1 for m in messages[last_user + 1 :] if m.get("role") == "tool")
        with ledger.lock:
            ledger.model_calls.append((text, done, time.time()))
        if done < TOOL_ROUNDS:
            return Reply.tool_call("record_step", {"step": f"{text}#{done}"}, delay_seconds=MODEL_SECONDS)
        return Reply.text(f"done: {text}", delay_seconds=MODEL_SECONDS)

    return answer


def _http_client(host: HostProcess, session: str, ledger: Ledger, stop: threading.Event) -> None:
    """Turn after turn on one session; each turn is re-sent with its key until it is answered.

    ``host`` only sends requests: every restarted host listens on the same port.
    """
    n = 0
    while not stop.is_set():
        text = f"{session}-turn-{n}"
        key = f"k-{session}-{n}"
        with ledger.lock:
            ledger.turns[session].append(text)
            ledger.correlation[text] = key
        while True:
            try:
                code, _, raw = host.request(
                    "POST",
                    "/api/agents/Crash/run",
                    {"message": text, "sessionId": session},
                    {"Idempotency-Key": key},
                    timeout=60,
                )
            except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError, OSError):
                code, raw = 0, b""
            if code == 200:
                body = json.loads(raw)
                assert body["response"] == f"done: {text}", body
                with ledger.lock:
                    ledger.answered += 1
                break
            assert code in (0, 202, 502, 503), (code, raw[:300])
            with ledger.lock:
                ledger.retries += 1
            time.sleep(0.2)
        n += 1


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


def _repeats(
    runs: dict[Any, list[float]], recorded_at: dict[Any, float], kills: list[tuple[float, float]]
) -> tuple[int, int, list[str]]:
    """(repeated calls, of which in flight at a kill, problems) for calls grouped by identity.

    A repeat is fine only if a kill came between the first run and the repeat, and the first run's
    result was not yet recorded when that kill happened. The fake model notes a request when its
    thread gets to it, which can be after the kill of the host that sent it: a call noted before the
    next host was up still counts as sent before that kill.
    """
    repeated = in_flight = 0
    problems: list[str] = []
    for identity, times in runs.items():
        times = sorted(times)
        for again in times[1:]:
            repeated += 1
            kill = max((k for k, up in kills if times[0] <= up and k <= again), default=None)
            recorded = recorded_at.get(identity)
            if kill is None:
                problems.append(f"{identity}: ran again at {again:.3f} with no kill since its first run")
            elif recorded is not None and recorded < kill:
                problems.append(f"{identity}: recorded at {recorded:.3f}, before the kill at {kill:.3f}, yet ran again")
            else:
                in_flight += 1
    return repeated, in_flight, problems


def test_kills_repeat_only_calls_in_flight(azurite: AzuriteInstance, tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", str(time.time_ns() % 2**32)))
    print(f"\nagent crash test seed: {seed} (CRASH_SEED={seed} replays the waits)")
    rng = random.Random(seed)
    ledger = Ledger()
    model = FakeOpenAIServer(responder=_responder(ledger)).start_in_thread()
    app_dir = copy_app(APP, tmp_path / "app")
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": "CrashAgents",
        **model.env(),
        "CRASH_LOG_DIR": str(events_dir),
        "DURABLEAGENT_QUEUE_LEASE_SECONDS": "3",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    port = free_port()
    queue = QueueClient.from_connection_string(
        azurite.connection_string, default_queue_name("Crash"), message_encode_policy=TextBase64EncodePolicy()
    )
    queued = 0
    began = time.monotonic()
    stop = threading.Event()
    host = HostProcess(app_dir, env=env, port=port).start()
    clients = [
        threading.Thread(
            target=_http_client, args=(HostProcess(app_dir, port=port), f"h{i}", ledger, stop), daemon=True
        )
        for i in range(HTTP_SESSIONS)
    ]
    try:
        for client in clients:
            client.start()
        for _ in range(CYCLES):
            for _n in range(QUEUE_MESSAGES_PER_CYCLE):
                session = f"q{queued % QUEUE_SESSIONS}"
                text = f"{session}-queued-{queued}"
                sent = queue.send_message(json.dumps({"message": text, "sessionId": session}))
                with ledger.lock:
                    ledger.turns[session].append(text)
                    ledger.correlation[text] = f"queue-{sent.id}"
                queued += 1
            time.sleep(rng.uniform(0.4, 1.5))
            killed_at = time.time()
            host.kill()
            host = HostProcess(app_dir, env=env, port=port).start()
            with ledger.lock:
                ledger.kills.append((killed_at, time.time()))
        stop.set()
        for client in clients:
            client.join(SETTLE_SECONDS)
            assert not client.is_alive(), "an HTTP client never got its answer"

        def history(session: str) -> list[str]:
            code, _, raw = host.request("GET", f"/api/agents/Crash/{session}", timeout=60)
            if code == 404:  # a queue session whose first turn is still on its way
                return []
            assert code == 200, (code, raw[:300])
            turns = json.loads(raw)["conversation_history"]
            return [t["content"] for t in turns if t["role"] == "user"]

        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            seen = {s: history(s) for s in (f"q{i}" for i in range(QUEUE_SESSIONS))}
            if all(len(seen[s]) >= len(ledger.turns[s]) for s in seen):
                break
            time.sleep(0.5)
        histories = {s: history(s) for s in ledger.turns}
    finally:
        stop.set()
        host.stop()
        model.stop()

    problems: list[str] = []
    for session, texts in ledger.turns.items():
        told = collections.Counter(histories[session])
        lost = [t for t in texts if told[t] == 0]
        doubled = [t for t, n in told.items() if n > 1]
        strangers = [t for t in told if t not in texts]
        if lost or doubled or strangers:
            problems.append(f"{session}: lost {lost[:5]}, doubled {doubled[:5]}, unknown {strangers[:5]}")

    events = _events(events_dir / "events.log")
    turn_written = {e["correlation_id"]: e["t"] for e in events if e["event"] == "turn-written"}
    journaled = {(e["correlation_id"], e["entry"]): e["t"] for e in events if e["event"] == "journaled"}
    replays = [e for e in events if e["event"] == "replay"]

    # Tool calls, by the step they do; recorded when their journal entry was written.
    tool_runs: dict[Any, list[float]] = collections.defaultdict(list)
    tool_recorded: dict[Any, float] = {}
    first_call_id: dict[str, str] = {}
    for event in events:
        if event["event"] == "tool-start":
            tool_runs[event["step"]].append(event["t"])
            first_call_id.setdefault(event["step"], event["call_id"])
    for step, call_id in first_call_id.items():
        text = step.rsplit("#", 1)[0]
        at = journaled.get((ledger.correlation.get(text, "?"), tool_entry(call_id)))
        if at is not None:
            tool_recorded[step] = at
    # Model calls, by turn and round; recorded by their journal entry, the last one by the turn's blob.
    model_runs: dict[Any, list[float]] = collections.defaultdict(list)
    model_recorded: dict[Any, float] = {}
    for text, done, at in ledger.model_calls:
        model_runs[(text, done)].append(at)
    for text, done in model_runs:
        cid = ledger.correlation.get(text, "?")
        at = turn_written.get(cid) if done == TOOL_ROUNDS else journaled.get((cid, f"model-{done:04d}"))
        if at is not None:
            model_recorded[(text, done)] = at

    tool_repeats, tool_in_flight, tool_problems = _repeats(tool_runs, tool_recorded, ledger.kills)
    model_repeats, model_in_flight, model_problems = _repeats(model_runs, model_recorded, ledger.kills)
    problems += tool_problems + model_problems
    total_turns = sum(len(t) for t in ledger.turns.values())
    expected_steps = {f"{text}#{k}" for texts in ledger.turns.values() for text in texts for k in range(TOOL_ROUNDS)}
    missing_steps = expected_steps - set(tool_runs)
    if missing_steps:
        problems.append(f"steps never run: {sorted(missing_steps)[:5]}")
    if not replays:
        problems.append("no attempt ever resumed from a journal: the kills never interrupted a turn mid-way")

    print(
        f"agent crash test: {CYCLES} SIGKILL cycles; {total_turns} turns ({total_turns - queued} over HTTP, "
        f"{queued} from the queue), {ledger.retries} HTTP re-sends; "
        f"tool calls: {sum(len(t) for t in tool_runs.values())} runs of {len(tool_runs)} steps, "
        f"{tool_repeats} repeated, of which {tool_in_flight} in flight at a kill; "
        f"model calls: {len(ledger.model_calls)} for {len(model_runs)} (turn, round) pairs, "
        f"{model_repeats} repeated, of which {model_in_flight} in flight at a kill; "
        f"{len(replays)} attempts resumed from a journal "
        f"({sum(len(r['entries']) for r in replays)} recorded steps replayed); "
        f"total {time.monotonic() - began:.1f}s"
    )
    assert not problems, "\n".join(problems[:50])
