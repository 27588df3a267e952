"""The blob SDK's calls sent by ``StdlibTransport`` (issue 13): against a real Azurite, and against
scripted servers for what Azurite will not do on demand (closing kept connections, stalling, TLS).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpRequest, HttpResponse, HttpTransport
from azure.storage.blob import BlobServiceClient
from conftest import AzuriteInstance

from durableagent._blob_transport import StdlibTransport
from durableagent._blobs import service_from_environment

# Scripted servers ---------------------------------------------------------------------------------

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


class ScriptedServer:
    """Accepts connections; ``handle(connection_index, request_index, conn, head)`` answers each request."""

    def __init__(self, handle: Callable[[int, int, socket.socket, bytes], bool], tls: ssl.SSLContext | None = None):
        self._handle = handle
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self._tls is not None:
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            index = self.connections
            self.connections += 1
            threading.Thread(target=self._connection, args=(index, conn), daemon=True).start()

    def _connection(self, index: int, conn: socket.socket) -> None:
        with conn:
            count = 0
            while True:
                try:
                    head = _read_request(conn)
                except OSError:
                    return
                if not head:
                    return
                self.requests.append(head)
                if not self._handle(index, count, conn, head):
                    return
                count += 1

    def close(self) -> None:
        self._listener.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def scripted(handle: Callable[[int, int, socket.socket, bytes], bool]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(handle)
    try:
        yield server
    finally:
        server.close()


def _get(transport: HttpTransport, url: str, **kwargs: Any) -> HttpResponse:  # type: ignore[type-arg]
    response: HttpResponse = transport.send(HttpRequest("GET", url), **kwargs)
    return response


# Through the SDK, against Azurite -----------------------------------------------------------------


@pytest.fixture
def container(azurite: AzuriteInstance) -> Iterator[Any]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string, transport=StdlibTransport())
    client = service.get_container_client(f"transport-{uuid.uuid4().hex[:12]}")
    client.create_container()
    yield client
    client.delete_container()


def test_the_sdk_calls_a_turn_makes_work_through_it(container: Any) -> None:
    container.upload_blob("s/0000000001.json", b'{"turn":1}', overwrite=True)
    assert container.download_blob("s/0000000001.json").readall() == b'{"turn":1}'
    assert [b.name for b in container.list_blobs(name_starts_with="s/")] == ["s/0000000001.json"]
    assert list(container.list_blobs(name_starts_with="none/")) == []
    assert container.get_blob_client("s/0000000001.json").exists()
    container.delete_blob("s/0000000001.json")
    assert not container.get_blob_client("s/0000000001.json").exists()


def test_storage_errors_keep_their_sdk_types(container: Any) -> None:
    with pytest.raises(ResourceNotFoundError):
        container.download_blob("missing.json").readall()
    container.upload_blob("once.json", b"1")
    with pytest.raises(ResourceExistsError):
        container.upload_blob("once.json", b"2")  # no overwrite: the service's 409 is the SDK's error
    assert container.download_blob("once.json").readall() == b"1"


def test_a_listing_of_many_pages_is_followed(container: Any) -> None:
    for index in range(7):
        container.upload_blob(f"p/{index}.json", b"{}")
    pages = container.list_blobs(name_starts_with="p/", results_per_page=3).by_page()
    names = [blob.name for page in pages for blob in page]
    assert names == [f"p/{i}.json" for i in range(7)]


def test_a_larger_body_goes_and_comes_back_whole(container: Any) -> None:
    data = os.urandom(3 * 1024 * 1024)
    container.upload_blob("big.bin", data, overwrite=True)
    assert container.download_blob("big.bin").readall() == data
    assert container.download_blob("big.bin", offset=1000, length=10).readall() == data[1000:1010]


def test_threads_keep_their_own_connections_and_close_ends_them_all(azurite: AzuriteInstance) -> None:
    transport = StdlibTransport()
    container = BlobServiceClient.from_connection_string(
        azurite.connection_string, transport=transport
    ).get_container_client(f"threads-{uuid.uuid4().hex[:12]}")
    container.create_container()
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for turn in range(10):
                container.upload_blob(f"t{index}/{turn}.json", b"{}", overwrite=True)
                assert container.download_blob(f"t{index}/{turn}.json").readall() == b"{}"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(list(container.list_blobs())) == 60
    kept = list(transport._all)
    assert 1 <= len(kept) <= 7  # one per thread that sent, and the main thread's
    transport.close()
    assert all(connection.sock is None for connection in kept)
    # Closed is not broken: the next call opens a new connection.
    assert len(list(container.list_blobs(name_starts_with="t0/"))) == 10


def test_the_product_builds_its_blob_clients_on_it(monkeypatch: pytest.MonkeyPatch, azurite: AzuriteInstance) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    service = service_from_environment("AzureWebJobsStorage")
    assert isinstance(service._pipeline._transport, StdlibTransport)


# Kept connections ---------------------------------------------------------------------------------


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use() -> None:
    def close_after_one(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        conn.sendall(OK)
        return False  # then close, as a server does with an idle keep-alive connection

    with scripted(close_after_one) as server:
        transport = StdlibTransport()
        assert _get(transport, server.url + "/a").body() == b"ok"
        time.sleep(0.1)  # the close has arrived
        assert _get(transport, server.url + "/b").body() == b"ok"
        assert server.connections == 2
        assert len(server.requests) == 2  # nothing was sent twice


def test_a_request_meeting_a_close_on_a_reused_connection_is_sent_once_more_on_a_new_one() -> None:
    def drop_the_second(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        if connection == 0 and request == 1:
            return False  # read the request, then close without an answer (the race with an idle close)
        conn.sendall(OK)
        return True

    with scripted(drop_the_second) as server:
        transport = StdlibTransport()
        assert _get(transport, server.url + "/a").body() == b"ok"
        assert _get(transport, server.url + "/b").body() == b"ok"
        assert server.connections == 2
        assert [head.split(b" ")[1] for head in server.requests] == [b"/a", b"/b", b"/b"]


def test_a_new_connection_closed_without_an_answer_is_a_response_error_not_a_resend() -> None:
    def never_answer(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        return False

    with scripted(never_answer) as server:
        with pytest.raises(ServiceResponseError):
            _get(StdlibTransport(), server.url + "/a")
        assert len(server.requests) == 1


def test_a_stalled_answer_is_a_response_timeout() -> None:
    def stall(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        time.sleep(1.0)
        return False

    with scripted(stall) as server, pytest.raises(ServiceResponseTimeoutError):
        _get(StdlibTransport(read_timeout=0.2), server.url + "/a")


def test_a_read_timeout_given_per_call_wins_and_none_waits_as_long_as_it_takes() -> None:
    # As azure-core's own transports: a per-call read_timeout replaces the transport's, None included.
    def slow(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        time.sleep(0.5)
        conn.sendall(OK)
        return True

    with scripted(slow) as server:
        transport = StdlibTransport(read_timeout=0.1)
        assert _get(transport, server.url + "/a", read_timeout=None).body() == b"ok"
        assert _get(transport, server.url + "/b", read_timeout=2.0).body() == b"ok"
        with pytest.raises(ServiceResponseTimeoutError):
            _get(transport, server.url + "/c")


def test_a_refused_connection_is_a_request_error(free_ports: Callable[[int], list[int]]) -> None:
    (port,) = free_ports(1)
    with pytest.raises(ServiceRequestError):
        _get(StdlibTransport(), f"http://127.0.0.1:{port}/a")


def test_an_answer_that_closes_the_connection_is_not_kept() -> None:
    def close_each(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        return False

    with scripted(close_each) as server:
        transport = StdlibTransport()
        for path in ("/a", "/b", "/c"):
            assert _get(transport, server.url + path).body() == b"ok"
        assert server.connections == 3
        assert len(server.requests) == 3


# What it leaves to the default transport ----------------------------------------------------------


class RecordingTransport(HttpTransport):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.sent: list[tuple[HttpRequest, dict[str, Any]]] = []

    def __enter__(self) -> RecordingTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        self.sent.append((request, kwargs))
        return HttpResponse(request, None)


@pytest.mark.parametrize(
    ("kwargs", "data"),
    [
        ({"proxies": {"http": "http://proxy.invalid:3128"}}, None),
        ({"connection_cert": "/some/client.pem"}, None),
        ({"connection_verify": "/some/ca-bundle.pem"}, None),
        ({}, iter([b"streamed"])),
    ],
    ids=["proxies", "client-certificate", "ca-bundle", "streamed-body"],
)
def test_what_it_does_not_do_goes_to_the_default_transport(kwargs: dict[str, Any], data: Any) -> None:
    fallback = RecordingTransport()
    transport = StdlibTransport(fallback=fallback)
    request = HttpRequest("PUT", "http://127.0.0.1:9/x")
    request.data = data
    transport.send(request, **kwargs)
    assert [sent for sent, _ in fallback.sent] == [request]
    assert len(transport._all) == 0  # it opened nothing itself


def test_a_proxy_from_the_environment_goes_to_the_default_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    fallback = RecordingTransport()
    StdlibTransport(fallback=fallback).send(HttpRequest("GET", "http://storage.invalid/x"))
    assert len(fallback.sent) == 1


def test_a_host_the_environment_exempts_from_the_proxy_is_sent_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    def answer(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        conn.sendall(OK)
        return True

    with scripted(answer) as server:
        fallback = RecordingTransport()
        assert _get(StdlibTransport(fallback=fallback), server.url + "/a").body() == b"ok"
        assert fallback.sent == []


# TLS ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@contextlib.contextmanager
def tls_server(self_signed: tuple[Path, Path]) -> Iterator[ScriptedServer]:
    key, cert = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def answer(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        conn.sendall(OK)
        return True

    server = ScriptedServer(answer, tls=context)
    try:
        yield server
    finally:
        server.close()


def test_https_verifies_the_server_certificate_by_default(self_signed: tuple[Path, Path]) -> None:
    with tls_server(self_signed) as server:
        with pytest.raises((ServiceRequestError, ServiceResponseError)):
            _get(StdlibTransport(), f"https://127.0.0.1:{server.port}/a")
        assert server.requests == []  # nothing was sent to an unverified server


def test_https_without_verification_when_the_caller_turns_it_off(self_signed: tuple[Path, Path]) -> None:
    with tls_server(self_signed) as server:
        transport = StdlibTransport()
        for path in ("/a", "/b"):
            assert _get(transport, f"https://127.0.0.1:{server.port}{path}", connection_verify=False).body() == b"ok"
        assert server.connections == 1  # kept, as over plain HTTP
