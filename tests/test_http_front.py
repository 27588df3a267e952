"""The HTTP front end over a real socket: routing, status codes, keys and the route prefix."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from durableagent.devhost._app_loader import load_function_app
from durableagent.devhost._http_front import FunctionKeys, build_http_app, load_or_create_keys
from durableagent.devhost._invoker import Invoker

SAMPLE_APP = """
import json

import azure.functions as func

app = func.FunctionApp()  # FUNCTION is the default auth level


@app.route(route="hello/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"Hello {req.route_params['name']}")


@app.route(route="items/{id:int}", methods=["GET", "POST"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    document = {
        "id": int(req.route_params["id"]),
        "query": dict(req.params),
        "body": req.get_body().decode(),
        "agent": req.headers.get("user-agent", ""),
    }
    return func.HttpResponse(json.dumps(document), mimetype="application/json", status_code=201)


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> str:
    return "admin"


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> str:
    raise RuntimeError("secret detail")


@app.route(route="{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def fallback(req: func.HttpRequest) -> str:
    return "fallback " + req.route_params.get("path", "")
"""


@pytest.fixture(autouse=True)
def isolated_imports() -> Iterator[None]:
    saved_path = list(sys.path)
    saved_module = sys.modules.get("function_app")
    yield
    sys.path[:] = saved_path
    if saved_module is None:
        sys.modules.pop("function_app", None)
    else:
        sys.modules["function_app"] = saved_module


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "function_app.py").write_text(textwrap.dedent(SAMPLE_APP), encoding="utf-8")
    return tmp_path


@asynccontextmanager
async def serve(
    app_dir: Path,
    *,
    route_prefix: str = "api",
    enforce_keys: bool = False,
    keys: FunctionKeys | None = None,
    extra_routes: list[web.RouteDef] | None = None,
    max_request_bytes: int = 100 * 1024 * 1024,
    disabled: frozenset[str] = frozenset(),
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    loaded = load_function_app(app_dir, route_prefix=route_prefix)
    invoker = Invoker(loaded.functions)
    application = build_http_app(
        loaded.functions,
        invoker,
        route_prefix=route_prefix,
        enforce_keys=enforce_keys,
        keys=keys,
        extra_routes=extra_routes or [],
        max_request_bytes=max_request_bytes,
        disabled=disabled,
    )
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            yield f"http://127.0.0.1:{port}", session
    finally:
        await runner.cleanup()
        invoker.close()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def fetch(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.read(), response.headers


async def status_of(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> int:
    return (await fetch(session, method, url, **kwargs))[0]


def test_routes_to_functions(app_dir: Path) -> None:
    async def scenario() -> None:
        async with serve(app_dir) as (base, session):
            status, body, headers = await fetch(session, "GET", f"{base}/api/hello/World")
            assert (status, body) == (200, b"Hello World")
            assert headers["Content-Type"] == "text/plain; charset=utf-8"

            status, body, headers = await fetch(
                session,
                "POST",
                f"{base}/API/Items/7?x=1&blank=",
                data=b"payload",
                headers={"User-Agent": "t"},
            )
            assert status == 201
            assert headers["Content-Type"] == "application/json"
            assert json.loads(body) == {"id": 7, "query": {"x": "1"}, "body": "payload", "agent": "t"}

    run(scenario)


def test_not_found_and_wrong_method(app_dir: Path) -> None:
    async def scenario() -> None:
        async with serve(app_dir) as (base, session):
            # The app's catch-all lives under the prefix; outside it nothing matches.
            # The Functions host sends these with an empty body; the local host says why, in JSON.
            status, body, headers = await fetch(session, "GET", f"{base}/elsewhere")
            assert (status, json.loads(body)["error"]["code"]) == (404, "route_not_found")
            assert headers["Content-Type"].startswith("application/json")
            # A method the function does not accept is a 404, as on the Functions host.
            status, body, _ = await fetch(session, "DELETE", f"{base}/api/items/7")
            assert (status, json.loads(body)["error"]["code"]) == (404, "route_not_found")
            # The int constraint fails, so the catch-all answers.
            status, body, _ = await fetch(session, "GET", f"{base}/api/items/abc")
            assert (status, body) == (200, b"fallback items/abc")

    run(scenario)


def test_failure_is_a_bare_500(app_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with serve(app_dir) as (base, session):
            status, body, _ = await fetch(session, "GET", f"{base}/api/boom")
            assert (status, body) == (500, b"")

    run(scenario)
    assert any("RuntimeError: secret detail" in record.getMessage() for record in caplog.records)


def test_keys_are_not_enforced_by_default(app_dir: Path) -> None:
    async def scenario() -> None:
        async with serve(app_dir) as (base, session):
            assert await status_of(session, "GET", f"{base}/api/items/1") == 201
            assert await status_of(session, "GET", f"{base}/api/admin-only") == 200

    run(scenario)


def test_keys_enforced(app_dir: Path) -> None:
    keys = load_or_create_keys(app_dir)

    async def scenario() -> None:
        async with serve(app_dir, enforce_keys=True, keys=keys) as (base, session):
            status, body, _ = await fetch(session, "GET", f"{base}/api/items/1")
            assert (status, json.loads(body)["error"]["code"]) == (401, "unauthorized")
            wrong = {"x-functions-key": "wrong"}
            assert await status_of(session, "GET", f"{base}/api/items/1", headers=wrong) == 401
            function_key = {"x-functions-key": keys.default_function}
            assert await status_of(session, "GET", f"{base}/api/items/1", headers=function_key) == 201
            assert await status_of(session, "GET", f"{base}/api/items/1?code={keys.default_function}") == 201
            assert await status_of(session, "GET", f"{base}/api/items/1?code={keys.master}") == 201
            # ADMIN needs the master key.
            assert await status_of(session, "GET", f"{base}/api/admin-only", headers=function_key) == 401
            master = {"x-functions-key": keys.master}
            assert await status_of(session, "GET", f"{base}/api/admin-only", headers=master) == 200
            # ANONYMOUS never needs a key.
            assert await status_of(session, "GET", f"{base}/api/hello/x") == 200

    run(scenario)


def test_a_disabled_function_answers_404_except_to_admins(app_dir: Path) -> None:
    # FunctionInvocationMiddleware: the key check first, then 404 for a disabled function unless the
    # caller has admin rights. Its route still matches: the catch-all does not answer in its place.
    keys = load_or_create_keys(app_dir)

    async def scenario() -> None:
        async with serve(app_dir, enforce_keys=True, keys=keys, disabled=frozenset({"item", "hello"})) as (
            base,
            session,
        ):
            assert await status_of(session, "GET", f"{base}/api/items/1") == 401
            status, body, _ = await fetch(
                session, "GET", f"{base}/api/items/1", headers={"x-functions-key": keys.default_function}
            )
            # The same 404 as no route at all (JSON, like every 4xx the local host answers itself).
            assert (status, json.loads(body)["error"]["code"]) == (404, "route_not_found")
            assert await status_of(session, "GET", f"{base}/api/hello/x") == 404
            assert await status_of(session, "GET", f"{base}/api/items/1?code={keys.master}") == 201
            assert await status_of(session, "GET", f"{base}/api/other") == 200
        # Without keys every caller is an admin, as under `func start`: the disabled function answers.
        async with serve(app_dir, disabled=frozenset({"item"})) as (base, session):
            assert await status_of(session, "GET", f"{base}/api/items/1") == 201

    run(scenario)


def test_keys_file(app_dir: Path) -> None:
    first = load_or_create_keys(app_dir)
    second = load_or_create_keys(app_dir)
    assert first == second
    assert first.master != first.default_function
    path = app_dir / ".durableagent" / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "masterKey": first.master,
        "functionKeys": {"default": first.default_function},
        "systemKeys": {"durabletask_extension": first.durable_system},
    }
    assert len({first.master, first.default_function, first.durable_system}) == 3
    assert first.allows_system(first.durable_system) and first.allows_system(first.master)
    assert not first.allows_system(first.default_function) and not first.allows_system(None)
    # No temporary file is left behind by the atomic write.
    assert sorted(p.name for p in path.parent.iterdir()) == ["keys.json"]


def test_keys_required_when_enforcing(app_dir: Path) -> None:
    loaded = load_function_app(app_dir)
    invoker = Invoker(loaded.functions)
    try:
        with pytest.raises(ValueError, match="enforce_keys"):
            build_http_app(loaded.functions, invoker, enforce_keys=True)
    finally:
        invoker.close()


@pytest.mark.parametrize(("prefix", "path"), [("", "/hello/x"), ("v1/fn", "/v1/fn/hello/x")])
def test_route_prefix(app_dir: Path, prefix: str, path: str) -> None:
    async def scenario() -> None:
        async with serve(app_dir, route_prefix=prefix) as (base, session):
            status, body, _ = await fetch(session, "GET", f"{base}{path}")
            assert (status, body) == (200, b"Hello x")
            if prefix == "":
                # Without a prefix, the app's catch-all sees every other path.
                assert (await fetch(session, "GET", f"{base}/api/hello/x"))[1] == b"fallback api/hello/x"

    run(scenario)


def test_caller_routes_are_not_shadowed(app_dir: Path) -> None:
    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="durable")

    routes = [web.get("/runtime/webhooks/durabletask/ping", ping)]

    async def scenario() -> None:
        async with serve(app_dir, route_prefix="", extra_routes=routes) as (base, session):
            status, body, _ = await fetch(session, "GET", f"{base}/runtime/webhooks/durabletask/ping")
            assert (status, body) == (200, b"durable")
            # The reserved root never reaches the app's catch-all.
            assert await status_of(session, "GET", f"{base}/runtime/other") == 404
            assert await status_of(session, "GET", f"{base}/admin/host/status") == 404
            assert (await fetch(session, "GET", f"{base}/other"))[1] == b"fallback other"

    run(scenario)


def test_body_size_limit(app_dir: Path) -> None:
    async def scenario() -> None:
        async with serve(app_dir, max_request_bytes=1024) as (base, session):
            assert await status_of(session, "POST", f"{base}/api/items/1", data=b"x" * 2048) == 413
            assert await status_of(session, "POST", f"{base}/api/items/1", data=b"x" * 512) == 201

    run(scenario)
