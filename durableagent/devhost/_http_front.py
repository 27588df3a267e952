"""The HTTP front end: an aiohttp application that routes requests to HTTP-trigger functions.

Like the Functions host it answers 404 when no route matches (a method a route does not take included),
401 when a required key is missing or wrong, and 500 with an empty body when the function fails (the
failure is logged by the invoker). The host's own 4xx carry a JSON ``{"error": {code, message}}`` body
where the Functions host sends none (see ``_http_errors``). Keys are checked only when the host is told
to (``func start`` does not check them). The caller's own routes (the Durable management API) are
registered first, and the host's reserved ``/admin`` and ``/runtime`` paths are never handed to a function.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestPayloadError
from multidict import CIMultiDict

from ._app_loader import http_methods, http_route
from ._functions import HTTP_TRIGGER, IndexedFunction
from ._http_errors import BODY_TOO_LARGE, ROUTE_NOT_FOUND, UNAUTHORIZED, code_for_status, json_error
from ._invoker import FunctionInvocationError, HttpRequestData, HttpResponseData
from ._routes import MethodNotAllowed, RouteTable, join_route, split_path

__all__ = [
    "MAX_REQUEST_BYTES",
    "FunctionKeys",
    "HttpInvoker",
    "build_http_app",
    "load_or_create_keys",
    "presented_key",
    "unauthorized",
]

# Azure's limit on HTTP-trigger request bodies.
MAX_REQUEST_BYTES = 100 * 1024 * 1024
KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"
KEYS_FILE = Path(".durableagent") / "keys.json"

_RESERVED_ROOTS = ("admin", "runtime")
# RFC 3986 reg-name / IPv4 or a bracketed IPv6 literal, then an optional port: anything else in Host
# would be copied into the URLs the host hands out (check-status payloads, the request URL).
_HOST_HEADER = re.compile(
    r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$"
)
# aiohttp computes these itself; copying a function's values would corrupt the response framing.
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class HttpInvoker(Protocol):
    """The part of :class:`~durableagent.devhost._invoker.Invoker` the front end needs."""

    async def invoke_http(self, fn: IndexedFunction, request: HttpRequestData) -> HttpResponseData:
        """Run ``fn`` for ``request``; raise ``FunctionInvocationError`` when it fails."""
        ...


@dataclass(frozen=True)
class FunctionKeys:
    """The host's keys: the master key (admin level), the default function key, and the
    ``durabletask_extension`` system key that the Durable webhook URLs carry."""

    master: str
    default_function: str
    durable_system: str = ""

    def allows_system(self, presented: str | None) -> bool:
        """Whether ``presented`` opens the Durable webhook (its system key or the master key)."""
        if not presented:
            return False
        accepted = [k for k in (self.durable_system, self.master) if k]
        return any(hmac.compare_digest(presented.encode(), key.encode()) for key in accepted)

    def allows(self, auth_level: str, presented: str | None) -> bool:
        """Whether a request presenting ``presented`` may call a function at ``auth_level``."""
        level = auth_level.upper()
        if level == "ANONYMOUS":
            return True
        if not presented:
            return False
        accepted = [self.master] if level == "ADMIN" else [self.master, self.default_function]
        # Constant-time comparison: keys are secrets.
        return any(hmac.compare_digest(presented.encode(), key.encode()) for key in accepted)


def _new_key() -> str:
    return secrets.token_urlsafe(40)


def load_or_create_keys(app_dir: str | os.PathLike[str]) -> FunctionKeys:
    """Read ``<app_dir>/.durableagent/keys.json``, creating it (mode 0600) with fresh keys the first time.

    Raises:
        ValueError: The file exists but is not the expected JSON.
    """
    path = Path(app_dir) / KEYS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = FunctionKeys(master=_new_key(), default_function=_new_key(), durable_system=_new_key())
    document = {
        "masterKey": keys.master,
        "functionKeys": {"default": keys.default_function},
        "systemKeys": {"durabletask_extension": keys.durable_system},
    }
    # Written whole to a temporary file, then linked into place: a kill mid-write leaves no
    # half-written keys file, and when two hosts start at once exactly one link succeeds.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)
    except FileExistsError:
        return _read_keys(path)
    finally:
        temporary.unlink(missing_ok=True)
    return keys


def _read_keys(path: Path) -> FunctionKeys:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        system = (document.get("systemKeys") or {}).get("durabletask_extension")
        return FunctionKeys(
            master=str(document["masterKey"]),
            default_function=str(document["functionKeys"]["default"]),
            # Keys files of older hosts have no system key: the master key stands in for it.
            durable_system=str(system or document["masterKey"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a keys file ({exc}); delete it to generate new keys") from exc


def _auth_level(fn: IndexedFunction) -> str:
    # The decorators always write authLevel; the host's default for a bare binding is FUNCTION.
    return str(fn.trigger.get("authLevel") or "FUNCTION")


def _request_headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


def _request_query(request: web.Request) -> dict[str, str]:
    # ASP.NET's query collection is case-insensitive and joins repeated keys with ","; the host drops
    # parameters whose value is empty.
    merged: dict[str, tuple[str, list[str]]] = {}
    for name, value in request.rel_url.query.items():
        _, values = merged.setdefault(name.lower(), (name, []))
        values.append(value)
    return {name: ",".join(values) for name, values in merged.values() if ",".join(values)}


def presented_key(request: web.Request) -> str | None:
    """The key a request presents: the ``x-functions-key`` header, else the ``code`` query parameter."""
    return request.headers.get(KEY_HEADER) or request.rel_url.query.get(KEY_QUERY) or None


def unauthorized() -> web.Response:
    """The host's 401 (deviation: the Functions host sends it with an empty body)."""
    return json_error(401, UNAUTHORIZED, "A valid key is required (x-functions-key header or code query parameter).")


