"""A local OpenAI-compatible server for tests: the real ``openai`` client talks HTTP to it.

Serves ``/v1/chat/completions`` (plain and streamed, with tool calls and usage) and
``/v1/responses`` (plain, with ``previous_response_id`` conversations kept server-side). Replies
come from a script, else a default rule; every request is recorded. Control endpoints let a test
in another process program it: ``POST /_script``, ``GET /_requests``, ``DELETE /_requests``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ._replies import Reply, echo

Responder = Callable[[dict[str, Any]], Reply]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    """The last user text of a chat-completions or responses request."""
    items = body.get("messages") or body.get("input") or []
    if isinstance(items, str):
        return items
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return _text_of(item.get("content"))
    return ""


def requested_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks the answer to follow, if any (chat or responses shape)."""
    fmt = body.get("response_format") or (body.get("text") or {}).get("format") or {}
    if not isinstance(fmt, dict):
        return None
    schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    schema = schema or (fmt.get("schema") if fmt.get("type") == "json_schema" else None)
    return schema if isinstance(schema, dict) else None


def example_for_schema(schema: dict[str, Any], text: str) -> Any:
    """A small value that satisfies a JSON schema (strings carry the user's text)."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: example_for_schema(sub, text) for name, sub in props.items()}
    if kind == "array":
        return [example_for_schema(schema.get("items") or {}, text)]
    if kind == "integer":
        return len(text)
    if kind == "number":
        return float(len(text))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


class FakeOpenAIServer:
    """Run with ``async with FakeOpenAIServer() as server`` or ``start_in_thread()``/``stop()``.

    Attributes:
        requests: Every model request received: ``{"path", "body", "headers", "context"}``, where
            ``context`` is the conversation the model saw (for the Responses API, including the
            turns it holds server-side).
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.requests: list[dict[str, Any]] = []
        self._script: deque[Reply] = deque()
        self._responder: Responder | None = None
        self._lock = threading.Lock()
        self._conversations: dict[str, list[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # Scripting ---------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The ``OPENAI_BASE_URL`` to give clients."""
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies, consumed in order by the next model requests."""
        with self._lock:
            self._script.extend(replies)

    def set_responder(self, responder: Responder | None) -> None:
        """Answer unscripted requests with ``responder(request_body)`` instead of the echo rule."""
        self._responder = responder

    def model_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()

    def _next(self, path: str, body: dict[str, Any], headers: dict[str, str], context: list[Any]) -> Reply:
        with self._lock:
            self.requests.append({"path": path, "body": body, "headers": headers, "context": context})
            if self._script:
                return self._script.popleft()
        if self._responder is not None:
            return self._responder(body)
        schema = requested_schema(body)
        if schema is not None:
            return Reply.json(example_for_schema(schema, last_user_text(body)))
        return echo(last_user_text(body))

    # Lifecycle ---------------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/_script", self._post_script)
        app.router.add_get("/_requests", self._get_requests)
        app.router.add_delete("/_requests", self._delete_requests)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            # Port 0 asked the OS for a free port: read back which one it gave.
            for address in self._runner.addresses:
                self.port = int(address[1])
                break

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> FakeOpenAIServer:
        """Serve from a background thread (for synchronous tests); returns once listening."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    # Control endpoints ---------------------------------------------------------------------------------

    async def _post_script(self, request: web.Request) -> web.Response:
        replies = [Reply.from_dict(item) for item in await request.json()]
        self.script(*replies)
        return web.json_response({"queued": len(replies)})

    async def _get_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.model_requests())

    async def _delete_requests(self, request: web.Request) -> web.Response:
        self.clear()
        return web.Response(status=204)

    # Chat completions ----------------------------------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        reply = self._next(request.path, body, dict(request.headers), list(body.get("messages", [])))
        if reply.delay_seconds:
            await asyncio.sleep(reply.delay_seconds)
        if reply.error_status is not None:
            return _error(reply)
        model = body.get("model", "fake-model")
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        tool_calls = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in reply.tool_calls
        ]
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        finish = "tool_calls" if tool_calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict[str, Any], finish_reason: str | None = None, with_usage: bool = False) -> None:
            chunk: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            if with_usage:
                chunk["choices"] = []
                chunk["usage"] = usage
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        words = (reply.text or "").split(" ") if reply.text else []
        for index, word in enumerate(words):
            await send({"content": word if index == len(words) - 1 else word + " "})
        for index, call in enumerate(tool_calls):
            await send({"tool_calls": [{"index": index, **call}]})
        await send({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({}, with_usage=True)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # Responses API ------------------------------------------------------------------------------------

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        previous = body.get("previous_response_id")
        items = body.get("input") or []
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        context = [*self._conversations.get(previous, []), *items] if previous else list(items)
        reply = self._next(request.path, body, dict(request.headers), context)
        if reply.delay_seconds:
            await asyncio.sleep(reply.delay_seconds)
        if reply.error_status is not None:
            return _error(reply)
        response_id = f"resp_{uuid.uuid4().hex[:20]}"
        output: list[dict[str, Any]] = []
        if reply.text is not None:
            output.append(
                {
                    "type": "message",
                    "id": f"msg_{uuid.uuid4().hex[:12]}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            )
        for call in reply.tool_calls:
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_{uuid.uuid4().hex[:12]}",
                    "call_id": f"call_{uuid.uuid4().hex[:12]}",
                    "name": call.name,
                    "arguments": json.dumps(call.arguments),
                    "status": "completed",
                }
            )
        if body.get("store", True):
            self._conversations[response_id] = [*context, *output]
        return web.json_response(
            {
                "id": response_id,
                "object": "response",
                "created_at": int(time.time()),
                "status": "completed",
                "model": body.get("model", "fake-model"),
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools", []),
                "previous_response_id": previous,
                "store": body.get("store", True),
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "total_tokens": 15,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            }
        )


def _error(reply: Reply) -> web.Response:
    status = int(reply.error_status or 500)
    body = reply.error_body or {"error": {"message": f"scripted error {status}", "type": "server_error", "code": None}}
    headers = {"Retry-After": "0"} if status == 429 else None
    return web.json_response(body, status=status, headers=headers)
