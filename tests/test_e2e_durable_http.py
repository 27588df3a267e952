"""End to end: ``context.call_http`` through the local host against an HTTP server on loopback.

The server runs in this test process; the host reaches it as the extension's built-in HTTP activity
would reach any endpoint.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, copy_app

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "durable_http"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: str
    at: float = field(default_factory=time.monotonic)


class Target:
    """The endpoint the orchestrations call: ``/echo``, and ``/job`` answering 202 until polled twice."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.polls = 0
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                with target._lock:
                    target.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                status, headers, content = target.answer(self.command, self.path, body, dict(self.headers.items()))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                data = content.encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, method: str, path: str, body: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
        if path == "/echo":
            reply = {"method": method, "body": body, "type": headers.get("Content-Type"), "test": headers.get("X-Test")}
            return 200, {"Content-Type": "application/json", "X-Reply": "yes"}, json.dumps(reply)
        if path == "/job":
            return 202, {"Location": f"{self.base}/job/status", "Retry-After": "1"}, "accepted"
        if path == "/job/status":
            self.polls += 1
            if self.polls < 2:
                return 202, {"Location": f"{self.base}/job/status", "Retry-After": "1"}, "running"
            return 200, {"Content-Type": "text/plain"}, "finished"
        return 404, {}, "not found"

    def __enter__(self) -> Target:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def host(azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    app_dir = copy_app(APP, tmp_path_factory.mktemp("durable_http") / "app")
    env = {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": "DurableHttp"}
    with HostProcess(app_dir, env=env) as proc:
        yield proc


@pytest.fixture
def target() -> Iterator[Target]:
    with Target() as server:
        yield server


def _run(host: HostProcess, orchestrator: str, request: dict[str, Any]) -> dict[str, Any]:
    code, _, body = host.request("POST", f"/api/start/{orchestrator}", request)
    assert code == 202, body
    return host.wait_for(json.loads(body)["id"])


def test_call_http_returns_the_durable_http_response(host: HostProcess, target: Target) -> None:
    status = _run(
        host,
        "http_call",
        {"method": "POST", "uri": f"{target.base}/echo", "content": {"a": 1}, "headers": {"X-Test": "sent"}},
    )
    assert status["runtimeStatus"] == "Completed", status
    response = status["output"]
    assert response["statusCode"] == 200
    assert response["headers"]["X-Reply"] == "yes"
    # HttpResponseMessage.Headers: the content headers (Content-Type, Content-Length) are not among them.
    assert "Content-Type" not in response["headers"]
    # The SDK sends a dict as JSON text; without a Content-Type header the extension sends text/plain.
    assert json.loads(response["content"]) == {
        "method": "POST",
        "body": '{"a": 1}',
        "type": "text/plain",
        "test": "sent",
    }


def test_the_python_sdk_gets_a_202_as_it_is(host: HostProcess, target: Target) -> None:
    status = _run(host, "http_call", {"method": "POST", "uri": f"{target.base}/job"})
    assert status["runtimeStatus"] == "Completed", status
    response = status["output"]
    assert response["statusCode"] == 202
    assert response["headers"]["Location"] == f"{target.base}/job/status"
    assert response["content"] == "accepted"
    time.sleep(1.5)  # longer than Retry-After: nothing polls
    assert [s.path for s in target.seen] == ["/job"]


def test_asynchronous_pattern_polls_location_after_retry_after(host: HostProcess, target: Target) -> None:
    headers = {"x-functions-key": "secret", "X-Keep": "kept"}
    code, _, body = host.request(
        "POST", "/api/start/polling_call", {"method": "POST", "uri": f"{target.base}/job", "headers": headers}
    )
    assert code == 202, body
    instance_id = json.loads(body)["id"]
    status = host.wait_for(instance_id)
    assert status["runtimeStatus"] == "Completed", status
    assert [(s.method, s.path) for s in target.seen] == [
        ("POST", "/job"),
        ("GET", "/job/status"),
        ("GET", "/job/status"),
    ]
    gaps = [later.at - earlier.at for earlier, later in zip(target.seen, target.seen[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # Retry-After: 1
    polls = target.seen[1:]
    assert all(p.headers.get("X-Keep") == "kept" and "x-functions-key" not in p.headers for p in polls)
    # The Python SDK completes its one task with the first answer; the polls are in the history.
    assert status["output"]["statusCode"] == 202
    code, _, raw = host.request(
        "GET", f"/runtime/webhooks/durabletask/instances/{instance_id}?showHistory=true&showHistoryOutput=true"
    )
    events = json.loads(raw)["historyEvents"]
    kinds = [e["EventType"] for e in events if e["EventType"] in ("TaskCompleted", "TimerFired")]
    assert kinds == ["TaskCompleted", "TimerFired", "TaskCompleted", "TimerFired", "TaskCompleted"]
    final = [e for e in events if e["EventType"] == "TaskCompleted"][-1]
    assert final["FunctionName"] == "BuiltIn::HttpActivity"
    assert (final["Result"]["statusCode"], final["Result"]["content"]) == (200, "finished")


def test_a_failed_request_fails_the_call_with_the_extensions_reason(host: HostProcess) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    status = _run(host, "http_call", {"method": "GET", "uri": f"http://127.0.0.1:{closed_port}/"})
    assert status["runtimeStatus"] == "Failed"
    reason, _, details = status["output"].partition(" \n ")
    assert reason == f"Orchestrator function 'http_call' failed: Connection refused (127.0.0.1:{closed_port})"
    assert json.loads(details)["ClassName"] == "System.Net.Http.HttpRequestException"
