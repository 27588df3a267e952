"""The extension's built-in HTTP activity (``BuiltIn::HttpActivity``), sending one durable HTTP request.

Follows ``Listener/TaskHttpActivityShim.cs``, ``DurableHttpClientFactory.cs`` and ``DurableHttpResponse.cs``
of Azure/azure-functions-durable-extension:

* the request: method, URI, headers, ``Content-Type`` from the headers (``text/plain`` when there is
  content and none is given; multipart refused), the content as text, a managed-identity bearer token
  when ``tokenSource`` asks for one;
* one shared client whose requests time out after 240 s (``HttpClient.Timeout``), or earlier when the
  request carries ``timeout`` ("... Reached user specified timeout: ..."); redirects followed up to 50
  times and no automatic decompression, as ``HttpClientHandler``'s defaults;
* the answer: ``{"statusCode", "headers", "content"}`` with the response headers only (.NET keeps
  ``Content-Type``, ``Content-Length`` and the other content headers apart, so they are not there);
* an ``HttpRequestException`` (cannot connect, ...) fails the task with its message as the reason.

Bounds of the local host itself: a response body larger than :data:`MAX_RESPONSE_BYTES` fails the task
rather than filling the task hub.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp
from multidict import CIMultiDict

from ._activities import BuiltInActivityError
from ._settings import parse_timespan
from ._task_failures import exception_json

__all__ = ["MAX_RESPONSE_BYTES", "DurableHttpActivity"]

# DurableHttpClientFactory: HttpClient.Timeout = 240 seconds.
CLIENT_TIMEOUT = timedelta(seconds=240)
# HttpClientHandler.MaxAutomaticRedirections.
MAX_REDIRECTS = 50
# The local host's own limit on one response body (Azure would move a large one to blob storage).
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_USER_AGENT = "Microsoft.Azure.WebJobs.Extensions.DurableTask (durableagent local host)"
# HttpContentHeaders: what HttpResponseMessage.Headers never holds.
_CONTENT_HEADERS = frozenset(
    {
        "allow",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "expires",
        "last-modified",
    }
)
_HTTP_REQUEST_EXCEPTION = ("System.Net.Http.HttpRequestException", "System.Net.Http")


def _failure(class_name: str, assembly: str, message: str) -> BuiltInActivityError:
    details = json.dumps(exception_json(class_name, message, assembly=assembly), separators=(",", ":"))
    return BuiltInActivityError(message, details)


def _request_failure(message: str) -> BuiltInActivityError:
    return _failure(*_HTTP_REQUEST_EXCEPTION, message)


def _format_timespan(value: timedelta) -> str:
    total = value.total_seconds()
    whole = int(total)
    text = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    fraction = round((total - whole) * 10_000_000)
    return f"{text}.{fraction:07d}" if fraction else text


def _response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> dict[str, str | list[str]]:
    grouped: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("latin-1")
        if name.lower() in _CONTENT_HEADERS:
            continue
        key = names.setdefault(name.lower(), name)
        grouped.setdefault(key, []).append(value_bytes.decode("latin-1"))
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def _charset(content_type: str | None) -> str:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value.strip('"'):
            return value.strip('"')
    return "utf-8"


class DurableHttpActivity:
    """Sends durable HTTP requests through one client session (closed by :meth:`close`)."""

    def __init__(self, *, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT.total_seconds()),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": _USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __call__(self, request_json: str) -> str:
        """Run the activity on its input (the request JSON); returns the ``DurableHttpResponse`` JSON."""
        try:
            request = json.loads(request_json)
        except ValueError as exc:
            raise _failure("Newtonsoft.Json.JsonReaderException", "Newtonsoft.Json", str(exc)) from None
        if not isinstance(request, dict):
            raise _failure("System.ArgumentException", "System.Private.CoreLib", "The HTTP request is not an object.")
        timeout = self._timeout(request.get("timeout"))
        method, url, headers, body = await self._message(request)
        try:
            return await asyncio.wait_for(self._send(method, url, headers, body), timeout.total_seconds())
        except asyncio.TimeoutError:
            if timeout < CLIENT_TIMEOUT:
                # TaskHttpActivityShim: OperationCanceledException becomes a TimeoutException.
                message = f"The operation was canceled. Reached user specified timeout: {_format_timespan(timeout)}."
                raise _failure("System.TimeoutException", "System.Private.CoreLib", message) from None
            message = (
                "The request was canceled due to the configured HttpClient.Timeout of "
                f"{int(CLIENT_TIMEOUT.total_seconds())} seconds elapsing."
            )
            raise _failure("System.Threading.Tasks.TaskCanceledException", "System.Private.CoreLib", message) from None

    @staticmethod
    def _timeout(raw: Any) -> timedelta:
        if not isinstance(raw, str):
            return CLIENT_TIMEOUT
        try:
            requested = parse_timespan(raw)
        except ValueError:
            return CLIENT_TIMEOUT
        return min(requested, CLIENT_TIMEOUT) if requested > timedelta(0) else CLIENT_TIMEOUT

    async def _message(self, request: Mapping[str, Any]) -> tuple[str, str, CIMultiDict[str], bytes | None]:
        """``ConvertToHttpRequestMessage``: method, absolute URI, headers and content."""
        url = request.get("uri")
        if not isinstance(url, str) or "://" not in url:
            raise _failure(
                "System.InvalidOperationException",
                "System.Net.Http",
                "An invalid request URI was provided. Either the request URI must be an absolute URI "
                "or BaseAddress must be set.",
            )
        scheme = url.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise _failure(
                "System.NotSupportedException", "System.Private.CoreLib", f"The '{scheme}' scheme is not supported."
            )
        method = request.get("method") if isinstance(request.get("method"), str) else "GET"
        headers: CIMultiDict[str] = CIMultiDict()
        content_type = ""
        raw_headers = request.get("headers")
        for name, value in raw_headers.items() if isinstance(raw_headers, dict) else ():
            values = value if isinstance(value, list) else [value]
            if str(name).lower() == "content-type":
                for item in values:
                    if "multipart" in str(item):
                        raise _failure(
                            "Microsoft.Azure.WebJobs.Extensions.DurableTask.FunctionFailedException",
                            "Microsoft.Azure.WebJobs.Extensions.DurableTask",
                            "Multipart content is not supported with CallHttpAsync.",
                        )
                    content_type = str(item)
                continue
            for item in values:
                headers.add(str(name), str(item))
        content = request.get("content")
        body: bytes | None = None
        if isinstance(content, str):
            content_type = content_type or "text/plain"
            if content_type.lower() == "application/x-www-form-urlencoded":
                content_type += "; charset=utf-8"
            headers["Content-Type"] = content_type
            body = content.encode("utf-8")
        token = await self._token(request.get("tokenSource"))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return str(method), url, headers, body

    @staticmethod
    async def _token(source: Any) -> str | None:
        """A ``ManagedIdentityTokenSource`` token, through ``DefaultAzureCredential`` as the extension's is."""
        if not isinstance(source, dict):
            return None
        if source.get("kind") != "AzureManagedIdentity":
            raise _failure(
                "System.NotSupportedException",
                "System.Private.CoreLib",
                f"The token source kind '{source.get('kind')}' is not supported.",
            )
        try:
            from azure.identity.aio import DefaultAzureCredential
        except ImportError:
            raise _failure(
                "System.InvalidOperationException",
                "System.Private.CoreLib",
                "A managed identity tokenSource needs azure-identity on the local host "
                "(pip install 'durableagent-devhost[identity]', or azure-identity).",
            ) from None
        credential = DefaultAzureCredential()
        try:
            token = await credential.get_token(str(source.get("resource")))
        except Exception as exc:  # the credential's own explanation is the useful part
            raise _failure(
                "Azure.Identity.AuthenticationFailedException", "Azure.Identity", f"{type(exc).__name__}: {exc}"
            ) from None
        finally:
            await credential.close()
        return str(token.token)

    async def _send(self, method: str, url: str, headers: CIMultiDict[str], body: bytes | None) -> str:
        try:
            async with self._client().request(
                method, url, headers=headers, data=body, allow_redirects=True, max_redirects=MAX_REDIRECTS
            ) as response:
                content = await self._read(response)
                return json.dumps(
                    {
                        "statusCode": response.status,
                        "headers": _response_headers(response.raw_headers),
                        "content": content.decode(_charset(response.headers.get("Content-Type")), errors="replace"),
                    },
                    separators=(",", ":"),
                )
        except aiohttp.TooManyRedirects:
            raise _request_failure("The maximum number of redirects was exceeded.") from None
        except aiohttp.ClientConnectorError as exc:
            # SocketsHttpHandler: "<socket error> (<host>:<port>)", e.g. "Connection refused (127.0.0.1:9)".
            error = exc.os_error
            reason = os.strerror(error.errno) if error.errno else (error.strerror or str(error))
            raise _request_failure(f"{reason} ({exc.host}:{exc.port})") from None
        except (aiohttp.ClientError, LookupError, UnicodeError) as exc:
            raise _request_failure(f"An error occurred while sending the request. {exc}") from None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self._max_response_bytes:
                raise _request_failure(
                    "Cannot write more bytes to the buffer than the configured maximum buffer size: "
                    f"{self._max_response_bytes}."
                )
            chunks.append(chunk)
        return b"".join(chunks)
