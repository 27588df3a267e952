"""Queue-triggered and scheduled runs, reply queues, and the idle-session clean-up."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from croniter import croniter

from ._bodies import parse_json_object
from ._entity import DELETE, RUN_AGENT
from ._errors import AgentRegistrationError, RequestError
from ._logs import get_logger
from ._requests import RequestLimits, build_run_request
from ._session_id import AgentSessionId, entity_name_for, key_from_entity_key, validate_key
from ._transcript import TranscriptStore

_log = get_logger("durableagent.background")

_NON_QUEUE_CHARACTERS = re.compile(r"[^a-z0-9]+")
# Azure Storage queue messages are at most 64 KiB; base64 decoding can only shrink them, so this is no limit in
# Azure, only a bound for whatever else delivers to the trigger.
_MAX_QUEUE_MESSAGE_BYTES = 256 * 1024
_SETTING_REFERENCE = re.compile(r"^%[^%\s]+%\Z")


def validate_ncrontab(schedule: str) -> None:
    """Raise ``AgentRegistrationError`` unless ``schedule`` is a valid six-field NCRONTAB.

    A whole-string ``%SETTING%`` passes: the Functions host resolves it (and checks it) at start.
    """
    if _SETTING_REFERENCE.match(schedule):
        return
    if len(schedule.split()) != 6:
        raise AgentRegistrationError(
            f"schedule '{schedule}' must have six fields (second minute hour day month day-of-week)"
        )
    if not croniter.is_valid(schedule, second_at_beginning=True):
        raise AgentRegistrationError(f"schedule '{schedule}' is not a valid NCRONTAB expression")


def resolve_schedule(schedule: str) -> str:
    """The schedule with a whole-string ``%SETTING%`` reference replaced from the environment."""
    if _SETTING_REFERENCE.match(schedule):
        return os.environ.get(schedule[1:-1], schedule)
    return schedule


def occurrence_for(schedule: str, now: datetime) -> datetime:
    """The schedule occurrence a firing at ``now`` is for (the latest one at or before ``now``).

    Derived from the schedule, not the clock reading, so a redelivered or late firing of the same
    occurrence gets the same correlation id and never runs the model twice.
    """
    expression = resolve_schedule(schedule)
    if not croniter.is_valid(expression, second_at_beginning=True):
        return now.replace(microsecond=0)
    moment: datetime = croniter(expression, now + timedelta(seconds=1), second_at_beginning=True).get_prev(datetime)
    return moment


POISON_SUFFIX = "-poison"


def default_queue_name(agent_name: str) -> str:
    """``<agent lower-cased, runs of other characters as '-', trimmed>-runs``, at most 63 characters."""
    slug = _NON_QUEUE_CHARACTERS.sub("-", agent_name.lower()).strip("-")
    name = f"{slug}-runs" if slug else "agent-runs"
    return name[:63].rstrip("-")


@dataclass(frozen=True)
class AgentSchedule:
    """A scheduled run: ``message`` sent to session ``session_key`` on an NCRONTAB ``schedule``.

    Attributes:
        schedule: Six-field NCRONTAB (``second minute hour day month day-of-week``).
        message: What the agent is asked each time.
        session_key: The session the runs go to (one conversation across runs).
        name: Names the generated timer function; defaults to its position.
        run_on_startup: Also run when the host starts.
    """

    schedule: str
    message: str
    session_key: str = "scheduled"
    name: str | None = None
    run_on_startup: bool = False

    def __post_init__(self) -> None:
        validate_ncrontab(self.schedule)
        if not self.message.strip():
            raise AgentRegistrationError("a schedule needs a non-empty message")
        try:
            validate_key(self.session_key)
        except ValueError as exc:
            raise AgentRegistrationError(f"schedule session key: {exc}") from exc


def queue_reply_sender(setting: str = "AzureWebJobsStorage") -> Callable[[str, dict[str, Any]], None]:
    """Posts a run's outcome to a reply queue, base64-encoded as Functions queue bindings expect."""

    def send(queue: str, outcome: dict[str, Any]) -> None:
        from azure.storage.queue import QueueClient

        connection = os.environ.get(setting)
        if connection:
            client = QueueClient.from_connection_string(connection, queue)
        else:
            # Identity-based storage, as deployed by infra/: the queue service URI and a managed identity.
            uri = os.environ.get(f"{setting}__queueServiceUri")
            if not uri:
                raise RuntimeError(
                    f"no storage for reply queue '{queue}': set '{setting}' or '{setting}__queueServiceUri'"
                )
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=os.environ.get(f"{setting}__clientId"))
            client = QueueClient(uri, queue, credential=credential)
        try:
            with contextlib.suppress(Exception):  # it exists (or the send below reports the real problem)
                client.create_queue()
            client.send_message(base64.b64encode(json.dumps(outcome).encode()).decode())
        finally:
            client.close()

    return send


