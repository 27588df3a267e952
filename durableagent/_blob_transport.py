"""An azure-core transport on the standard library's ``http.client``, for the product's blob SDK clients.

The calls of every turn and superstep go over REST (``_blob_rest``); the SDK still makes the rest
(creating containers, deleting, listings with metadata) and all of them for a container ``BlobRest``
cannot sign for (a SAS connection string). Through the SDK's default transport (``requests`` over
``urllib3``) each call costs 1.2-1.5 ms of CPU on the worker's GIL, through this one 0.6-0.9 ms
(``benchmarks/blob_transport_bench.py``).
Only the sending changes: the SDK's pipeline (authentication, retries, error mapping, XML) is the
same. Anything this transport does not do goes to the default transport unchanged: proxies
(configured or from the environment), client certificates, a CA bundle, multipart or streamed bodies.

Connections are kept per thread and per host, as a ``requests`` session keeps them per pool. A kept
connection the server closed while idle is noticed before use (it reads as closed) or, if it closes
just as the request goes out, the request is sent once more on a new connection, as ``urllib3``
does; the SDK's own retries (with their back-off) are for everything else.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import urllib.request
import weakref
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import (
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpRequest, HttpResponse, HttpTransport
from azure.core.rest import HttpRequest as RestHttpRequest

# The base of azure-core's own sync transport responses (requests, http.client); azure-core < 2.
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict

# The blob SDK's own defaults (azure.storage.blob._shared.constants), which it gives the transport
# it builds itself: a transport passed in gets none, so they are repeated here.
CONNECTION_TIMEOUT_SECONDS = 20.0
READ_TIMEOUT_SECONDS = 60.0
# A reused connection can fail this way when the server closed it as the request went out.
_DROPPED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class StdlibResponse(HttpResponse):
    """A response to a legacy ``azure.core.pipeline.transport.HttpRequest``, read whole."""

    def __init__(self, request: HttpRequest, status: int, reason: str, headers: Any, data: bytes) -> None:
        super().__init__(request, None)
        self.status_code = status
        self.reason = reason
        self.headers = headers
        self.content_type = headers.get("Content-Type")
        self._data = data

    def body(self) -> bytes:
        return self._data

    def stream_download(self, pipeline: Any, **kwargs: Any) -> Iterator[bytes]:
        return _BodyChunks(self, self._data)


class StdlibRestResponse(HttpResponseImpl):
    """A response to an ``azure.core.rest.HttpRequest`` (what the generated clients send), read whole.

    Built on the class azure-core's own sync transports build their responses on.
    """

    def __init__(self, request: RestHttpRequest, status: int, reason: str, headers: Any, data: bytes) -> None:
        super().__init__(
            request=request,
            internal_response=_ReadWhole(),
            status_code=status,
            reason=reason,
            content_type=headers.get("Content-Type"),
            headers=headers,
            stream_download_generator=lambda pipeline, response, **kwargs: _BodyChunks(response, data),
        )
        self._content = data


class _ReadWhole:
    """The "internal response" of a body already read: closing it has nothing left to release."""

    def close(self) -> None:
        pass


class _BodyChunks:
    """What the SDK's downloader expects of a stream: its chunks, the response and the length."""

    def __init__(self, response: Any, data: bytes) -> None:
        self.response = response
        self.content_length = len(data)
        self._chunks = iter([data] if data else [])

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def __len__(self) -> int:
        return self.content_length


