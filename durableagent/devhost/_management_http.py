"""HTTP front of the management API: parse, call ``ManagementService``, map results and errors.

Served twice: under ``/durabletask/`` (the local RPC endpoint the Python SDK's client calls) and
under ``/runtime/webhooks/durabletask/`` (the public webhook URLs the check-status payload names).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ._management import (
    Gone,
    ManagementError,
    ManagementService,
    NotFound,
    StatusOptions,
    parse_query_time,
    parse_statuses,
)
from ._store import InstanceQuery

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _flag(request: web.Request, name: str, default: bool) -> bool:
    # The SDK sends True/False; .NET bool.TryParse is case-insensitive.
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() == "true"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


async def _body_token_json(request: web.Request) -> str | None:
    """The request body as compact JSON text of its token, the way the extension re-serializes it."""
    text = await request.text()
    if not text.strip():
        return None
    try:
        token = json.loads(text)
    except ValueError as exc:
        raise ManagementError(400, f"The request body is not valid JSON: {exc}") from exc
    return json.dumps(token, separators=(",", ":"))


class ManagementApi:
    """Builds the aiohttp routes for the management API."""

    def __init__(self, service: ManagementService, public_base: Callable[[web.Request], str], task_hub: str) -> None:
        self._service = service
        self._public_base = public_base
        self._task_hub = task_hub

    def routes(self, prefix: str, authorize: Callable[[web.Request], bool] | None = None) -> list[web.RouteDef]:
        """The API's routes under ``prefix``; ``authorize`` (if given) gates each with a 401."""
        p = prefix.rstrip("/")

        def wrap(handler: Handler) -> Handler:
            checked = self._errors(handler)
            if authorize is None:
                return checked

            async def gated(request: web.Request) -> web.StreamResponse:
                if not authorize(request):
                    return web.Response(status=401)
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
            except NotFound:
                return web.Response(status=404)
            except Gone:
                return web.Response(status=410)

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

    # Orchestrations --------------------------------------------------------------------------------

    async def start(self, request: web.Request) -> web.StreamResponse:
        input_json = await _body_token_json(request)
        instance_id = self._service.start(
            request.match_info["name"],
            request.match_info.get("instance_id"),
            input_json,
            request.query.get("version"),
        )
        timeout = request.query.get("timeout")
        if timeout is None:
            return self._accepted(request, instance_id)
        try:
            wait_seconds = float(timeout)
            interval = float(request.query.get("pollingInterval", "1"))
        except ValueError as exc:
            raise ManagementError(400, "timeout and pollingInterval must be numbers of seconds") from exc
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
        instance_id = request.match_info["instance_id"]
        record = self._service.get_instance(instance_id)
        options = StatusOptions(
            show_history=_flag(request, "showHistory", False),
            show_history_output=_flag(request, "showHistoryOutput", False),
            show_input=_flag(request, "showInput", True),
        )
        body = self._service.status_body(record, options)
        if record.status.is_terminal:
            failed_500 = _flag(request, "returnInternalServerErrorOnFailure", False)
            code = 500 if failed_500 and record.status.name == "Failed" else 200
            return _json(body, status=code)
        location = self.check_status_urls(request, instance_id)["statusQueryGetUri"]
        return _json(body, status=202, headers={"Location": location, "Retry-After": "5"})

    def _query_filters(self, request: web.Request) -> InstanceQuery:
        query = InstanceQuery()
        try:
            if "createdTimeFrom" in request.query:
                query.created_from = parse_query_time(request.query["createdTimeFrom"])
            if "createdTimeTo" in request.query:
                query.created_to = parse_query_time(request.query["createdTimeTo"])
        except ValueError as exc:
            raise ManagementError(400, f"Invalid date: {exc}") from exc
        if request.query.get("runtimeStatus"):
            query.statuses = parse_statuses(request.query["runtimeStatus"])
        query.prefix = request.query.get("instanceIdPrefix") or None
        return query

    async def query(self, request: web.Request) -> web.StreamResponse:
        top_text = request.query.get("top")
        try:
            top = int(top_text) if top_text else None
        except ValueError as exc:
            raise ManagementError(400, "top must be an integer") from exc
        continuation = request.headers.get("x-ms-continuation-token") or None
        options = StatusOptions(
            show_history=_flag(request, "showHistory", False),
            show_history_output=_flag(request, "showHistoryOutput", False),
            show_input=_flag(request, "showInput", False),
        )
        items, token = self._service.query(self._query_filters(request), top, continuation, options)
        headers = {"x-ms-continuation-token": token} if token else None
        return _json(items, headers=headers)

    async def purge(self, request: web.Request) -> web.StreamResponse:
        if self._service.purge(request.match_info["instance_id"]) == 0:
            return web.Response(status=404)
        return _json({"instancesDeleted": 1})

    async def purge_by(self, request: web.Request) -> web.StreamResponse:
        if "createdTimeFrom" not in request.query:
            raise ManagementError(400, "A createdTimeFrom query parameter is required to purge history.")
        deleted = self._service.purge_by(self._query_filters(request))
        if deleted == 0:
            return web.Response(status=404)
        return _json({"instancesDeleted": deleted})

    async def raise_event(self, request: web.Request) -> web.StreamResponse:
        instance_id = request.match_info["instance_id"]
        # The extension answers 404/410 for the instance before it looks at the body.
        record = self._service.get_instance(instance_id)
        if record.status.is_terminal:
            raise Gone(instance_id)
        if request.content_type != "application/json":
            raise ManagementError(400, "Only application/json request content is supported")
        input_json = await _body_token_json(request)
        self._service.raise_event(instance_id, request.match_info["event"], input_json)
        return web.Response(status=202)

    async def terminate(self, request: web.Request) -> web.StreamResponse:
        self._service.terminate(request.match_info["instance_id"], request.query.get("reason"))
        return web.Response(status=202)

    async def suspend(self, request: web.Request) -> web.StreamResponse:
        self._service.suspend(request.match_info["instance_id"], request.query.get("reason"))
        return web.Response(status=202)

    async def resume(self, request: web.Request) -> web.StreamResponse:
        self._service.resume(request.match_info["instance_id"], request.query.get("reason"))
        return web.Response(status=202)

    async def restart(self, request: web.Request) -> web.StreamResponse:
        new_id = _flag(request, "restartWithNewInstanceId", True)
        instance_id = self._service.restart(request.match_info["instance_id"], new_id)
        return self._accepted(request, instance_id)

    async def rewind(self, request: web.Request) -> web.StreamResponse:
        self._service.get_instance(request.match_info["instance_id"])
        raise ManagementError(501, "Rewind is not supported by the local host.", "System.NotSupportedException")

    # Entities --------------------------------------------------------------------------------------

    async def signal_entity(self, request: web.Request) -> web.StreamResponse:
        operation = request.query.get("op")
        if not operation:
            raise ManagementError(400, "The 'op' query parameter is required.")
        if request.content_type == "application/json":
            input_json = await _body_token_json(request)
        else:
            text = await request.text()
            # Any other media type is the operation input as a string (RequestMessage.SetInput serializes it).
            input_json = json.dumps(text) if text else None
        key = request.match_info["key"]
        self._service.signal_entity(request.match_info["name"], "" if key == "$" else key, operation, input_json)
        return web.Response(status=202)

    async def delete_entity(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        self._service.signal_entity(request.match_info["name"], "" if key == "$" else key, "delete", None)
        return web.Response(status=202)

    async def read_entity(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        state = self._service.read_entity(request.match_info["name"], "" if key == "$" else key)
        return web.Response(status=200, text=state, content_type="application/json")

    async def list_entities(self, request: web.Request) -> web.StreamResponse:
        items = self._service.list_entities(request.match_info["name"], _flag(request, "fetchState", False))
        return _json(items)