async def handle_queue_message(
    agent_name: str,
    message: func.QueueMessage,
    client: df.DurableOrchestrationClient,
    limits: RequestLimits,
    poison: func.Out[str],
    wait: Callable[..., Any],
    wait_timeout: float,
    find_receipt: Callable[..., Any],
) -> None:
    """Validate a queue message and run it once; invalid messages go to the poison queue with a reason."""
    raw = message.get_body()
    try:
        body = parse_json_object(raw, max_bytes=_MAX_QUEUE_MESSAGE_BYTES, what="The queue message")
        if not body.get("correlationId") and not body.get("correlation_id"):
            # The queue message id is the same on every redelivery: the run happens once.
            body = {**body, "correlationId": f"queue-{message.id}"}
        request = build_run_request(agent_name, body, limits)
    except RequestError as exc:
        _log.error(
            "Queue message %s for agent %s is invalid (%s): %s",
            message.id,
            agent_name,
            exc.error.code,
            exc.message,
        )
        poison.set(
            json.dumps(
                {
                    "error": {"code": exc.error.code, "message": exc.message},
                    "message": raw.decode("utf-8", errors="replace"),
                }
            )
        )
        return
    existing = await find_receipt(client, request.session, request.correlation_id)
    if existing is not None and existing.request_hash and existing.request_hash != request.request_hash:
        _log.error(
            "Queue message %s reuses correlation id %s for a different request", message.id, request.correlation_id
        )
        poison.set(
            json.dumps(
                {
                    "error": {
                        "code": "idempotency_key_reused",
                        "message": "correlation id already used for another request",
                    },
                    "message": raw.decode("utf-8", errors="replace"),
                }
            )
        )
        return
    if existing is not None:
        return  # already done: a redelivery
    await client.signal_entity(request.session.to_entity_id(), RUN_AGENT, request.to_operation_input())
    receipt = await wait(client, request.session, request.correlation_id, wait_timeout)
    if receipt is None:
        # Not done yet: fail so the message comes back; the retry finds the receipt, not a new run.
        raise TimeoutError(f"run {request.correlation_id} of agent {agent_name} is still in progress")


async def handle_schedule(
    agent_name: str, schedule: AgentSchedule, index: int, client: df.DurableOrchestrationClient
) -> None:
    """Start one scheduled run (fire and forget); its correlation id is fixed by the occurrence it is for."""
    occurrence = occurrence_for(schedule.schedule, datetime.now(timezone.utc))
    label = schedule.name or str(index)
    correlation = f"schedule-{label}-{occurrence:%Y%m%dT%H%M%S}"
    session = AgentSessionId(agent_name, schedule.session_key)
    payload = {"message": schedule.message, "correlationId": correlation}
    request = build_run_request(agent_name, payload, RequestLimits(), session_override=str(session))
    await client.signal_entity(session.to_entity_id(), RUN_AGENT, request.to_operation_input())


async def purge_idle_sessions(
    agent_names: list[str],
    ttl: timedelta,
    client: df.DurableOrchestrationClient,
    transcripts: TranscriptStore,
) -> int:
    """Delete sessions idle longer than ``ttl`` (entity and transcript). Returns how many were asked."""
    import asyncio

    cutoff = datetime.now(timezone.utc) - ttl
    keys_by_agent = await asyncio.to_thread(_session_keys, transcripts, agent_names)
    deleted = 0
    for name, keys in keys_by_agent.items():
        for key in keys:
            session = AgentSessionId(name, key)
            result = await client.read_entity_state(session.to_entity_id())
            if not result.entity_exists:
                continue
            state = result.entity_state
            if isinstance(state, str):
                state = json.loads(state)
            updated = _parse_time(str((state or {}).get("updatedAt", "")))
            if updated is not None and updated < cutoff:
                await client.signal_entity(session.to_entity_id(), DELETE)
                deleted += 1
    return deleted


def _session_keys(transcripts: TranscriptStore, agent_names: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in agent_names:
        keys = []
        for stored in transcripts.session_keys(entity_name_for(name)):
            with contextlib.suppress(ValueError):  # a folder no session wrote: not ours to delete
                keys.append(key_from_entity_key(stored))
        found[name] = keys
    return found


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
