"""The turn's blob calls made over REST (issue 13): signed as the SDK signs, checked by a real Azurite
(which verifies Shared Key signatures), and the edges Azurite will not produce on demand scripted.
"""

from __future__ import annotations

import base64
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy
from conftest import AzuriteInstance
from test_blob_transport import scripted

from durableagent._blob_rest import API_VERSION, BlobRest
from durableagent._session_id import AgentSessionId
from durableagent._transcript import TranscriptStore

KEY = base64.b64encode(b"k" * 64).decode()
AWKWARD = [
    "plain.json",
    "with space.json",
    "ünïcödé/ß.json",
    "per%cent+plus.json",
    "tilde~and'quote.json",
    "a/b/c.json",
]

# Signatures, against the SDK's own signer -----------------------------------------------------------


def _sdk_signature(method: str, url: str, headers: dict[str, str]) -> str:
    request = PipelineRequest(HttpRequest(method, url, headers=dict(headers)), PipelineContext(None))
    SharedKeyCredentialPolicy("acct", KEY).on_request(request)
    return str(request.http_request.headers["Authorization"])


class _Capture:
    """A sender stand-in that keeps the request instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def exchange(
        self, method: str, scheme: str, netloc: str, target: str, body: Any, headers: dict[str, str], **kwargs: Any
    ) -> Any:
        self.sent.append((method, f"{scheme}://{netloc}{target}", dict(headers)))
        raise RuntimeError("captured")


@pytest.mark.parametrize("name", AWKWARD)
@pytest.mark.parametrize("call", ["put", "get", "put-empty"])
def test_the_shared_key_signature_is_the_sdks(name: str, call: str) -> None:
    capture = _Capture()
    rest = BlobRest("https://acct.blob.core.windows.net/transcripts", account_name="acct", account_key=KEY,
                    http=capture)  # fmt: skip
    with pytest.raises(RuntimeError, match="captured"):
        if call == "get":
            rest.get(name)
        else:
            rest.put(name, b"" if call == "put-empty" else b'{"a":1}')
    method, url, headers = capture.sent[0]
    ours = headers.pop("Authorization")
    assert ours == _sdk_signature(method, url, headers)


def test_metadata_is_signed_as_the_sdk_signs_it() -> None:
    capture = _Capture()
    rest = BlobRest("https://acct.blob.core.windows.net/c", account_name="acct", account_key=KEY,
                    http=capture)  # fmt: skip
    metadata = {"workflow": "w%20x", "previous": "", "iteration": "3", "timestamp": "2026-12-03T19:00:00Z", "z9": "v"}
    with pytest.raises(RuntimeError, match="captured"):
        rest.put("checkpoints/x.json", b"{}", metadata)
    method, url, headers = capture.sent[0]
    ours = headers.pop("Authorization")
    assert ours == _sdk_signature(method, url, headers)
    assert headers["x-ms-meta-previous"] == ""


@pytest.mark.parametrize("key", ["Upper", "with-dash", "under_score", "1digit", ""])
def test_metadata_keys_outside_the_signed_order_are_refused(key: str) -> None:
    rest = BlobRest("https://acct.blob.core.windows.net/c", account_name="acct", account_key=KEY)
    with pytest.raises(ValueError, match="metadata"):
        rest.put("x.json", b"{}", {key: "v"})
    with pytest.raises(ValueError, match="metadata"):
        rest.put("x.json", b"{}", {"fine": "ü"})


@pytest.mark.parametrize("prefix", ["agent-x/key/0000000001", "odd prefix/ü%+&=?#/", ""])
def test_a_listing_is_signed_as_the_sdk_signs_it(prefix: str) -> None:
    capture = _Capture()
    rest = BlobRest("https://acct.blob.core.windows.net/transcripts", account_name="acct", account_key=KEY,
                    http=capture)  # fmt: skip
    with pytest.raises(RuntimeError, match="captured"):
        rest.names(prefix, page_size=7)
    method, url, headers = capture.sent[0]
    ours = headers.pop("Authorization")
    assert ours == _sdk_signature(method, url, headers)
    assert headers["x-ms-version"] == API_VERSION


# Against Azurite ------------------------------------------------------------------------------------


@pytest.fixture
def container(azurite: AzuriteInstance) -> Iterator[ContainerClient]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        f"rest-{uuid.uuid4().hex[:12]}"
    )
    client.create_container()
    yield client
    client.delete_container()


def _rest(container: ContainerClient) -> BlobRest:
    rest = BlobRest.for_container(container)
    assert rest is not None
    return rest


def test_what_it_writes_the_sdk_reads_and_the_other_way_round(container: ContainerClient) -> None:
    rest = _rest(container)
    for name in AWKWARD:
        rest.put(name, name.encode())
        assert container.download_blob(name).readall() == name.encode()
        container.upload_blob(name, b"from the sdk", overwrite=True)
        assert rest.get(name) == b"from the sdk"
    assert rest.names("") == sorted(b.name for b in container.list_blobs())


def test_metadata_reaches_the_service(container: ContainerClient) -> None:
    metadata = {"workflow": "w", "previous": "", "iteration": "12"}
    _rest(container).put("m/rest.json", b"{}", metadata)
    container.upload_blob("m/sdk.json", b"{}", metadata=metadata)
    rest, sdk = container.list_blobs(name_starts_with="m/", include=["metadata"])
    assert rest.metadata["workflow"] == "w" and rest.metadata["iteration"] == "12"
    assert rest.metadata == sdk.metadata  # the empty value comes back as the SDK's own write does


def test_a_missing_blob_reads_as_none_and_a_missing_container_is_not_found(azurite: AzuriteInstance) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    rest = _rest(service.get_container_client(f"none-{uuid.uuid4().hex[:12]}"))
    assert rest.get("missing.json") is None
    with pytest.raises(ResourceNotFoundError):
        rest.names("")
    with pytest.raises(ResourceNotFoundError):
        rest.put("x.json", b"{}")


def test_a_listing_follows_its_pages_and_keeps_to_its_prefix(container: ContainerClient) -> None:
    rest = _rest(container)
    for index in range(11):
        rest.put(f"p/{index:02d}.json", b"{}")
    rest.put("pq.json", b"{}")
    assert rest.names("p/", page_size=3) == [f"p/{i:02d}.json" for i in range(11)]
    assert rest.names("p/0", page_size=100) == [f"p/{i:02d}.json" for i in range(10)]
    assert rest.names("nothing/") == []


def test_a_wrong_key_is_refused_as_an_error_not_as_missing(container: ContainerClient) -> None:
    wrong = BlobRest(container.primary_endpoint, account_name=container.account_name, account_key=KEY)
    with pytest.raises(HttpResponseError) as raised:
        wrong.put("x.json", b"{}")
    assert not isinstance(raised.value, ResourceNotFoundError)
    assert "403" in str(raised.value)
    assert not list(container.list_blobs())


def test_the_transcript_store_makes_its_turn_calls_over_rest(container: ContainerClient) -> None:
    store = TranscriptStore(container)
    assert store._calls.rest is not None
    session = AgentSessionId("bench", "s/1 ü")
    store.write_turn(session, 0, {"turn": 0, "correlationId": "c-1"})
    store.write_journal(session, 1, "c-2", "model-0", {"x": 1})
    assert store.read_turn(session, 0) == {"turn": 0, "correlationId": "c-1"}
    assert store.attempt(session, 1, "c-2").journal == {"model-0": {"x": 1}}
    assert store.attempt(session, 0, "c-1").record == {"turn": 0, "correlationId": "c-1"}
    assert store.attempt(session, 2, "c-3").record is None


# Which containers it takes ----------------------------------------------------------------------


class _Token:
    def __init__(self, lifetime: float) -> None:
        self.calls = 0
        self.lifetime = lifetime

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        assert scopes == ("https://storage.azure.com/.default",)
        return AccessToken(f"token-{self.calls}", int(time.time() + self.lifetime))


def test_it_takes_a_key_or_an_identity_and_leaves_a_sas_or_a_proxy_to_the_sdk(
    azurite: AzuriteInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client("c")
    assert BlobRest.for_container(keyed) is not None
    identity = BlobServiceClient("https://acct.blob.core.windows.net", credential=_Token(3600)).get_container_client(
        "c"
    )
    assert BlobRest.for_container(identity) is not None
    sas = BlobServiceClient.from_connection_string(
        "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2021-08-06&sig=abc"
    ).get_container_client("c")
    assert BlobRest.for_container(sas) is None
    assert BlobRest.for_container(object()) is None  # type: ignore[arg-type]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert BlobRest.for_container(identity) is None


def test_a_bearer_token_is_reused_until_it_nears_its_end() -> None:
    seen: list[str] = []

    def answer(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        auth = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"authorization:"))
        seen.append(auth.split(b":", 1)[1].strip().decode())
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        return True

    with scripted(answer) as server:
        lasting, expiring = _Token(3600), _Token(60)
        for credential in (lasting, expiring):
            rest = BlobRest(f"{server.url}/acct/c", token_credential=credential)  # type: ignore[arg-type]
            for _ in range(3):
                rest.put("x.json", b"{}")
    assert lasting.calls == 1  # an hour left: one token for every call
    assert expiring.calls == 3  # a minute left is within the margin: renewed each time
    assert seen == ["Bearer token-1"] * 3 + ["Bearer token-1", "Bearer token-2", "Bearer token-3"]


# Retries ------------------------------------------------------------------------------------------


def test_a_busy_answer_is_retried_and_a_bad_request_is_not() -> None:
    def busy_once(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        if b"/busy" in head.split(b"\r\n")[0] and request == 0 and connection == 0:
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 0\r\n\r\n")
        elif b"/bad" in head.split(b"\r\n")[0]:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nx-ms-error-code: InvalidInput\r\nContent-Length: 0\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        return True

    with scripted(busy_once) as server:
        rest = BlobRest(f"{server.url}/acct/c", account_name="acct", account_key=KEY)
        rest.put("busy", b"{}")
        assert len(server.requests) == 2
        with pytest.raises(HttpResponseError, match="400 InvalidInput"):
            rest.put("bad", b"{}")
        assert len(server.requests) == 3


def test_still_busy_after_the_last_retry_is_the_services_answer() -> None:
    def always_busy(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nx-ms-error-code: ServerBusy\r\nContent-Length: 0\r\n"
                     b"Retry-After: 0\r\n\r\n")  # fmt: skip
        return True

    with scripted(always_busy) as server:
        rest = BlobRest(f"{server.url}/acct/c", account_name="acct", account_key=KEY)
        with pytest.raises(HttpResponseError, match="503 ServerBusy"):
            rest.get("x.json")
        assert len(server.requests) == 4  # the first try and three status retries


def test_a_connection_closed_without_an_answer_is_sent_again() -> None:
    def drop_first(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        if connection == 0:
            return False  # closed with no answer, on a new connection: a read error to Retry
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        return True

    with scripted(drop_first) as server:
        rest = BlobRest(f"{server.url}/acct/c", account_name="acct", account_key=KEY)
        assert rest.get("x.json") == b"{}"
        assert len(server.requests) == 2
        # Each try is signed anew (its own x-ms-date), on the same path.
        assert all(r.split(b"\r\n")[0] == b"GET /acct/c/x.json HTTP/1.1" for r in server.requests)


def test_an_unreachable_account_is_a_request_error(free_ports: Callable[[int], list[int]]) -> None:
    (port,) = free_ports(1)
    rest = BlobRest(f"http://127.0.0.1:{port}/acct/c", account_name="acct", account_key=KEY)
    began = time.monotonic()
    with pytest.raises(ServiceRequestError):
        rest.get("x.json")
    assert time.monotonic() - began < 10  # a few quick retries, not the SDK's 15 s back-off


def test_a_page_limit_stops_a_listing_that_never_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    endless = (b'<?xml version="1.0"?><EnumerationResults><Blobs><Blob><Name>n</Name></Blob></Blobs>'
               b"<NextMarker>again</NextMarker></EnumerationResults>")  # fmt: skip

    def answer(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(endless) + endless)
        return True

    monkeypatch.setattr("durableagent._blob_rest._MAX_LIST_PAGES", 5)
    with scripted(answer) as server:
        rest = BlobRest(f"{server.url}/acct/c", account_name="acct", account_key=KEY)
        with pytest.raises(HttpResponseError, match="did not end"):
            rest.names("")
        assert len(server.requests) == 5


def test_an_encoded_name_in_a_listing_is_decoded() -> None:
    body = (b'<?xml version="1.0"?><EnumerationResults><Blobs><Blob><Name Encoded="true">a%EF%BF%BFb</Name>'
            b"</Blob><Blob><Name>plain</Name></Blob></Blobs><NextMarker/></EnumerationResults>")  # fmt: skip

    def answer(connection: int, request: int, conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return True

    with scripted(answer) as server:
        rest = BlobRest(f"{server.url}/acct/c", account_name="acct", account_key=KEY)
        assert rest.names("") == ["a\uffffb", "plain"]
