"""HTTP front of the management API: parse, call ``ManagementService``, map results and errors.

Served twice: under ``/durabletask/`` (the local RPC endpoint the Python SDK's client calls) and
under ``/runtime/webhooks/durabletask/`` (the public webhook URLs the check-status payload names).

Every caller-supplied value is bounded before it reaches the service (README, "The local host"): a
value out of bounds is a 400 with the extension's error fields and the host's ``error.code``. Where
the extension's HttpApiHandler silently ignores a value it cannot parse (``TryParse`` of ``top``,
dates, flags, ``timeout``), the local host refuses it instead, so a typo is not mistaken for a filter.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ._http_errors import BODY_TOO_LARGE, error_body
from ._management import (
    Gone,
    ManagementError,
    ManagementService,
    NotFound,
    StatusOptions,
    check_instance_id,
    check_name,
    has_control_or_surrogate,
    parse_query_time,
    parse_statuses,
)
from ._store import InstanceQuery

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_CONTINUATION_TOKEN_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_PAGE_SIZE",
    "MAX_REASON_LENGTH",
    "MAX_WAIT_SECONDS",
    "ManagementApi",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Bounds (README "The local host"). 16 MiB: four times the library's largest workflow input. 64 levels:
# Newtonsoft.Json's default MaxDepth, which the extension's JsonConvert calls run with.
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_PAGE_SIZE = 1000
MAX_CONTINUATION_TOKEN_LENGTH = 1024
MAX_REASON_LENGTH = 4096
MAX_WAIT_SECONDS = 3600.0
_MAX_TIME_TEXT = 64
_MAX_STATUS_TEXT = 256
# Python 3.11+ refuses longer integer literals itself (sys.get_int_max_str_digits); 3.10 parses any length.
_MAX_INT_DIGITS = 4300

_JSON_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "utf-16"})
# A JSON string (escapes included) or a bracket: what the depth check has to see, found by the regex
# engine rather than a Python loop over every character.
_JSON_NESTING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)
_TOKEN_TEXT = re.compile(r"^[A-Za-z0-9_-]+$")
_INTEGER = re.compile(r"^\s*\+?[0-9]{1,10}\s*$")


def _bad_query(name: str, expected: str) -> ManagementError:
    return ManagementError(400, f"The query parameter '{name}' must be {expected}.", code="invalid_query_parameter")


def _flag(request: web.Request, name: str, default: bool) -> bool:
    # The SDK sends True/False; .NET bool.TryParse is case-insensitive and ignores surrounding spaces.
    value = request.query.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise _bad_query(name, "true or false")
    return lowered == "true"


def _text_query(request: web.Request, name: str, max_length: int) -> str | None:
    """A free-text query value (``reason``): bounded, and encodable (no lone surrogates or NUL)."""
    value = request.query.get(name)
    if value is None:
        return None
    if len(value) > max_length or "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise _bad_query(name, f"at most {max_length} characters of text")
    return value


def _seconds(request: web.Request, name: str, default: float | None = None) -> float | None:
    value = request.query.get(name)
    if value is None:
        return default
    try:
        seconds = float(value) if len(value) <= 32 else math.nan
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_WAIT_SECONDS:  # NaN fails this too
        raise _bad_query(name, f"a number of seconds from 0 to {MAX_WAIT_SECONDS:g}")
    return seconds


def _page_size(request: web.Request) -> int | None:
    text = request.query.get("top")
    if not text:
        return None
    if not _INTEGER.match(text) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise _bad_query("top", f"an integer from 1 to {MAX_PAGE_SIZE}")
    return int(text)


def encode_continuation(instance_id: str) -> str:
    """The opaque continuation token for a page ending at ``instance_id``."""
    return base64.urlsafe_b64encode(instance_id.encode("utf-8")).decode("ascii").rstrip("=")


def decode_continuation(token: str) -> str:
    """The instance id a token of :func:`encode_continuation` stands for; a 400 for anything else."""
    invalid = ManagementError(
        400, "The x-ms-continuation-token header is not a token this API returned.", code="invalid_continuation_token"
    )
    if len(token) > MAX_CONTINUATION_TOKEN_LENGTH or not _TOKEN_TEXT.match(token):
        raise invalid
    try:
        after = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise invalid from exc
    if not after or has_control_or_surrogate(after):
        raise invalid
    return after


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def _not_found(what: str) -> web.Response:
    # The extension answers an empty 404; the host adds its error object (README, "The local host").
    message = "No entity with this id has state." if what == "entity" else "No instance with this id exists."
    return _json(error_body(f"{what}_not_found", message), status=404)


async def _read_body(request: web.Request) -> bytes:
    """The body, at most ``MAX_BODY_BYTES`` (refused before reading when Content-Length says more)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _body_too_large()
    body = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _body_too_large()
    return bytes(body)


