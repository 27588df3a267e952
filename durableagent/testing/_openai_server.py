"""A local OpenAI-compatible server for tests: the real ``openai`` client talks HTTP to it.

Serves ``POST /v1/chat/completions`` and ``POST /v1/responses`` (plain and streamed, tool calls,
usage, structured output as scripted JSON text; Responses conversations held server-side by
``previous_response_id``), plus ``GET``/``DELETE /v1/responses/{id}`` and ``GET /v1/models``.

It speaks Azure OpenAI too, with that service's api-version and auth rules (``_azure_wire``):
``POST /openai/deployments/{deployment}/chat/completions`` (the deployment stands for the model),
the v1 surface ``/openai/v1/chat/completions``, ``/openai/v1/responses[/{id}]`` and ``/openai/v1/models``,
and the dated Responses routes ``/openai/responses[/{id}]``.
Replies come from a script, else from a responder (default: echo the last user message). Every
model request is recorded with the context the model saw.

Control endpoints let a test in another process program and inspect it: ``POST /_script`` (a
JSON list of replies), ``DELETE /_script``, ``GET /_requests``, ``DELETE /_requests``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from aiohttp import web

from .._logs import get_logger
from . import _azure_wire as azure
from . import _openai_wire as wire
from ._replies import Reply, echo_reply

Responder = Callable[[dict[str, Any]], Reply]
"""Answers an unscripted model request: gets the request's JSON body, returns a ``Reply``."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AzureHandler = Callable[[web.Request, "azure.Surface | None"], Awaitable[web.StreamResponse]]

_log = get_logger("durableagent.testing")

_SECRET_HEADERS = frozenset({"authorization", "api-key", "openai-api-key"})


def echo_last_user_message(body: dict[str, Any]) -> Reply:
    """The default responder: ``"echo: <the request's last user message>"``."""
    return echo_reply(wire.last_user_text(body))