class StdlibTransport(HttpTransport):  # type: ignore[type-arg]
    """Sends the SDK's requests with ``http.client``; hands what it does not do to the default transport."""

    def __init__(
        self,
        *,
        connection_timeout: float = CONNECTION_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        fallback: HttpTransport | None = None,  # type: ignore[type-arg]
    ) -> None:
        self._connection_timeout = connection_timeout
        self._read_timeout = read_timeout
        self._fallback = fallback
        self._fallback_lock = threading.Lock()
        self._local = threading.local()
        # Weakly: a thread's connections close with it (its thread-local dict was their only owner).
        self._all: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._proxied: dict[str, bool] = {}
        self._tls: ssl.SSLContext | None = None

    def __enter__(self) -> StdlibTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def open(self) -> None:
        """Connections open on first use."""

    def close(self) -> None:
        """Close every kept connection (of every thread) and the default transport, if it was used."""
        with self._all_lock:
            connections, self._all = list(self._all), weakref.WeakSet()
        for connection in connections:
            connection.close()
        if self._fallback is not None:
            self._fallback.close()

    def send(self, request: HttpRequest | RestHttpRequest, **kwargs: Any) -> Any:
        url = urlsplit(request.url)
        verify = kwargs.get("connection_verify", True)
        body = request.data
        if (
            url.scheme not in ("http", "https")
            or kwargs.get("proxies")
            or kwargs.get("connection_cert")
            or not isinstance(verify, bool)
            or request.files
            or not (body is None or isinstance(body, (bytes, bytearray)))
            or self._behind_proxy(url.scheme, url.hostname or "")
        ):
            return self._default().send(request, **kwargs)
        target = url.path or "/"
        if url.query:
            target = f"{target}?{url.query}"
        status, reason, raw_headers, data = self.exchange(
            request.method,
            url.scheme,
            url.netloc,
            target,
            body,
            dict(request.headers),
            verify=verify,
            read_timeout=kwargs.get("read_timeout", self._read_timeout),
            connection_timeout=kwargs.get("connection_timeout", self._connection_timeout),
        )
        answer_headers = case_insensitive_dict(raw_headers)
        if isinstance(request, RestHttpRequest):
            return StdlibRestResponse(request, status, reason, answer_headers, data)
        return StdlibResponse(request, status, reason, answer_headers, data)

    def exchange(
        self,
        method: str,
        scheme: str,
        netloc: str,
        target: str,
        body: bytes | bytearray | None,
        headers: dict[str, str],
        *,
        verify: bool = True,
        read_timeout: float | None,
        connection_timeout: float | None,
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """One request on this thread's kept connection to ``scheme://netloc``: status, reason, headers, body.

        A reused connection the server dropped as the request went out is replaced and the request
        sent once more; nothing else is retried here (the caller's policy decides). A timeout of
        ``None`` waits as long as it takes, as a socket's does.

        Raises:
            ServiceRequestError: Could not connect.
            ServiceResponseError: The exchange failed after connecting.
        """
        connection, reused = self._connection(scheme, netloc, verify, connection_timeout)
        try:
            try:
                response = self._exchange(connection, method, target, body, headers, read_timeout)
            except _DROPPED:
                if not reused:
                    raise
                # Closed by the server as this request went out: once more, on a fresh connection.
                self._discard(connection)
                connection, _ = self._connection(scheme, netloc, verify, connection_timeout)
                response = self._exchange(connection, method, target, body, headers, read_timeout)
        except (ServiceRequestError, ServiceResponseError):
            self._discard(connection)
            raise
        except (OSError, http.client.HTTPException) as exc:
            self._discard(connection)
            raise _mapped(exc) from exc
        except BaseException:
            self._discard(connection)
            raise
        status, reason, raw_headers, data, keep = response
        if not keep:
            self._discard(connection)
        return status, reason, raw_headers, data

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        body: bytes | bytearray | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> tuple[int, str, list[tuple[str, str]], bytes, bool]:
        if connection.sock is None:
            try:
                connection.connect()
            except TimeoutError as exc:
                raise ServiceRequestTimeoutError(f"Could not connect within {connection.timeout} s.") from exc
            except OSError as exc:
                raise ServiceRequestError(f"Could not connect: {type(exc).__name__}.") from exc
        connection.sock.settimeout(timeout)
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, response.reason, response.getheaders(), data, not response.will_close

    def _connection(
        self, scheme: str, netloc: str, verify: bool, timeout: float | None
    ) -> tuple[http.client.HTTPConnection, bool]:
        kept: dict[tuple[str, str, bool], http.client.HTTPConnection] | None = getattr(self._local, "kept", None)
        if kept is None:
            kept = self._local.kept = {}
        key = (scheme, netloc, verify)
        connection = kept.get(key)
        if connection is not None and connection.sock is not None and not _closed_by_peer(connection.sock):
            return connection, True
        if connection is not None:
            self._discard(connection)
        if scheme == "https":
            connection = http.client.HTTPSConnection(netloc, timeout=timeout, context=self._context(verify))
        else:
            connection = http.client.HTTPConnection(netloc, timeout=timeout)
        kept[key] = connection
        with self._all_lock:
            self._all.add(connection)
        return connection, False

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        with self._all_lock:
            self._all.discard(connection)
        kept: dict[Any, http.client.HTTPConnection] = getattr(self._local, "kept", {})
        for key, value in list(kept.items()):
            if value is connection:
                del kept[key]

    def _context(self, verify: bool) -> ssl.SSLContext:
        if not verify:
            unverified = ssl.create_default_context()
            unverified.check_hostname = False
            unverified.verify_mode = ssl.CERT_NONE
            return unverified
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _behind_proxy(self, scheme: str, host: str) -> bool:
        key = f"{scheme}://{host}"
        known = self._proxied.get(key)
        if known is None:
            known = self._proxied[key] = behind_proxy(scheme, host)
        return known

    def _default(self) -> HttpTransport:  # type: ignore[type-arg]
        with self._fallback_lock:
            if self._fallback is None:
                from azure.core.pipeline.transport import RequestsTransport

                self._fallback = RequestsTransport(
                    connection_timeout=self._connection_timeout, read_timeout=self._read_timeout
                )
            return self._fallback


def behind_proxy(scheme: str, host: str) -> bool:
    """Whether the environment sends ``host`` through a proxy (``*_PROXY``, ``NO_PROXY``, read as requests does)."""
    proxies = urllib.request.getproxies()
    return bool(proxies.get(scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(host)


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle kept connection that reads as ready has been closed (or broken) by the server."""
    try:
        if hasattr(select, "poll"):  # no descriptor-number limit, unlike select()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _mapped(exc: OSError | http.client.HTTPException) -> ServiceResponseError:
    """The SDK's error for a failure while sending or reading, so that its retry policy applies."""
    if isinstance(exc, TimeoutError):
        return ServiceResponseTimeoutError("No response within the read timeout.")
    return ServiceResponseError(f"The exchange failed: {type(exc).__name__}.")
