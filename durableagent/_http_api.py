"""The agent HTTP API: parse into a typed request, call one function, map the result or error.

A client function cannot call an entity and wait for its answer, so a run is a signal followed by
reads of the (small) entity state until the run's receipt appears. Reads start at once and back
off; a wait that runs out answers 202 with a URL that gives the result later, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import azure.durable_functions as df
import azure.functions as func

from . import _wakeups
from ._bodies import parse_json_object
from ._conversation import conversation
from ._entity import DELETE, RUN_AGENT, waiter_key
from ._errors import (
    AGENT_NOT_FOUND,
    INTERNAL_ERROR,
    INVALID_CORRELATION_ID,
    INVALID_REQUEST,
    INVALID_SESSION_ID,
    MESSAGE_TOO_LARGE,
    RUN_NOT_FOUND,
    SESSION_NOT_FOUND,
    UNSUPPORTED_MEDIA_TYPE,
    RequestError,
    shown,
)
from ._logs import describe_exception, get_logger
from ._requests import (
    SESSION_ALIASES,
    RequestLimits,
    RunRequest,
    build_run_request,
    check_idempotency,
    is_correlation_id,
    parse_flag,
)
from ._session_id import AgentSessionId
from ._state import Receipt, utc_now
from ._transcript import TranscriptStore

_log = get_logger("durableagent.http")

_FIRST_POLL_SECONDS = 0.005
_MAX_POLL_SECONDS = 0.25
# After the entity said it finished a run in this process, the first look waits only for the loop to
# run what is already queued: on the local host that is the commit, which follows the operation's
# result through the same loop. A timer would cost more: the loop waits for timers in whole
# milliseconds (epoll), so even a 0.3 ms one that falls just after the commit sleeps a millisecond
# (turn p50 7.0 -> 5.9 ms). A look that finds the run uncommitted (1 in 10 here, most in Azure, where
# the host commits later) looks again after this, backing off.
_AFTER_WAKE_SECONDS = 0.0003
# A waiter watching for its entity's word first looks this long after signalling if no word came
# (the run went to another instance, or waits behind others): every earlier look would find nothing.
_UNWOKEN_FIRST_LOOK_SECONDS = 0.05
# How long after acceptance an unknown run is reported as pending (202) rather than unknown (404).
_PENDING_WINDOW_SECONDS = 3600.0
MAX_PAGE_SIZE = 200
_MAX_KEY_PARAM = 256
_INTEGER = re.compile(r"^\s*[+-]?[0-9]{1,9}\s*\Z")


@dataclass(frozen=True)
class AgentInfo:
    """What the HTTP layer needs to know about a registered agent."""

    name: str
    agent_type: str


@dataclass
class HttpSettings:
    limits: RequestLimits
    wait_timeout_seconds: float
    transcripts: Callable[[], TranscriptStore]
    agents: Callable[[], dict[str, AgentInfo]]
    workflows: Callable[[], list[dict[str, Any]]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json", headers=headers or {})


def error_response(error: RequestError) -> func.HttpResponse:
    return json_response(error.body(), status=error.error.status)


class AgentHttpApi:
    """Handlers of the agent routes."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings

    def _agent(self, name: str) -> AgentInfo:
        info = self.settings.agents().get(name.lower())
        if info is None:
            raise RequestError(AGENT_NOT_FOUND, f"No agent named '{shown(name)}' is registered.")
        return info

    # POST agents/{name}/run ---------------------------------------------------------------------

    async def run(
        self, req: func.HttpRequest, client: df.DurableOrchestrationClient, agent_name: str | None = None
    ) -> func.HttpResponse:
        try:
            return await self._run(req, client, agent_name or req.route_params["name"])
        except RequestError as exc:
            return error_response(exc)
        except Exception as exc:
            _log.error("Agent run request failed: %s", describe_exception(exc))
            return error_response(RequestError(INTERNAL_ERROR, "The request could not be processed."))

    async def _run(
        self, req: func.HttpRequest, client: df.DurableOrchestrationClient, agent_name: str
    ) -> func.HttpResponse:
        agent = self._agent(agent_name)
        limits = self.settings.limits
        raw = req.get_body() or b""
        if len(raw) > limits.max_message_bytes + 65_536:
            raise RequestError(
                MESSAGE_TOO_LARGE,
                f"The body is larger than allowed ({limits.max_message_bytes} bytes of message).",
                limit=limits.max_message_bytes,
            )
        body = _body(req, raw, limits.max_message_bytes + 65_536)
        wait = parse_flag(req.headers.get("x-ms-wait-for-response"), "x-ms-wait-for-response")
        if wait is None:
            wait = parse_flag(req.params.get("wait_for_response"), "wait_for_response")
        session_query = next((req.params[k] for k in SESSION_ALIASES if req.params.get(k)), None)
        request = build_run_request(
            agent.name,
            body,
            limits,
            session_override=session_query,
            correlation_header=req.headers.get("idempotency-key"),
            wait_override=wait,
        )
        entity_id = request.session.to_entity_id()
        if request.correlation_supplied:
            # Only a caller's id can have run before (ours are new): answer a retry without signalling.
            state = await _read_state(client, entity_id)
            receipt = _receipt(state, request.correlation_id)
            if receipt is None and state is not None:
                # A caller's id may belong to a run whose receipt left the state: one read settles it.
                receipt = await self._stored_receipt(request.session, request.correlation_id)
            if receipt is not None:
                check_idempotency(receipt.request_hash or None, request)
                return await self._outcome(request, receipt)
        if request.wait_for_response is False:
            await client.signal_entity(entity_id, RUN_AGENT, request.to_operation_input())
            return self._accepted(req, request)
        timeout = min(request.timeout_seconds or self.settings.wait_timeout_seconds, self.settings.wait_timeout_seconds)
        # Watch before signalling: the entity may finish before the first look.
        with _wakeups.watch(waiter_key(request.session), request.correlation_id) as woken:
            await client.signal_entity(entity_id, RUN_AGENT, request.to_operation_input())
            receipt = await self.wait_for_receipt(client, request.session, request.correlation_id, timeout, woken)
        if receipt is None:
            return self._accepted(req, request)
        check_idempotency(receipt.request_hash or None, request)
        return await self._outcome(request, receipt)

    async def find_receipt(
        self, client: df.DurableOrchestrationClient, session: AgentSessionId, correlation_id: str
    ) -> Receipt | None:
        """The recorded outcome of a run, if the session has one (in its state, or moved to storage)."""
        state = await _read_state(client, session.to_entity_id())
        if state is None:
            return None
        return _receipt(state, correlation_id) or await self._stored_receipt(session, correlation_id)

    async def _stored_receipt(self, session: AgentSessionId, correlation_id: str) -> Receipt | None:
        stored = await asyncio.to_thread(self.settings.transcripts().read_receipt, session, correlation_id)
        return Receipt.from_dict(stored) if stored is not None else None

    async def wait_for_receipt(
        self,
        client: df.DurableOrchestrationClient,
        session: AgentSessionId,
        correlation_id: str,
        timeout: float,
        woken: asyncio.Event | None = None,
    ) -> Receipt | None:
        """Read the state until the run's receipt shows: at once, then backing off.

        ``woken`` (from ``_wakeups.watch``, entered before the signal) is set when the entity finished
        the run in this process. With it, the first look waits for that word (or, without it, for
        ``_UNWOKEN_FIRST_LOOK_SECONDS``), and after it comes shortly, as the host commits the state
        just after the operation.
        """
        deadline = time.monotonic() + timeout
        delay = _FIRST_POLL_SECONDS
        entity_id = session.to_entity_id()
        since = utc_now()
        if woken is not None:
            # Just signalled: the run cannot be in the state yet. In this process the entity says when
            # it is; only a run on another instance leaves it unsaid, and that wait starts polling later.
            if await _wakeups.pause(woken, min(_UNWOKEN_FIRST_LOOK_SECONDS, timeout)):
                woken.clear()  # spent: a later word (a redelivery) may wake the wait again
                await asyncio.sleep(0)  # one turn of the loop: see _AFTER_WAKE_SECONDS
                delay = _AFTER_WAKE_SECONDS
            else:
                # Queued behind other runs, or elsewhere: poll from here on (a word still cuts a pause short).
                delay = _UNWOKEN_FIRST_LOOK_SECONDS
        while True:
            state = await _read_state(client, entity_id)
            receipt = _receipt(state, correlation_id)
            if receipt is None and _may_have_left(state, since):
                # Newer runs pushed it out of the state between two looks: it is in storage.
                receipt = await self._stored_receipt(session, correlation_id)
            if receipt is not None or time.monotonic() >= deadline:
                return receipt
            if not await _wakeups.pause(woken, min(delay, max(0.0, deadline - time.monotonic()))) or woken is None:
                delay = min(delay * 2, _MAX_POLL_SECONDS)
                continue
            # The operation returned and the host commits its state right after: look again soon,
            # backing off from there.
            woken.clear()
            await asyncio.sleep(0)  # one turn of the loop: see _AFTER_WAKE_SECONDS
            delay = _AFTER_WAKE_SECONDS

    def _accepted(self, req: func.HttpRequest, request: RunRequest) -> func.HttpResponse:
        url = _run_url(req, request.session, request.correlation_id)
        body = {
            "status": "accepted",
            "message": request.message,
            **session_fields(request.session),
            "correlationId": request.correlation_id,
            "statusQueryGetUri": url,
        }
        return json_response(body, status=202, headers={"Location": url, "Retry-After": "1"})

    async def _outcome(self, request: RunRequest, receipt: Receipt) -> func.HttpResponse:
        return await self.receipt_response(request.session, receipt, message=request.message)

    async def receipt_response(
        self, session: AgentSessionId, receipt: Receipt, message: str | None = None
    ) -> func.HttpResponse:
        base: dict[str, Any] = {**session_fields(session), "correlationId": receipt.correlation_id}
        if message is not None:
            base["message"] = message
        if receipt.status != "success":
            error = receipt.error or {"code": "agent_run_failed", "message": "The agent run failed."}
            status = 503 if error.get("code") == "model_rate_limited" else 502
            return json_response({**base, "status": "failed", "error": error}, status=status)
        response = await self._response_value(session, receipt)
        body = {
            **base,
            "response": response,
            "status": "success",
            "message_count": receipt.message_count,
        }
        if receipt.usage:
            body["usage"] = receipt.usage
        return json_response(body)

    async def _response_value(self, session: AgentSessionId, receipt: Receipt) -> Any:
        if receipt.text is not None and not receipt.text_truncated:
            return json.loads(receipt.text) if receipt.structured else receipt.text
        record = await asyncio.to_thread(self.settings.transcripts().read_turn, session, int(receipt.turn or 0))
        if record is None:
            return None
        return record.get("value") if receipt.structured else record.get("text")

    # GET agents/{name}/{sessionId}/runs/{correlationId} ---------------------------------------

    async def run_result(
        self, req: func.HttpRequest, client: df.DurableOrchestrationClient, agent_name: str | None = None
    ) -> func.HttpResponse:
        try:
            agent = self._agent(agent_name or req.route_params["name"])
            session = _parse_session(agent.name, req.route_params["sessionId"])
            correlation_id = req.route_params["correlationId"]
            if not is_correlation_id(correlation_id):
                raise RequestError(
                    INVALID_CORRELATION_ID,
                    "A correlation id is 1-128 letters, digits and . _ : - starting with a letter or digit.",
                )
            receipt = await self.find_receipt(client, session, correlation_id)
            if receipt is not None:
                return await self.receipt_response(session, receipt)
            accepted = _float(req.params.get("accepted"))
            if accepted is not None and 0 <= time.time() - accepted <= _PENDING_WINDOW_SECONDS:
                url = _run_url(req, session, correlation_id)
                return json_response(
                    {"status": "pending", **session_fields(session), "correlationId": correlation_id},
                    status=202,
                    headers={"Location": url, "Retry-After": "1"},
                )
            raise RequestError(RUN_NOT_FOUND, f"No run '{correlation_id}' is known for this session.")
        except RequestError as exc:
            return error_response(exc)
        except Exception as exc:
            _log.error("Agent API request failed: %s", describe_exception(exc))
            return error_response(RequestError(INTERNAL_ERROR, "The request could not be processed."))

    # GET agents/{name}/{sessionId} ----------------------------------------------------------------

    async def get_session(
        self, req: func.HttpRequest, client: df.DurableOrchestrationClient, agent_name: str | None = None
    ) -> func.HttpResponse:
        try:
            agent = self._agent(agent_name or req.route_params["name"])
            session = _parse_session(agent.name, req.route_params["sessionId"])
            state = await _read_state(client, session.to_entity_id())
            if state is None:
                raise RequestError(SESSION_NOT_FOUND, f"Session '{session}' does not exist.")
            turns = int(state.get("turns", 0))
            cursor = _int_param(req, "cursor", 0, 0, max(turns, 0))
            # The whole conversation unless the caller pages (the product description's GET has no limit).
            size = _int_param(req, "page_size", 0, 1, MAX_PAGE_SIZE) or max(turns - cursor, 0)
            store = self.settings.transcripts()
            records = await asyncio.to_thread(store.read_turns, session, cursor, min(size, turns - cursor))
            last = state.get("lastResponseTurn")
            last_record = (
                records[-1]
                if records and records[-1].get("turn") == last
                else (await asyncio.to_thread(store.read_turn, session, int(last)) if last is not None else None)
            )
            next_cursor = cursor + size if size and cursor + size < turns else None
            body = {
                **conversation(
                    records,
                    message_count=int(state.get("messageCount", 0)),
                    last_response=last_record.get("text") if last_record else None,
                    agent_type=agent.agent_type,
                ),
                **session_fields(session),
                "turn_count": turns,
                "page": {"cursor": cursor, "page_size": size, "next_cursor": next_cursor},
            }
            return json_response(body)
        except RequestError as exc:
            return error_response(exc)
        except Exception as exc:
            _log.error("Agent API request failed: %s", describe_exception(exc))
            return error_response(RequestError(INTERNAL_ERROR, "The request could not be processed."))

    # DELETE agents/{name}/{sessionId} --------------------------------------------------------------

    async def delete_session(
        self, req: func.HttpRequest, client: df.DurableOrchestrationClient, agent_name: str | None = None
    ) -> func.HttpResponse:
        try:
            agent = self._agent(agent_name or req.route_params["name"])
            session = _parse_session(agent.name, req.route_params["sessionId"])
            entity_id = session.to_entity_id()
            if await _read_state(client, entity_id) is None:
                raise RequestError(SESSION_NOT_FOUND, f"Session '{session}' does not exist.")
            await client.signal_entity(entity_id, DELETE)
            deadline = time.monotonic() + self.settings.wait_timeout_seconds
            delay = _FIRST_POLL_SECONDS
            while time.monotonic() < deadline:
                if await _read_state(client, entity_id) is None:
                    return json_response({"status": "deleted", **session_fields(session)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_POLL_SECONDS)
            return json_response({"status": "deleting", **session_fields(session)}, status=202)
        except RequestError as exc:
            return error_response(exc)
        except Exception as exc:
            _log.error("Agent API request failed: %s", describe_exception(exc))
            return error_response(RequestError(INTERNAL_ERROR, "The request could not be processed."))

    # agents/{name}/... of no agent ------------------------------------------------------------------

    async def unknown_agent(self, req: func.HttpRequest) -> func.HttpResponse:
        """What the shared ``agents/{name}/...`` routes answer: each agent has routes of its own, which
        the host prefers (literal segments win), so only a name no agent serves gets here."""
        name = req.route_params.get("name", "")
        return error_response(RequestError(AGENT_NOT_FOUND, f"No agent named '{shown(name)}' is registered."))

    # GET health ----------------------------------------------------------------------------------

    async def health(self, req: func.HttpRequest) -> func.HttpResponse:
        agents = [{"name": a.name, "type": a.agent_type} for a in self.settings.agents().values()]
        workflows = self.settings.workflows()
        return json_response(
            {
                "status": "healthy",
                "agents": agents,
                "agent_count": len(agents),
                "workflows": workflows,
                "workflow_count": len(workflows),
            }
        )


def _body(req: func.HttpRequest, raw: bytes, max_bytes: int) -> dict[str, Any]:
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return parse_json_object(raw, max_bytes=max_bytes)
    if content_type in ("", "text/plain"):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(INVALID_REQUEST, "A text/plain body must be UTF-8.") from exc
        return {"message": text.strip()}
    raise RequestError(
        UNSUPPORTED_MEDIA_TYPE,
        f"Content type '{shown(content_type)}' is not supported; send application/json or text/plain.",
    )


def _parse_session(agent_name: str, text: str) -> AgentSessionId:
    try:
        return AgentSessionId.parse(text, agent_name)
    except ValueError as exc:
        raise RequestError(INVALID_SESSION_ID, f"Invalid session id: {exc}") from exc


async def _read_state(client: df.DurableOrchestrationClient, entity_id: df.EntityId) -> dict[str, Any] | None:
    result = await client.read_entity_state(entity_id)
    if not result.entity_exists:
        return None
    state = result.entity_state
    if isinstance(state, str):
        # An entity that exists with no state (e.g. mid-delete) is no session.
        state = json.loads(state) if state.strip() else None
    return state if isinstance(state, dict) else None


def _may_have_left(state: dict[str, Any] | None, since: str) -> bool:
    """Whether a receipt recorded after ``since`` could have left the state: all it keeps is newer."""
    receipts = (state or {}).get("receipts") or []
    return bool(receipts) and str(receipts[0].get("at", "")) > since


def _receipt(state: dict[str, Any] | None, correlation_id: str) -> Receipt | None:
    if not state:
        return None
    for item in state.get("receipts", []):
        if item.get("correlation_id") == correlation_id:
            return Receipt.from_dict(item)
    return None


def api_base(req: func.HttpRequest, marker: str) -> str:
    """Scheme, host and route prefix of ``req``: the part of its URL before ``marker`` (e.g. ``/agents/``)."""
    parts = urlsplit(req.url)
    path = parts.path
    prefix = path[: path.lower().find(marker)] if marker in path.lower() else ""
    return f"{parts.scheme}://{parts.netloc}{prefix}"


def key_param(req: func.HttpRequest) -> str:
    """``code=<key>`` when the caller gave its key as ``?code=``, else ``""``.

    Passing it on makes URLs we hand out work where keys are required (a header key is not copied:
    it would end up in URLs and logs the caller did not choose).
    """
    code = req.params.get("code") or ""
    # Only a plausible key is passed on: a long or odd one would only grow the URLs and headers we send.
    if not code or len(code) > _MAX_KEY_PARAM or not code.isprintable():
        return ""
    return f"code={quote(code, safe='')}"


def _run_url(req: func.HttpRequest, session: AgentSessionId, correlation_id: str) -> str:
    code = key_param(req)
    return (
        f"{api_base(req, '/agents/')}/agents/{quote(session.name, safe='')}/{quote(session.key, safe='')}"
        f"/runs/{quote(correlation_id, safe='')}"
        f"?accepted={int(time.time())}{'&' + code if code else ''}"
    )


def session_fields(session: AgentSessionId) -> dict[str, str]:
    """``sessionId``: the caller's key, as sent; ``agentSessionId``: the ``@name@key`` form."""
    return {"sessionId": session.key, "agentSessionId": str(session)}


def _int_param(req: func.HttpRequest, name: str, default: int, low: int, high: int) -> int:
    text = req.params.get(name)
    if text is None:
        return default
    try:
        if not _INTEGER.match(text):
            raise ValueError(name)  # int() would take '1_000', other scripts' digits and 4,000-digit numbers
        value = int(text)
    except ValueError as exc:
        raise RequestError(INVALID_REQUEST, f"'{name}' must be an integer.", field=name) from exc
    if not low <= value <= max(low, high):
        raise RequestError(INVALID_REQUEST, f"'{name}' must be between {low} and {max(low, high)}.", field=name)
    return value


def _float(text: str | None) -> float | None:
    if text is None or len(text) > 32:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