def _no_route(request: web.Request) -> web.Response:
    # Deviation: the Functions host's 404 has an empty body; ours says why (README, "Keys, errors and bounds").
    # No echo of the path: it is the caller's text, and the caller already has it.
    return json_error(404, ROUTE_NOT_FOUND, f"No function or host route answers {request.method} on this path.")


def _body_too_large(limit: int | None = None) -> web.Response:
    bound = f" ({limit} bytes)" if limit is not None else ""
    return json_error(413, BODY_TOO_LARGE, f"The request body is larger than the host accepts{bound}.")


def _host_header_error(request: web.Request) -> web.Response | None:
    host = request.headers.get("Host")
    if host is None:
        # HTTP/1.1 requires Host (Kestrel answers 400 without one); HTTP/1.0 may omit it.
        if request.version >= (1, 1):
            return json_error(400, "invalid_host", "An HTTP/1.1 request needs a Host header.")
        return None
    if len(request.headers.getall("Host")) > 1 or not _HOST_HEADER.match(host):
        return json_error(400, "invalid_host", "The Host header is not a valid host name and port.")
    return None


@web.middleware
async def _host_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Checks the Host header, and turns the 4xx aiohttp raises while the host reads a request (e.g. 413
    for a body over ``client_max_size``) into the host's JSON errors. Functions' responses are returned,
    never raised, so they pass unchanged."""
    bad_host = _host_header_error(request)
    if bad_host is not None:
        return bad_host
    try:
        return await handler(request)
    except (http_exceptions.BadHttpMessage, RequestPayloadError) as exc:
        # Raised while a handler reads the body (aiohttp wraps the parser's error in RequestPayloadError):
        # a Content-Encoding the body does not match (gzip that is not gzip), broken chunked framing. The
        # caller's fault, told without echoing its bytes.
        cause = exc.__cause__ if isinstance(exc, RequestPayloadError) else exc
        if isinstance(cause, http_exceptions.ContentEncodingError):
            return json_error(400, "invalid_content_encoding", "The body does not decode as its Content-Encoding says.")
        return json_error(400, "bad_body_framing", "The request body's framing is not valid HTTP.")
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status >= 500:
            raise
        if isinstance(exc, web.HTTPNotFound | web.HTTPMethodNotAllowed):
            # aiohttp's router gave up (the catch-all route normally answers): the host's own 404.
            return _no_route(request)
        if exc.status == 413:
            return _body_too_large()
        return json_error(exc.status, code_for_status(exc.status), exc.reason)


def _to_web_response(response: HttpResponseData) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in response.headers:
        if name.lower() not in _HOP_BY_HOP:
            headers.add(name, value)
    return web.Response(status=response.status, body=response.body, headers=headers)


class _FunctionRouter:
    def __init__(
        self,
        functions: Sequence[IndexedFunction],
        invoker: HttpInvoker,
        *,
        route_prefix: str,
        keys: FunctionKeys | None,
        enforce_keys: bool,
        max_request_bytes: int,
        disabled: Collection[str] = (),
    ) -> None:
        self._invoker = invoker
        self._max_request_bytes = max_request_bytes
        self._keys = keys
        self._enforce_keys = enforce_keys
        self._disabled = frozenset(disabled)
        self._table: RouteTable[IndexedFunction] = RouteTable()
        for fn in functions:
            if fn.trigger_type == HTTP_TRIGGER:
                self._table.add(join_route(route_prefix, http_route(fn)), fn, http_methods(fn))

    def _authorized(self, fn: IndexedFunction, request: web.Request) -> bool:
        if not self._enforce_keys:
            return True
        assert self._keys is not None  # build_http_app requires keys when enforcing
        return self._keys.allows(_auth_level(fn), presented_key(request))

    def _admin(self, request: web.Request) -> bool:
        if not self._enforce_keys:
            # Without --enforce-keys, as under `func start` without --enableAuth, every caller has admin
            # rights (Core Tools' CliAuthenticationHandler), so a disabled HTTP function still answers
            # locally, as the Functions docs warn.
            return True
        assert self._keys is not None
        return self._keys.allows("ADMIN", presented_key(request))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        segments = split_path(raw_path)
        if segments and segments[0].lower() in _RESERVED_ROOTS:
            return _no_route(request)
        found = self._table.lookup(request.method, raw_path)
        if found is None:
            return _no_route(request)
        if isinstance(found, MethodNotAllowed):
            # The Functions host treats the method as a route constraint: no match is a 404, not a 405.
            return _no_route(request)
        fn = found.target
        if not self._authorized(fn, request):
            return unauthorized()
        if fn.name in self._disabled and not self._admin(request):
            # FunctionInvocationMiddleware (azure-functions-host src/WebJobs.Script.WebHost/Middleware/
            # FunctionInvocationMiddleware.cs): a disabled function answers 404, after the key check,
            # unless the caller has admin rights. The same 404 as no route at all.
            return _no_route(request)
        if request.content_length is not None and request.content_length > self._max_request_bytes:
            # Refused from the header, before reading: aiohttp would only notice after buffering the limit.
            return _body_too_large(self._max_request_bytes)
        body = await request.read()
        data = HttpRequestData(
            method=request.method,
            url=f"{request.scheme}://{request.host}{request.rel_url.raw_path_qs}",
            headers=_request_headers(request),
            query=_request_query(request),
            route_params=found.params,
            body=body,
        )
        try:
            response = await self._invoker.invoke_http(fn, data)
            return _to_web_response(response)
        except FunctionInvocationError:
            # The invoker has logged the failure; like the host, the caller gets no details.
            return web.Response(status=500)


def build_http_app(
    functions: Sequence[IndexedFunction],
    invoker: HttpInvoker,
    *,
    route_prefix: str = "api",
    enforce_keys: bool = False,
    keys: FunctionKeys | None = None,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    max_request_bytes: int = MAX_REQUEST_BYTES,
    disabled: Collection[str] = (),
) -> web.Application:
    """Build the aiohttp application serving the app's HTTP-trigger functions.

    Args:
        functions: The app's functions; only HTTP-triggered ones are routed.
        invoker: Runs a function for a request.
        route_prefix: ``host.json`` ``extensions.http.routePrefix`` (``""`` for none).
        enforce_keys: Require keys for ``FUNCTION``/``ADMIN`` functions (off by default, like ``func start``).
        keys: The host keys; required when ``enforce_keys`` is set.
        extra_routes: Routes matched before any function (e.g. ``/runtime/webhooks/durabletask/...``).
        max_request_bytes: Larger bodies get 413.
        disabled: Names of functions an ``AzureWebJobs.<name>.Disabled`` setting turns off: their routes
            answer 404 to callers without admin rights.

    Raises:
        ValueError: ``enforce_keys`` without ``keys``.
        RouteTemplateError: A function's route is malformed (the app loader reports this first).
    """
    if enforce_keys and keys is None:
        raise ValueError("enforce_keys needs the host keys (see load_or_create_keys)")
    router = _FunctionRouter(
        functions,
        invoker,
        route_prefix=route_prefix,
        keys=keys,
        enforce_keys=enforce_keys,
        max_request_bytes=max_request_bytes,
        disabled=disabled,
    )
    app = web.Application(client_max_size=max_request_bytes, middlewares=[_host_errors])
    app.add_routes(list(extra_routes))
    # Registered last: aiohttp tries resources in order, so the caller's routes win.
    # Any path at all, line breaks (%0A) included: "." would miss those and leave them to aiohttp's 405.
    app.router.add_route("*", r"/{tail:[\s\S]*}", router.handle)
    return app
