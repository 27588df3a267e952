"""An agent with a call-counting tool, for the agent crash test (``tests/test_crash_agents.py``).

The model is the fake OpenAI server in the test process (``OPENAI_BASE_URL``), so it outlives every
kill and counts every model call. ``record_step`` writes a line when it starts and when it ends
(``O_APPEND`` + ``fsync``); it is idempotent the way the README shows, by the call id it receives.

The app also logs, to the same file, when the library has durably recorded a step (a journal entry,
a turn's blob) and when an attempt finds an earlier one's journal: the test uses these to tell a call
that was in flight at a kill from one that had finished and been recorded. (This wraps private
methods of ``durableagent`` on purpose: it observes the library, it changes nothing.)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import azure.functions as func
from agent_framework import Agent, FunctionInvocationContext, tool
from agent_framework.openai import OpenAIChatCompletionClient

from durableagent import AgentFunctionApp
from durableagent._transcript import TranscriptStore

STEP_SECONDS = float(os.environ.get("CRASH_STEP_SECONDS", "0.03"))


def _log(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "t": time.time(), **fields}) + "\n"
    fd = os.open(Path(os.environ["CRASH_LOG_DIR"]) / "events.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@tool
def record_step(step: str, ctx: FunctionInvocationContext) -> str:
    """Record one step of the user's request."""
    call_id = str(ctx.metadata.get("call_id", ""))
    _log("tool-start", step=step, call_id=call_id)
    time.sleep(STEP_SECONDS)  # a side effect that takes a while, so kills land inside some
    _log("tool-end", step=step, call_id=call_id)
    return f"recorded {step}"


_write_journal = TranscriptStore.write_journal
_write_turn = TranscriptStore.write_turn
_attempt = TranscriptStore.attempt


def _journaled(self: TranscriptStore, session: Any, turn: int, correlation_id: str, entry: str, data: Any) -> None:
    _write_journal(self, session, turn, correlation_id, entry, data)
    _log("journaled", correlation_id=correlation_id, entry=entry, call_id=data.get("callId"))


def _turn_written(self: TranscriptStore, session: Any, turn: int, record: dict[str, Any]) -> None:
    _write_turn(self, session, turn, record)
    _log("turn-written", correlation_id=record.get("correlationId"), turn=turn)


def _attempted(self: TranscriptStore, session: Any, turn: int, correlation_id: str) -> Any:
    found = _attempt(self, session, turn, correlation_id)
    if found.journal:
        _log("replay", correlation_id=correlation_id, entries=sorted(found.journal))
    return found


TranscriptStore.write_journal = _journaled  # type: ignore[method-assign]
TranscriptStore.write_turn = _turn_written  # type: ignore[method-assign]
TranscriptStore.attempt = _attempted  # type: ignore[method-assign]

agent = Agent(
    client=OpenAIChatCompletionClient(),
    name="Crash",
    instructions="Record each step with record_step, then answer.",
    tools=[record_step],
)

app = AgentFunctionApp(agents=[agent], http_auth_level=func.AuthLevel.ANONYMOUS)