@dataclass(frozen=True)
class RecordedRequest:
    """One model request the fake server received.

    Attributes:
        path: The request path (``/v1/chat/completions``, ``/v1/responses`` or an Azure route such as
            ``/openai/deployments/{deployment}/chat/completions``).
        body: The parsed JSON body, as the client sent it.
        headers: The request headers, names in lower case, credentials redacted.
        context: What the model saw: the chat messages, or for the Responses API the turns held
            server-side (``previous_response_id``) followed by this request's input.
        status: The HTTP status the server answered with.
        query: The query parameters (Azure clients send ``api-version`` here).
    """

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    context: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    query: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> Literal["chat.completions", "responses"]:
        """Which OpenAI API the request used."""
        return "responses" if self.path.endswith("/responses") else "chat.completions"

    def transcript(self) -> list[tuple[str, str]]:
        """``(role, text)`` per message the model saw; tool calls read ``("tool_call", "name(args)")``."""
        return wire.transcript(self.context)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``GET /_requests`` returns."""
        return {
            "path": self.path,
            "body": self.body,
            "headers": self.headers,
            "context": self.context,
            "status": self.status,
            "query": self.query,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordedRequest:
        """Read the JSON form back (in a test talking to a server in another process)."""
        return cls(
            path=data["path"],
            body=data["body"],
            headers=data["headers"],
            context=data["context"],
            status=data["status"],
            query=dict(data.get("query") or {}),
        )


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 that answers from a script.

    Use ``async with FakeOpenAIServer() as server:`` in async code, or ``server.start_in_thread()``
    / ``server.stop()`` (or ``with``) from synchronous code. Point a client at ``server.base_url``
    (or put ``server.env()`` into a subprocess's environment). An app written for Azure OpenAI
    points at ``server.azure_endpoint`` instead (``server.azure_env()``).

    Args:
        port: The port to listen on; 0 picks a free one.
        host: The loopback address to listen on.
        responder: Answers requests when the script is empty; default ``echo_last_user_message``.
        api_key: When set, ``/v1`` requests must carry ``Authorization: Bearer <api_key>``, and Azure
            requests ``api-key: <api_key>`` (on ``/openai/v1`` also as a bearer token); else 401.
        azure_ad_token: When set, Azure requests may carry ``Authorization: Bearer <azure_ad_token>``
            (what a token credential fetches); other bearer tokens get 401.
        deployments: The Azure deployment names that exist (others get 404 ``DeploymentNotFound``);
            by default every name does.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        responder: Responder | None = None,
        api_key: str | None = None,
        azure_ad_token: str | None = None,
        deployments: Iterable[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._api_key = api_key
        self._azure_ad_token = azure_ad_token
        self._deployments = None if deployments is None else frozenset(deployments)
        self._responder: Responder = responder or echo_last_user_message
        # Test threads script and read while the server's loop answers: one lock guards both.
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._conversations: dict[str, list[dict[str, Any]]] = {}
        self._stored: dict[str, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # Addresses -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server root (control endpoints live here)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The ``base_url`` / ``OPENAI_BASE_URL`` to give OpenAI clients."""
        return f"{self.url}/v1"

    def env(self, model: str = "fake-model") -> dict[str, str]:
        """The environment that points Agent Framework's OpenAI clients (in any process) here."""
        return {
            "OPENAI_BASE_URL": self.base_url,
            "OPENAI_API_KEY": self._api_key or "test",
            "OPENAI_MODEL": model,
        }

    @property
    def azure_endpoint(self) -> str:
        """The ``azure_endpoint`` / ``AZURE_OPENAI_ENDPOINT`` to give Azure OpenAI clients (the server root)."""
        return self.url

    def azure_env(self, deployment: str = "fake-deployment", *, api_version: str | None = None) -> dict[str, str]:
        """The environment an app written for Azure OpenAI reads, pointing it here.

        ``AZURE_OPENAI_ENDPOINT`` and ``AZURE_OPENAI_API_KEY``; the deployment under the names Agent
        Framework (``AZURE_OPENAI_CHAT_MODEL``, ``AZURE_OPENAI_CHAT_COMPLETION_MODEL``, ``AZURE_OPENAI_MODEL``)
        and the Azure samples (``AZURE_OPENAI_CHAT_DEPLOYMENT_NAME``, ``AZURE_OPENAI_DEPLOYMENT_NAME``) read;
        ``OPENAI_API_VERSION`` for ``openai.AzureOpenAI``. ``AZURE_OPENAI_API_VERSION`` only when
        ``api_version`` is given: Agent Framework's clients each bring the version their surface takes, and
        one dated version for both would be refused by the v1 Responses surface, here as in Azure.
        Use it with no ``OPENAI_API_KEY`` in the environment: Agent Framework prefers OpenAI when one is set.
        """
        env = {
            "AZURE_OPENAI_ENDPOINT": self.azure_endpoint,
            "AZURE_OPENAI_API_KEY": self._api_key or "test",
            "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME": deployment,
            "AZURE_OPENAI_DEPLOYMENT_NAME": deployment,
            "AZURE_OPENAI_CHAT_MODEL": deployment,
            "AZURE_OPENAI_CHAT_COMPLETION_MODEL": deployment,
            "AZURE_OPENAI_MODEL": deployment,
            "OPENAI_API_VERSION": api_version or azure.DEFAULT_API_VERSION,
        }
        if api_version is not None:
            env["AZURE_OPENAI_API_VERSION"] = api_version
        return env

    # Script and records ----------------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies; each model request takes the next one, in order of arrival."""
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._script)

    def clear_script(self) -> None:
        """Drop the queued replies."""
        with self._lock:
            self._script.clear()

    def set_responder(self, responder: Responder | None) -> None:
        """Answer unscripted requests with ``responder(request_json)``; ``None`` restores the echo rule."""
        with self._lock:
            self._responder = responder or echo_last_user_message

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every model request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def conversation(self, response_id: str) -> list[dict[str, Any]]:
        """The items the server holds for a stored response (what ``previous_response_id`` continues).

        Raises:
            KeyError: No stored response has that id.
        """
        with self._lock:
            return list(self._conversations[response_id])

    def _take(self, record: RecordedRequest) -> tuple[Reply, RecordedRequest]:
        with self._lock:
            reply = self._script.popleft() if self._script else None
            responder = self._responder
        if reply is None:
            reply = responder(record.body)
        record = replace(record, status=reply.status or 200)
        self._record(record)
        return reply, record

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    # Lifecycle -------------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/responses/{response_id}", self._get_response)
        app.router.add_delete("/v1/responses/{response_id}", self._delete_response)
        app.router.add_get("/v1/models", self._models)
        # Azure OpenAI: the same handlers behind the service's api-version, auth and deployment rules.
        deployment, dated, v1 = azure.Surface.DEPLOYMENT, azure.Surface.DATED, azure.Surface.V1
        app.router.add_post(
            "/openai/deployments/{deployment}/chat/completions", self._azure(self._chat_completions, deployment)
        )
        app.router.add_post("/openai/v1/chat/completions", self._azure(self._chat_completions, v1))
        for surface, prefix in ((v1, "/openai/v1"), (dated, "/openai")):
            app.router.add_post(f"{prefix}/responses", self._azure(self._responses, surface))
            app.router.add_get(f"{prefix}/responses/{{response_id}}", self._azure(self._get_response, surface))
            app.router.add_delete(f"{prefix}/responses/{{response_id}}", self._azure(self._delete_response, surface))
        app.router.add_get("/openai/v1/models", self._azure(self._models, v1))
        app.router.add_post("/_script", self._post_script)
        app.router.add_delete("/_script", self._delete_script)
        app.router.add_get("/_requests", self._get_requests)
        app.router.add_delete("/_requests", self._delete_requests)
        return app

    async def start(self) -> None:
        """Listen (on the event loop running this coroutine)."""
        if self._runner is not None:
            raise RuntimeError("the fake OpenAI server is already running")
        # A short shutdown timeout: stopping must not wait a minute for a scripted delay to end.
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        _log.info("Fake OpenAI server listening on %s", self.base_url)

    async def close(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeOpenAIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start_in_thread(self) -> FakeOpenAIServer:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("the fake OpenAI server is already running")
        loop = asyncio.new_event_loop()
        started: Future[None] = Future()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # a bind failure: re-raised in the starting thread
                started.set_exception(exc)
                loop.close()
                return
            started.set_result(None)
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        thread = threading.Thread(target=serve, name="fake-openai-server", daemon=True)
        thread.start()
        try:
            started.result(timeout=30)
        except BaseException as exc:
            raise RuntimeError("the fake OpenAI server did not start") from exc
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Stop a server started with ``start_in_thread``; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start_in_thread()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Shared request handling -----------------------------------------------------------------------

    def _azure(self, handler: AzureHandler, surface: azure.Surface) -> Handler:
        """``handler`` behind Azure's auth and api-version rules (checked before the body, as a gateway does)."""

        async def serve(request: web.Request) -> web.StreamResponse:
            try:
                azure.check_auth(request.headers, surface, api_key=self._api_key, azure_ad_token=self._azure_ad_token)
                azure.check_api_version(surface, request.query.get("api-version"))
            except azure.AzureRefusal as refusal:
                if request.method == "POST":  # a refused model request still counts as an attempt
                    _, record = await self._read(request)
                    self._record(replace(record, status=refusal.status))
                _log.info("Fake OpenAI server refused an Azure request: %s %s", refusal.status, refusal.body)
                return web.json_response(refusal.body, status=refusal.status)
            return await handler(request, surface)

        return serve

    @staticmethod
    async def _read(request: web.Request) -> tuple[Any, RecordedRequest]:
        headers = {
            name.lower(): ("<redacted>" if name.lower() in _SECRET_HEADERS else value)
            for name, value in request.headers.items()
        }
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        record = RecordedRequest(
            request.path, body if isinstance(body, dict) else {}, headers, query=dict(request.query)
        )
        return body, record

    async def _admit(self, request: web.Request, surface: azure.Surface | None) -> tuple[Any, RecordedRequest]:
        """Parse and authorize a model request; refusals are recorded too (tests count attempts).

        On an Azure route (auth and api-version already checked) the deployment must exist, and on a
        deployment route it is the model, whatever the body says.
        """
        body, record = await self._read(request)
        if surface is not None:
            if isinstance(body, dict) and "deployment" in request.match_info:
                body = {**body, "model": request.match_info["deployment"]}
            model = body.get("model") if isinstance(body, dict) else None
            try:
                if isinstance(model, str):
                    azure.check_deployment(model, self._deployments)
            except azure.AzureRefusal as refusal:
                self._record(replace(record, status=refusal.status))
                raise _HTTPError(refusal.status, refusal.body) from None
        elif self._api_key is not None and request.headers.get("Authorization") != f"Bearer {self._api_key}":
            self._record(replace(record, status=401))
            raise _HTTPError(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
        if body is None:
            self._record(replace(record, status=400))
            raise _HTTPError(400, wire.WireError(400, "The request body is not valid JSON.").body)
        return body, record

    def _refuse(self, record: RecordedRequest, error: wire.WireError) -> web.Response:
        self._record(replace(record, status=error.status))
        _log.info("Fake OpenAI server refused a request: %s", error)
        return web.json_response(error.body, status=error.status)

    @staticmethod
    async def _pause(reply: Reply) -> None:
        if reply.delay_seconds:
            await asyncio.sleep(reply.delay_seconds)

    @staticmethod
    def _error_response(reply: Reply) -> web.Response:
        return web.json_response(reply.error_json(), status=reply.status or 500, headers=dict(reply.headers))

    @staticmethod
    async def _stream(request: web.Request, events: Iterable[tuple[str | None, Any]]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            for name, data in events:
                prefix = f"event: {name}\n" if name else ""
                payload = data if isinstance(data, str) else json.dumps(data)
                await response.write(f"{prefix}data: {payload}\n\n".encode())
            await response.write_eof()
        except ConnectionResetError:
            # The client stopped reading (a cancelled run): nothing left to tell it.
            pass
        return response

    # Chat completions ------------------------------------------------------------------------------

    async def _chat_completions(self, request: web.Request, surface: azure.Surface | None = None) -> web.StreamResponse:
        try:
            body, record = await self._admit(request, surface)
        except _HTTPError as refused:
            return refused.response()
        record = replace(record, context=list(body.get("messages") or []) if isinstance(body, dict) else [])
        try:
            messages = wire.check_chat_request(body)
        except wire.WireError as error:
            return self._refuse(record, error)
        reply, record = self._take(record)
        await self._pause(reply)
        if reply.status is not None:
            return self._error_response(reply)
        tool_calls = wire.chat_tool_calls(reply)
        usage = wire.chat_usage(messages, reply)
        model = str(body["model"])
        if not body.get("stream"):
            return web.json_response(wire.chat_completion(model, reply, tool_calls, usage))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = wire.chat_chunks(model, reply, tool_calls, usage, include_usage=include_usage)
        return await self._stream(request, [*((None, chunk) for chunk in chunks), (None, "[DONE]")])

    # Responses API ---------------------------------------------------------------------------------

    async def _responses(self, request: web.Request, surface: azure.Surface | None = None) -> web.StreamResponse:
        try:
            body, record = await self._admit(request, surface)
        except _HTTPError as refused:
            return refused.response()
        try:
            context, history = self._responses_context(body)
        except wire.WireError as error:
            return self._refuse(record, error)
        record = replace(record, context=context)
        reply, record = self._take(record)
        await self._pause(reply)
        if reply.status is not None:
            return self._error_response(reply)
        response_id = wire.new_id("resp_")
        output = wire.response_output(reply)
        response = wire.response_object(body, response_id, output, context)
        if body.get("store", True) is not False:
            with self._lock:
                # Instructions are not part of the held conversation: the service applies them per request.
                self._conversations[response_id] = [*history, *wire.input_items(body), *output]
                self._stored[response_id] = response
        if not body.get("stream"):
            return web.json_response(response)
        return await self._stream(request, ((event["type"], event) for event in wire.response_events(response)))

    def _responses_context(self, body: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The context the model sees (instructions, held turns, input) and the held turns alone."""
        if not isinstance(body, dict):
            raise wire.WireError(400, "The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise wire.WireError(
                400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
            )
        if body.get("conversation") is not None:
            raise wire.WireError(
                400,
                "The fake server does not implement Conversations; use previous_response_id.",
                param="conversation",
            )
        items = wire.input_items(body)
        history: list[dict[str, Any]] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            with self._lock:
                held = self._conversations.get(str(previous))
            if held is None:
                raise wire.WireError(
                    400,
                    f"Previous response with id '{previous}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            history = held
        wire.check_responses_context(history, items)
        instructions = body.get("instructions")
        preamble = [{"type": "message", "role": "system", "content": instructions}] if instructions else []
        return [*preamble, *history, *items], history

    async def _get_response(self, request: web.Request, surface: azure.Surface | None = None) -> web.Response:
        with self._lock:
            stored = self._stored.get(request.match_info["response_id"])
        if stored is None:
            return _not_found(request.match_info["response_id"])
        return web.json_response(stored)

    async def _delete_response(self, request: web.Request, surface: azure.Surface | None = None) -> web.Response:
        response_id = request.match_info["response_id"]
        with self._lock:
            found = self._stored.pop(response_id, None) is not None
            self._conversations.pop(response_id, None)
        if not found:
            return _not_found(response_id)
        return web.json_response({"id": response_id, "object": "response", "deleted": True})

    async def _models(self, request: web.Request, surface: azure.Surface | None = None) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "test"}
                    for name in sorted(self._deployments or {"fake-model"})
                ],
            }
        )

    # Control endpoints -----------------------------------------------------------------------------

    async def _post_script(self, request: web.Request) -> web.Response:
        try:
            items = await request.json()
            if not isinstance(items, list):
                raise ValueError("the script is a JSON list of replies")
            replies = [Reply.from_dict(item) for item in items]
        except ValueError as exc:  # JSONDecodeError is a ValueError
            return web.json_response({"error": {"message": str(exc)}}, status=400)
        self.script(*replies)
        return web.json_response({"queued": len(replies), "pending": self.pending})

    async def _delete_script(self, request: web.Request) -> web.Response:
        self.clear_script()
        return web.Response(status=204)

    async def _get_requests(self, request: web.Request) -> web.Response:
        return web.json_response([record.to_dict() for record in self.requests])

    async def _delete_requests(self, request: web.Request) -> web.Response:
        self.clear_requests()
        return web.Response(status=204)


class _HTTPError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


def _not_found(response_id: str) -> web.Response:
    return web.json_response(
        wire.WireError(404, f"Response with id '{response_id}' not found.", param="response_id").body,
        status=404,
    )


class RemoteFakeOpenAIServer:
    """Programs and inspects a ``FakeOpenAIServer`` running in another process, over its control endpoints.

    Args:
        url: The server's root or base URL (``http://127.0.0.1:<port>`` or ``…/v1``).
        timeout: Seconds to wait for each control call.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/").removesuffix("/v1")
        self._timeout = timeout

    def script(self, *replies: Reply) -> None:
        """Queue replies on the server."""
        self._call("POST", "/_script", [reply.to_dict() for reply in replies])

    def clear_script(self) -> None:
        """Drop the server's queued replies."""
        self._call("DELETE", "/_script")

    def requests(self) -> list[RecordedRequest]:
        """Every model request the server recorded, oldest first."""
        return [RecordedRequest.from_dict(item) for item in self._call("GET", "/_requests")]

    def clear_requests(self) -> None:
        """Forget the server's recorded requests."""
        self._call("DELETE", "/_requests")

    def _call(self, method: str, path: str, payload: Sequence[Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None