def _body_too_large() -> ManagementError:
    return ManagementError(
        413,
        f"The request body is larger than the management API accepts ({MAX_BODY_BYTES} bytes).",
        code=BODY_TOO_LARGE,
    )


async def _body_text(request: web.Request) -> str:
    """The body decoded as .NET's ReadAsStringAsync would (charset, else UTF-8; a BOM dropped)."""
    raw = await _read_body(request)
    charset = (request.charset or "utf-8").lower()
    if charset not in _JSON_CHARSETS:
        raise ManagementError(
            400, "The request body's charset is not supported; use UTF-8.", code="unsupported_charset"
        )
    try:
        text = raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise ManagementError(400, f"The request body is not valid {charset}.", code="invalid_encoding") from exc
    return text.removeprefix("\ufeff")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError("integer literal too long")
    return int(text)


def parse_json_token(text: str) -> str:
    """``text`` (a JSON document) as compact JSON, the way the extension re-serializes its token.

    Raises:
        ManagementError: 400 for invalid JSON, nesting deeper than ``MAX_JSON_DEPTH`` or strings that are
            not Unicode (lone surrogates).
    """
    depth = 0
    for match in _JSON_NESTING.finditer(text):
        bracket = match.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ManagementError(
                    400,
                    f"Invalid JSON content: nested deeper than {MAX_JSON_DEPTH} levels.",
                    code="json_too_deep",
                )
        elif bracket in ("]", "}"):
            depth -= 1
    try:
        token = json.loads(text, parse_int=_bounded_int)
        # Strings holding lone surrogates (from \ud800 escapes) cannot be stored or sent on as UTF-8.
        json.dumps(token, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise ManagementError(400, "Invalid JSON content.", code="invalid_json") from exc
    return json.dumps(token, separators=(",", ":"))


async def _body_token_json(request: web.Request) -> str | None:
    """The request body as compact JSON text of its token, the way the extension re-serializes it."""
    text = await _body_text(request)
    if not text.strip():
        return None
    return parse_json_token(text)


class ManagementApi:
    """Builds the aiohttp routes for the management API."""

    def __init__(self, service: ManagementService, public_base: Callable[[web.Request], str], task_hub: str) -> None:
        self._service = service
        self._public_base = public_base
        self._task_hub = task_hub

    def routes(
        self,
        prefix: str,
        authorize: Callable[[web.Request], bool] | None = None,
        unauthorized: Callable[[], web.StreamResponse] | None = None,
    ) -> list[web.RouteDef]:
        """The API's routes under ``prefix``; ``authorize`` (if given) gates each, answering
        ``unauthorized()`` (an empty 401 if not given) when it refuses."""
        p = prefix.rstrip("/")

        def wrap(handler: Handler) -> Handler:
            checked = self._errors(handler)
            if authorize is None:
                return checked

            async def gated(request: web.Request) -> web.StreamResponse:
                if not authorize(request):
                    return unauthorized() if unauthorized is not None else web.Response(status=401)
                return await checked(request)

            return gated

        return [
            web.post(p + "/orchestrators/{name}", wrap(self.start)),
            web.post(p + "/orchestrators/{name}/{instance_id}", wrap(self.start)),
            web.get(p + "/instances", wrap(self.query)),
            web.get(p + "/instances/", wrap(self.query)),
            web.delete(p + "/instances", wrap(self.purge_by)),
            web.delete(p + "/instances/", wrap(self.purge_by)),
            web.get(p + "/instances/{instance_id}", wrap(self.status)),
            web.delete(p + "/instances/{instance_id}", wrap(self.purge)),
            web.post(p + "/instances/{instance_id}/raiseEvent/{event}", wrap(self.raise_event)),
            web.post(p + "/instances/{instance_id}/terminate", wrap(self.terminate)),
            web.post(p + "/instances/{instance_id}/suspend", wrap(self.suspend)),
            web.post(p + "/instances/{instance_id}/resume", wrap(self.resume)),
            web.post(p + "/instances/{instance_id}/restart", wrap(self.restart)),
            web.post(p + "/instances/{instance_id}/rewind", wrap(self.rewind)),
            web.get(p + "/entities/{name}", wrap(self.list_entities)),
            web.get(p + "/entities/{name}/{key}", wrap(self.read_entity)),
            web.post(p + "/entities/{name}/{key}", wrap(self.signal_entity)),
            web.delete(p + "/entities/{name}/{key}", wrap(self.delete_entity)),
        ]

    @staticmethod
    def _errors(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ManagementError as exc:
                return _json(exc.body(), status=exc.status)
            except NotFound as exc:
                return _not_found(exc.what)
            except Gone:
                message = "The instance has completed, failed or been terminated: the operation no longer applies."
                return _json(error_body("instance_not_running", message), status=410)

        return wrapped

    # Check-status payload --------------------------------------------------------------------------

    def check_status_urls(self, request: web.Request, instance_id: str) -> dict[str, str]:
        base = f"{self._public_base(request)}/instances/{quote(instance_id, safe='')}"
        query = f"taskHub={self._task_hub}&connection=Storage"
        return {
            "id": instance_id,
            "purgeHistoryDeleteUri": f"{base}?{query}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{query}",
            "statusQueryGetUri": f"{base}?{query}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{query}",
            "restartPostUri": f"{base}/restart?{query}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{query}",
        }

    def _accepted(self, request: web.Request, instance_id: str) -> web.Response:
        urls = self.check_status_urls(request, instance_id)
        return _json(urls, status=202, headers={"Location": urls["statusQueryGetUri"], "Retry-After": "10"})

    @staticmethod
    def _instance_id(request: web.Request) -> str:
        return check_instance_id(request.match_info["instance_id"])

    # Orchestrations --------------------------------------------------------------------------------

    async def start(self, request: web.Request) -> web.StreamResponse:
        name = check_name(request.match_info["name"], "orchestrator function name", code="orchestrator_not_found")
        version = request.query.get("version")
        if version is not None:
            check_name(version, "version", code="invalid_query_parameter")
        # Bounds on the wait are checked before anything is started.
        wait_seconds = _seconds(request, "timeout")
        interval = _seconds(request, "pollingInterval", 1.0)
        input_json = await _body_token_json(request)
        instance_id = self._service.start(name, request.match_info.get("instance_id"), input_json, version)
        if wait_seconds is None:
            return self._accepted(request, instance_id)
        assert interval is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            record = self._service.get_instance(instance_id)
            if record.status.is_terminal:
                return _json(self._service.status_body(record, StatusOptions())["output"])
            if loop.time() >= deadline:
                return self._accepted(request, instance_id)
            await asyncio.sleep(max(0.01, min(interval, deadline - loop.time())))

    async def status(self, request: web.Request) -> web.StreamResponse:
        instance_id = self._instance_id(request)
        options = StatusOptions(
            show_history=_flag(request, "showHistory", False),
            show_history_output=_flag(request, "showHistoryOutput", False),
            show_input=_flag(request, "showInput", True),
        )
        failed_500 = _flag(request, "returnInternalServerErrorOnFailure", False)
        record = self._service.get_instance(instance_id)
        body = self._service.status_body(record, options)
        if record.status.is_terminal:
            code = 500 if failed_500 and record.status.name == "Failed" else 200
            return _json(body, status=code)
        location = self.check_status_urls(request, instance_id)["statusQueryGetUri"]
        return _json(body, status=202, headers={"Location": location, "Retry-After": "5"})

    def _query_filters(self, request: web.Request) -> InstanceQuery:
        query = InstanceQuery()
        for name in ("createdTimeFrom", "createdTimeTo"):
            text = request.query.get(name)
            if text is None:
                continue
            try:
                if len(text) > _MAX_TIME_TEXT:
                    raise ValueError(text)
                moment = parse_query_time(text)
            except ValueError as exc:
                raise _bad_query(name, "an ISO 8601 date and time") from exc
            if name == "createdTimeFrom":
                query.created_from = moment
            else:
                query.created_to = moment
        statuses = request.query.get("runtimeStatus")
        if statuses:
            if len(statuses) > _MAX_STATUS_TEXT:
                raise _bad_query("runtimeStatus", "a comma-separated list of runtime statuses")
            query.statuses = parse_statuses(statuses)
        prefix = request.query.get("instanceIdPrefix")
        if prefix:
            check_name(prefix, "instanceIdPrefix", code="invalid_query_parameter")
        query.prefix = prefix or None
        return query

    async def query(self, request: web.Request) -> web.StreamResponse:
        top = _page_size(request)
        # aiohttp hands undecodable header bytes on as lone surrogates: the token check refuses them.
        token_text = request.headers.get("x-ms-continuation-token") or None
        continuation = decode_continuation(token_text) if token_text is not None else None
        options = StatusOptions(
            show_history=_flag(request, "showHistory", False),
            show_history_output=_flag(request, "showHistoryOutput", False),
            show_input=_flag(request, "showInput", False),
        )
        items, last = self._service.query(self._query_filters(request), top, continuation, options)
        headers = {"x-ms-continuation-token": encode_continuation(last)} if last else None
        return _json(items, headers=headers)

    async def purge(self, request: web.Request) -> web.StreamResponse:
        if self._service.purge(self._instance_id(request)) == 0:
            return _not_found("instance")
        return _json({"instancesDeleted": 1})

    async def purge_by(self, request: web.Request) -> web.StreamResponse:
        if "createdTimeFrom" not in request.query:
            raise ManagementError(
                400, "A createdTimeFrom query parameter is required to purge history.", code="invalid_query_parameter"
            )
        deleted = self._service.purge_by(self._query_filters(request))
        if deleted == 0:
            return _not_found("instance")
        return _json({"instancesDeleted": deleted})

    async def raise_event(self, request: web.Request) -> web.StreamResponse:
        instance_id = self._instance_id(request)
        event = check_name(request.match_info["event"], "event name", code="invalid_event_name")
        # The extension answers 404/410 for the instance before it looks at the body.
        record = self._service.get_instance(instance_id)
        if record.status.is_terminal:
            raise Gone(instance_id)
        if request.content_type != "application/json":
            raise ManagementError(
                400, "Only application/json request content is supported", code="unsupported_media_type"
            )
        input_json = await _body_token_json(request)
        self._service.raise_event(instance_id, event, input_json)
        return web.Response(status=202)

    async def terminate(self, request: web.Request) -> web.StreamResponse:
        instance_id = self._instance_id(request)
        self._service.terminate(instance_id, _text_query(request, "reason", MAX_REASON_LENGTH))
        return web.Response(status=202)

    async def suspend(self, request: web.Request) -> web.StreamResponse:
        instance_id = self._instance_id(request)
        self._service.suspend(instance_id, _text_query(request, "reason", MAX_REASON_LENGTH))
        return web.Response(status=202)

    async def resume(self, request: web.Request) -> web.StreamResponse:
        instance_id = self._instance_id(request)
        self._service.resume(instance_id, _text_query(request, "reason", MAX_REASON_LENGTH))
        return web.Response(status=202)

    async def restart(self, request: web.Request) -> web.StreamResponse:
        instance_id = self._instance_id(request)
        new_id = _flag(request, "restartWithNewInstanceId", True)
        return self._accepted(request, self._service.restart(instance_id, new_id))

    async def rewind(self, request: web.Request) -> web.StreamResponse:
        record = self._service.get_instance(self._instance_id(request))
        _text_query(request, "reason", MAX_REASON_LENGTH)
        if record.status.name in ("Completed", "Terminated", "Canceled"):
            # HandleRewindInstanceRequestAsync: 410 for these before it tries to rewind.
            raise Gone(record.instance_id)
        raise ManagementError(
            501, "Rewind is not supported by the local host.", "System.NotSupportedException", code="not_supported"
        )

    # Entities --------------------------------------------------------------------------------------

    @staticmethod
    def _entity(request: web.Request) -> tuple[str, str]:
        key = request.match_info["key"]
        # "$" stands for the empty key (HttpApiHandler.EmptyEntityKeySymbol).
        return request.match_info["name"], "" if key == "$" else key

    async def signal_entity(self, request: web.Request) -> web.StreamResponse:
        operation = request.query.get("op")
        if not operation:
            raise ManagementError(400, "The 'op' query parameter is required.", code="invalid_operation")
        name, key = self._entity(request)
        if request.content_type == "application/json":
            input_json = await _body_token_json(request)
        else:
            text = await _body_text(request)
            # Any other media type is the operation input as a string (RequestMessage.SetInput serializes it).
            input_json = json.dumps(text) if text else None
        self._service.signal_entity(name, key, operation, input_json)
        return web.Response(status=202)

    async def delete_entity(self, request: web.Request) -> web.StreamResponse:
        name, key = self._entity(request)
        self._service.signal_entity(name, key, "delete", None)
        return web.Response(status=202)

    async def read_entity(self, request: web.Request) -> web.StreamResponse:
        name, key = self._entity(request)
        state = self._service.read_entity(name, key)
        return web.Response(status=200, text=state, content_type="application/json")

    async def list_entities(self, request: web.Request) -> web.StreamResponse:
        name = check_name(request.match_info["name"], "entity name", code="invalid_entity_id")
        items = self._service.list_entities(name, _flag(request, "fetchState", False))
        return _json(items)
