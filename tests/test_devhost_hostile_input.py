"""Issue 10, the local host's side: hostile input gets a JSON 4xx, never a 5xx, and nothing leaks.

End to end against ``tests/apps/durable_basics`` on a real host subprocess with Azurite, over raw HTTP
(``http.client`` and sockets) so malformed requests really reach the server. One host without keys
and one with ``--enforce-keys`` serve the module.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, assert_eventually, copy_app

from durableagent.devhost._logging import ConsoleFormatter, escape_control
from durableagent.devhost._management_http import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_PAGE_SIZE

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "durable_basics"
RPC = "/durabletask"
WEBHOOK = "/runtime/webhooks/durabletask"
# What must never reach a caller: Python's own traces, exception names and file paths.
LEAKS = re.compile(r"Traceback|\.py[\"']|\b\w+(?:Error|Exception): |File \"")


def _env(azurite: AzuriteInstance, hub: str, retries: Path) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": hub, "RETRY_STATE_DIR": str(retries)}


def _start_host(azurite: AzuriteInstance, root: Path, hub: str, extra: list[str]) -> HostProcess:
    retries = root / "retries"
    retries.mkdir()
    return HostProcess(copy_app(APP, root / "app"), env=_env(azurite, hub, retries), extra_args=extra)


@pytest.fixture(scope="module")
def host(azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    with _start_host(azurite, tmp_path_factory.mktemp("hostile"), "E2eHostile", []) as proc:
        yield proc


@pytest.fixture(scope="module")
def keyed(azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    with _start_host(azurite, tmp_path_factory.mktemp("hostile-keys"), "E2eHostileKeys", ["--enforce-keys"]) as proc:
        yield proc


def _keys(host: HostProcess) -> dict[str, Any]:
    keys: dict[str, Any] = json.loads((host.app_dir / ".durableagent" / "keys.json").read_text())
    return keys


# Raw HTTP ---------------------------------------------------------------------------------------------


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def error_code(self) -> str:
        """The ``error.code`` of a JSON error answer (fails the test when it is not one)."""
        assert self.headers.get("content-type", "").startswith("application/json"), (self.status, self.headers)
        code = json.loads(self.body)["error"]["code"]
        assert isinstance(code, str) and code
        return code

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.body[:300]!r})"


def send(
    host: HostProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str | bytes] | None = None,
    timeout: float = 30,
) -> Answer:
    """One request on a fresh connection; ``path`` is sent as given (already percent-encoded)."""
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=timeout)
    try:
        own_host = any(name.lower() == "host" for name in headers or {})
        connection.putrequest(method, path, skip_host=own_host, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def send_raw(host: HostProcess, data: bytes) -> Answer:
    """Bytes straight onto the socket (for what ``http.client`` refuses to send); the answer parsed."""
    with socket.create_connection(("127.0.0.1", host.port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            head, _, rest = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if length and len(rest) >= int(length.group(1)):
                break
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return Answer(status, headers, body)


def _json_body(value: Any) -> tuple[bytes, dict[str, str | bytes]]:
    return json.dumps(value).encode(), {"Content-Type": "application/json"}


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _start_waiting(host: HostProcess) -> str:
    """An ``approval`` instance, running and waiting for its event."""
    instance_id = f"hostile-{uuid.uuid4().hex[:12]}"
    answer = send(host, "POST", f"{RPC}/orchestrators/approval/{instance_id}", *_json_body({"timeoutSeconds": 600}))
    assert answer.status == 202, answer
    host.wait_for(instance_id, done=lambda s: s["runtimeStatus"] == "Running")
    return instance_id


# 1. JSON on every 4xx the host produces --------------------------------------------------------------


def test_host_4xx_answers_are_json_with_a_stable_code(host: HostProcess) -> None:
    assert send(host, "GET", "/no/such/route").error_code() == "route_not_found"
    # A method a route does not take stays a 404, as on the Functions host (start is POST only).
    assert send(host, "GET", "/api/start/chaining").status == 404
    assert send(host, "GET", "/api/start/chaining").error_code() == "route_not_found"
    assert send(host, "PUT", f"{RPC}/instances").error_code() == "route_not_found"
    assert send(host, "PATCH", f"{WEBHOOK}/instances/x").error_code() == "route_not_found"
    assert send(host, "GET", "/admin/host/status").error_code() == "route_not_found"
    # 413 from Content-Length alone, for a function route (100 MiB) and the management API (16 MiB).
    huge = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    answer = send_raw(host, huge % (b"/api/start/chaining", 200 * 1024 * 1024))
    assert (answer.status, answer.error_code()) == (413, "body_too_large")
    answer = send_raw(host, huge % (b"/durabletask/orchestrators/chaining", MAX_BODY_BYTES + 1))
    assert (answer.status, answer.error_code()) == (413, "body_too_large")
    # aiohttp's own protocol errors: bad request line, bad header, header and URL over 8190 bytes.
    malformed = [
        b"GE T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"GET /%zz%ff HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for request in malformed:
        answer = send_raw(host, request)
        assert 400 <= answer.status < 500, (request[:40], answer)
        assert answer.error_code(), request[:40]
        assert not LEAKS.search(answer.body.decode("utf-8", "replace")), answer


def test_a_function_answer_is_left_as_the_function_wrote_it(host: HostProcess) -> None:
    # The starter's 202 is the SDK's check-status response, not rewritten by the host.
    answer = send(host, "POST", "/api/start/chaining", *_json_body(None))
    assert answer.status == 202 and "statusQueryGetUri" in json.loads(answer.body), answer


# 2. Management API: every caller-supplied value is bounded -------------------------------------------


@pytest.mark.parametrize("top", ["0", "-1", str(MAX_PAGE_SIZE + 1), "99999999999999999999", "1e3", "x"])
def test_paging_top_out_of_bounds_is_a_400(host: HostProcess, top: str) -> None:
    answer = send(host, "GET", f"{RPC}/instances?top={quote(top)}")
    assert (answer.status, answer.error_code()) == (400, "invalid_query_parameter"), answer
    # The extension's fields stay beside the host's error object (the Python SDK reads ExceptionMessage).
    assert "ExceptionMessage" in json.loads(answer.body)


def test_continuation_tokens_round_trip_and_garbage_is_a_400(host: HostProcess) -> None:
    prefix = f"page-{uuid.uuid4().hex[:8]}-"
    for n in range(3):
        assert send(host, "POST", f"{RPC}/orchestrators/chaining/{prefix}{n}", *_json_body(None)).status == 202
    seen: list[str] = []
    token: str | None = None
    while True:
        headers: dict[str, str | bytes] = {"x-ms-continuation-token": token} if token else {}
        answer = send(host, "GET", f"{RPC}/instances?top=1&instanceIdPrefix={prefix}", headers=headers)
        assert answer.status == 200, answer
        seen += [item["instanceId"] for item in json.loads(answer.body)]
        token = answer.headers.get("x-ms-continuation-token")
        if not token:
            break
    assert seen == [f"{prefix}{n}" for n in range(3)]
    for garbage in [b"not a token!", b"\xff\xfe\xfd", b"A" * 5000, b"%00", b"_w"]:
        answer = send(host, "GET", f"{RPC}/instances?top=1", headers={"x-ms-continuation-token": garbage})
        assert (answer.status, answer.error_code()) == (400, "invalid_continuation_token"), (garbage[:20], answer)


def test_deeply_nested_bodies_are_a_400_on_every_route_that_parses_one(host: HostProcess) -> None:
    waiting = _start_waiting(host)
    deep = _deep(10_000)
    json_type: dict[str, str | bytes] = {"Content-Type": "application/json"}
    routes = [
        f"{RPC}/orchestrators/chaining",
        f"{RPC}/instances/{waiting}/raiseEvent/approval",
        f"{WEBHOOK}/entities/counter/deep?op=reset",
        f"{RPC}/entities/counter/deep?op=reset",
    ]
    for path in routes:
        answer = send(host, "POST", path, deep, json_type)
        assert (answer.status, answer.error_code()) == (400, "json_too_deep"), (path, answer)
        # At the bound itself the body is accepted.
        at_bound = send(host, "POST", path.replace("approval", "other"), _deep(MAX_JSON_DEPTH), json_type)
        assert at_bound.status == 202, (path, at_bound)
    # terminate takes no body: a deep one is ignored, not parsed.
    assert send(host, "POST", f"{RPC}/instances/{waiting}/terminate?reason=r", deep, json_type).status == 202


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", f"{RPC}/instances/{'a' * 257}", "invalid_instance_id"),
        ("GET", f"{RPC}/instances/a%01b", "invalid_instance_id"),
        ("POST", f"{RPC}/orchestrators/chaining/%40entity", "invalid_instance_id"),
        ("POST", f"{RPC}/orchestrators/chaining/a%23b", "invalid_instance_id"),
        ("POST", f"{RPC}/orchestrators/{'n' * 300}", "orchestrator_not_found"),
        ("POST", f"{RPC}/orchestrators/no_such_orchestrator", "orchestrator_not_found"),
        ("POST", f"{RPC}/orchestrators/chaining?version={'v' * 300}", "invalid_query_parameter"),
        ("POST", f"{RPC}/orchestrators/chaining?timeout=nan", "invalid_query_parameter"),
        ("POST", f"{RPC}/orchestrators/chaining?timeout=1e309", "invalid_query_parameter"),
        ("POST", f"{RPC}/entities/counter/a%0Ab?op=add", "invalid_entity_id"),
        ("POST", f"{RPC}/entities/counter/{'k' * 1025}?op=add", "invalid_entity_id"),
        ("POST", f"{RPC}/entities/counter/k?op={'o' * 300}", "invalid_operation"),
        ("POST", f"{RPC}/entities/counter/k", "invalid_operation"),
        ("POST", f"{RPC}/entities/no_such_entity/k?op=add", "entity_not_found"),
        ("DELETE", f"{RPC}/entities/no_such_entity/k", "entity_not_found"),
        ("GET", f"{RPC}/entities/{'e' * 300}", "invalid_entity_id"),
        ("GET", f"{RPC}/instances?createdTimeFrom=yesterday", "invalid_query_parameter"),
        ("GET", f"{RPC}/instances?createdTimeFrom=0001-01-01T00:00:00%2B14:00", "invalid_query_parameter"),
        ("GET", f"{RPC}/instances?runtimeStatus=Running,Sleeping", "invalid_query_parameter"),
        ("GET", f"{RPC}/instances?runtimeStatus={'Running,' * 100}", "invalid_query_parameter"),
        ("GET", f"{RPC}/instances?showHistory=maybe", "invalid_query_parameter"),
        ("GET", f"{RPC}/instances?showInput=1", "invalid_query_parameter"),
        ("GET", f"{RPC}/instances?instanceIdPrefix={'p' * 300}", "invalid_query_parameter"),
        ("GET", f"{RPC}/instances/x?returnInternalServerErrorOnFailure=yes", "invalid_query_parameter"),
        ("GET", f"{RPC}/entities/counter?fetchState=please", "invalid_query_parameter"),
        ("DELETE", f"{RPC}/instances", "invalid_query_parameter"),
    ],
)
def test_identifiers_and_query_parameters_are_bounded(host: HostProcess, method: str, path: str, code: str) -> None:
    answer = send(host, method, path, b"" if method == "POST" else None)
    assert (answer.status, answer.error_code()) == (400, code), answer


def test_unknown_instances_and_entities_are_json_404s(host: HostProcess) -> None:
    for method, path in [
        ("GET", f"{RPC}/instances/nobody-{uuid.uuid4().hex}"),
        ("POST", f"{RPC}/instances/nobody/terminate"),
        ("DELETE", f"{WEBHOOK}/instances/nobody"),
    ]:
        answer = send(host, method, path, b"" if method == "POST" else None)
        assert (answer.status, answer.error_code()) == (404, "instance_not_found"), (path, answer)
    answer = send(host, "GET", f"{RPC}/entities/counter/nobody-{uuid.uuid4().hex}")
    assert (answer.status, answer.error_code()) == (404, "entity_not_found")


def test_an_entity_signal_the_host_accepts_is_one_it_can_run(host: HostProcess) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    text = {"Content-Type": "text/plain"}
    # Refused up front: bodies the host could not decode, and entities no function serves.
    assert send(host, "POST", f"{RPC}/entities/counter/{key}?op=add", b"\xff\xfe", text).status == 400
    assert send(host, "POST", f"{RPC}/entities/nobody/{key}?op=add", *_json_body("5")).status == 400
    # Accepted, and run: the body as the Python SDK's client sends it (its input JSON, as a JSON string).
    assert send(host, "POST", f"{RPC}/entities/counter/{key}?op=add", *_json_body(json.dumps(5))).status == 202

    def counted() -> bool:
        answer = send(host, "GET", f"{RPC}/entities/counter/{key}")
        return answer.status == 200 and json.loads(answer.body) == 5

    assert_eventually(counted, timeout=30, message=host.log()[-3000:])


# 3. Keys on every management path --------------------------------------------------------------------


def test_with_enforced_keys_every_management_path_needs_a_key(keyed: HostProcess) -> None:
    keys = _keys(keyed)
    system = keys["systemKeys"]["durabletask_extension"]
    function_key = keys["functionKeys"]["default"]
    paths = [
        ("GET", f"{RPC}/instances"),
        ("GET", f"{RPC}/instances/some-id"),
        ("GET", f"{RPC}/entities/counter/k?fetchState=true"),
        ("GET", f"{RPC}/entities/counter?fetchState=true"),
        ("POST", f"{RPC}/entities/counter/k?op=add"),
        ("POST", f"{RPC}/orchestrators/chaining"),
        ("DELETE", f"{RPC}/instances/some-id"),
        ("GET", f"{WEBHOOK}/instances"),
        ("GET", f"{WEBHOOK}/entities/counter/k"),
        ("POST", f"{WEBHOOK}/orchestrators/chaining"),
    ]
    for method, path in paths:
        body = b"1" if method == "POST" else None
        json_type: dict[str, str | bytes] = {"Content-Type": "application/json"}
        for wrong in ({}, {"x-functions-key": function_key}, {"x-functions-key": "wrong"}):
            answer = send(keyed, method, path, body, {**json_type, **wrong})
            assert (answer.status, answer.error_code()) == (401, "unauthorized"), (method, path, wrong, answer)
        for right in (system, keys["masterKey"]):
            answer = send(keyed, method, path, body, {**json_type, "x-functions-key": right})
            assert answer.status < 400 or answer.status == 404, (method, path, answer)
            separator = "&" if "?" in path else "?"
            answer = send(keyed, method, f"{path}{separator}code={right}", body, json_type)
            assert answer.status < 400 or answer.status == 404, (method, path, answer)
    # The host's admin paths are not served, whatever key is shown.
    answer = send(keyed, "GET", "/admin/host/status", headers={"x-functions-key": keys["masterKey"]})
    assert (answer.status, answer.error_code()) == (404, "route_not_found")


def test_with_enforced_keys_the_sdk_client_still_works(keyed: HostProcess) -> None:
    keys = _keys(keyed)
    # start_new and the waits run through the durableClient binding's rpcBaseUrl (key in its path).
    answer = send(
        keyed, "POST", "/api/startwait/chaining", headers={"x-functions-key": keys["functionKeys"]["default"]}
    )
    assert answer.status == 200, (answer, keyed.log()[-3000:])
    assert json.loads(answer.body) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    # That path segment is not a key for anything else: the plain RPC prefix still wants a key.
    assert send(keyed, "GET", f"{RPC}/instances").status == 401


# 4. One log record, one line ----------------------------------------------------------------------------


def test_console_log_lines_cannot_be_forged() -> None:
    formatter = ConsoleFormatter("[%(asctime)s] %(message)s")
    forged = "user\n[2026-01-01 00:00:00,000] Host started\r\x1b[2K\u2028\u2029\x85"
    record = logging.LogRecord(
        "durableagent.devhost.queue", logging.WARNING, __file__, 1, "role %r -> %s", ("x", forged), None
    )
    line = formatter.format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "\u2028" not in line and "\u2029" not in line and "\x85" not in line
    assert line.endswith("-> user\\n[2026-01-01 00:00:00,000] Host started\\r\\x1b[2K\\u2028\\u2029\\x85")
    # A traceback (exc_info) keeps its own lines after the one-line message.
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "a\nb", None, sys.exc_info())
    lines = formatter.format(failed).splitlines()
    assert lines[0].endswith("a\\nb") and lines[1] == "Traceback (most recent call last):"
    assert escape_control("plain text") == "plain text"


def test_the_host_console_escapes_caller_text(host: HostProcess) -> None:
    # The failing orchestrator's error (caller-visible text with line breaks) is logged as one line.
    answer = send(host, "POST", f"{RPC}/orchestrators/failing", *_json_body(None))
    assert answer.status == 202
    instance_id = json.loads(answer.body)["id"]
    host.wait_for(instance_id)

    def logged() -> bool:
        return any("Exception while executing function: Functions.failing." in line for line in host.log().splitlines())

    assert_eventually(logged, timeout=30, message=host.log()[-3000:])
    line = next(
        line for line in host.log().splitlines() if "Exception while executing function: Functions.failing." in line
    )
    assert "Result: Failure\\nException: " in line, line
    assert not any(text.startswith("Exception: ") for text in host.log().splitlines())


# 5. Other malformed input: surrogates, encodings, Host headers, huge query strings ---------------------


def test_lone_surrogates_bad_encodings_and_hosts_are_4xx(host: HostProcess) -> None:
    waiting = _start_waiting(host)
    surrogate = b'{"message":"\\ud800"}'
    json_type: dict[str, str | bytes] = {"Content-Type": "application/json"}
    for path in [
        f"{RPC}/orchestrators/chaining",
        f"{RPC}/instances/{waiting}/raiseEvent/approval",
        f"{RPC}/entities/counter/s?op=add",
    ]:
        answer = send(host, "POST", path, surrogate, json_type)
        assert (answer.status, answer.error_code()) == (400, "invalid_json"), (path, answer)
        answer = send(host, "POST", path, b'"\xff\xfe"', json_type)
        assert (answer.status, answer.error_code()) == (400, "invalid_encoding"), (path, answer)
        answer = send(host, "POST", path, b"1", {"Content-Type": "application/json; charset=rot13"})
        assert (answer.status, answer.error_code()) == (400, "unsupported_charset"), (path, answer)
        answer = send(host, "POST", path, b"1" * 5000, json_type)
        assert (answer.status, answer.error_code()) == (400, "invalid_json"), (path, answer)
    for bad_host in [b"evil.example/<script>", b"a b", b"x:99999999", b"[::1", b"\xff"]:
        answer = send_raw(host, b"GET /durabletask/instances HTTP/1.1\r\nHost: " + bad_host + b"\r\n\r\n")
        assert (answer.status, answer.error_code()) == (400, "invalid_host"), (bad_host, answer)
    # HTTP/1.1 without Host: aiohttp's parser refuses it already (a protocol error, in JSON).
    answer = send_raw(host, b"GET /durabletask/instances HTTP/1.1\r\n\r\n")
    assert answer.status == 400 and answer.error_code() in ("invalid_host", "bad_request"), answer
    answer = send(host, "GET", f"{RPC}/instances?instanceIdPrefix=" + "x" * 20_000)
    assert 400 <= answer.status < 500 and answer.error_code()
    assert send(host, "GET", f"{RPC}/instances?top=1", headers={"Host": "localhost:7071"}).status == 200


# Seeded mini-fuzz ----------------------------------------------------------------------------------------

FUZZ_SEED = 20_260_110
FUZZ_REQUESTS = 2000
# Each management route with the method it takes.
_ROUTES = [
    ("POST", "/orchestrators/{name}"),
    ("POST", "/orchestrators/{name}/{id}"),
    ("GET", "/instances"),
    ("GET", "/instances/"),
    ("DELETE", "/instances"),
    ("GET", "/instances/{id}"),
    ("DELETE", "/instances/{id}"),
    ("POST", "/instances/{id}/raiseEvent/{name}"),
    ("POST", "/instances/{id}/terminate"),
    ("POST", "/instances/{id}/suspend"),
    ("POST", "/instances/{id}/resume"),
    ("POST", "/instances/{id}/restart"),
    ("POST", "/instances/{id}/rewind"),
    ("GET", "/entities/{name}"),
    ("GET", "/entities/{name}/{id}"),
    ("POST", "/entities/{name}/{id}"),
    ("DELETE", "/entities/{name}/{id}"),
]
_QUERY_NAMES = [
    "top",
    "createdTimeFrom",
    "createdTimeTo",
    "runtimeStatus",
    "showHistory",
    "showHistoryOutput",
    "showInput",
    "instanceIdPrefix",
    "op",
    "reason",
    "restartWithNewInstanceId",
    "fetchState",
    "returnInternalServerErrorOnFailure",
    "version",
    "timeout",
    "pollingInterval",
    "taskHub",
    "code",
]
# No orchestrator that can fail (a failed instance answers 500 to returnInternalServerErrorOnFailure).
_NAMES = ["chaining", "counter", "no_such", "$", "@", "COUNTER", ""]
_VALUES = [
    "0", "-1", "1", "1000", "1001", "99999999999999999999", "1e309", "nan", "inf", "-0", "true", "False",
    "maybe", "Running,Completed", "Bogus", "2024-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "",
]  # fmt: skip
_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO"]


def _hostile_text(rng: random.Random) -> str:
    pieces = [
        "a", "Z9", "@", "$", "#", "?", "/", "\\", "%", "..", " ", "\x00", "\n", "\r", "\x7f", "\x85", "\u2028",
        "\ud800", "\udfff", "é", "😀", "\ufeff", "'", '"', "<", "{", "[", "~",
    ]  # fmt: skip
    text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
    return text * rng.choice([1, 1, 1, 30, 300])


def _encode(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _fuzz_segment(rng: random.Random, names: list[str]) -> str:
    roll = rng.random()
    if roll < 0.6:
        return _encode(rng.choice(names))
    if roll < 0.7:
        return "".join(rng.choice(["%ff", "%zz", "%", "%00", "%2F", "%ED%A0%80"]) for _ in range(rng.randint(1, 4)))
    return _encode(_hostile_text(rng))


def _fuzz_body(rng: random.Random) -> bytes | None:
    kind = rng.randrange(9)
    if kind == 0:
        return None
    if kind == 1:
        return b""
    if kind == 2:
        return json.dumps({"x": [1, 2, {"y": "z"}]}).encode()
    if kind == 3:
        return _deep(rng.choice([63, 64, 65, 5000]))
    if kind == 4:
        return b'{"message":"\\ud800"}'
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    if kind == 6:
        return b'{"a":' * 100
    if kind == 7:
        return b"1" * rng.choice([10, 5000])
    return _hostile_text(rng).encode("utf-8", "surrogatepass")


def _fuzz_request(rng: random.Random) -> tuple[str, str, bytes | None, dict[str, str | bytes]]:
    roll = rng.random()
    # Mostly the route's own method (so requests reach the handlers), else any method at all.
    method = rng.choice(_METHODS)
    if roll < 0.8:
        route_method, template = rng.choice(_ROUTES)
        method = route_method if rng.random() < 0.75 else method
        path = rng.choice([RPC, WEBHOOK]) + template.replace("{name}", _fuzz_segment(rng, _NAMES), 1)
        path = path.replace("{name}", _fuzz_segment(rng, _NAMES)).replace("{id}", _fuzz_segment(rng, ["x", "$"]))
    elif roll < 0.9:
        path = "/" + "/".join(_fuzz_segment(rng, ["api", "admin", "runtime", "durabletask"]) for _ in range(3))
    else:
        # The app's routes with methods they do not take (a function's own answers are not the host's).
        path = rng.choice(["/api/start/chaining", "/api/startwait/chaining"])
    query = [
        f"{_encode(rng.choice(_QUERY_NAMES))}={_encode(rng.choice([*_VALUES, _hostile_text(rng)]))}"
        for _ in range(rng.randint(0, 4))
    ]
    # No waiting starts: the only timeouts sent are 0 or out of bounds.
    query = [q for q in query if not re.match(r"timeout=(?!0$|nan|inf|1e309|-|99999)", q)]
    if query:
        path += "?" + "&".join(query)
    if path.startswith("/api/") and method == "POST":
        method = "PUT"
    headers: dict[str, str | bytes] = {}
    if rng.random() < 0.6:
        headers["Content-Type"] = rng.choice(
            ["application/json", "text/plain", "application/json; charset=latin-1", "application/json; charset=x"]
        )
    if rng.random() < 0.3:
        headers["x-ms-continuation-token"] = rng.choice(
            [b"\xff\xfe", b"abc", b"YWJj", b"A" * 2000, bytes(rng.randrange(32, 256) for _ in range(20))]
        )
    return method, path, _fuzz_body(rng), headers


def test_seeded_fuzz_of_management_and_unknown_routes(host: HostProcess) -> None:
    rng = random.Random(FUZZ_SEED)
    started = time.monotonic()
    statuses: dict[int, int] = {}
    for number in range(FUZZ_REQUESTS):
        method, path, body, headers = _fuzz_request(rng)
        answer = send(host, method, path, body, headers, timeout=30)
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        where = (number, method, path[:200], answer)
        # Rewind is the one operation the local host does not implement (501, documented).
        assert answer.status < 500 or (answer.status == 501 and "/rewind" in path), where
        text = answer.body.decode("utf-8", "replace")
        assert not LEAKS.search(text), where
        if 400 <= answer.status < 500 and method != "HEAD":
            assert answer.error_code(), where
    assert sum(statuses.values()) == FUZZ_REQUESTS
    # The fuzz reached both sides: some requests were accepted, many refused.
    assert any(s < 300 for s in statuses) and statuses.get(400, 0) > 50, statuses
    assert time.monotonic() - started < 60, statuses


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_a_body_is_passed_as_sent_whatever_its_content_encoding(host: HostProcess, encoding: str) -> None:
    # aiohttp decoded request bodies itself: a gzip header on plain bytes was a 500 (found by the fuzz), br
    # a text 400, deflate a connection left waiting. Kestrel does not decode request bodies: neither do we.
    headers: dict[str, str | bytes] = {"Content-Type": "application/json", "Content-Encoding": encoding}
    answer = send(host, "POST", "/api/start/chaining", b'"not compressed"', headers)
    assert answer.status == 202, answer  # the function got the JSON as sent
    for path in [f"{RPC}/orchestrators/chaining", f"{RPC}/entities/counter/s?op=add"]:
        answer = send(host, "POST", path, b'{"not": "compressed"}', headers)
        assert answer.status in (202, 400), (path, answer)
        assert b"Traceback" not in answer.body and b"Brotli" not in answer.body, answer
