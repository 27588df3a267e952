"""Hostile input against the root app (``function_app.py``), one test per finding of issue 10 (library side).

Each test goes through the local host as a caller would meet it: raw HTTP (``http.client``) or a queue
message in Azurite, the agents' model the fake OpenAI server over real HTTP.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from hosttools.host_process import HostProcess, assert_eventually, root_app_host
from hosttools.hostile import (
    INSTRUCTIONS,
    LIBRARY_FUNCTION,
    Answer,
    StateProbe,
    error_shape_problem,
    leaks,
    send,
    task_hub_database,
)

from durableagent._bodies import MAX_JSON_DEPTH, json_depth, parse_json
from durableagent._errors import RequestError
from durableagent._logs import SafeLogFilter, get_logger
from durableagent.testing import FakeOpenAIServer, Reply

pytestmark = pytest.mark.e2e

JSON = {"Content-Type": "application/json"}


@dataclass
class Stack:
    host: HostProcess
    model: FakeOpenAIServer
    probe: StateProbe
    connection: str

    def send(
        self, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        return send(self.host.port, method, target, body, headers if headers is not None else JSON)

    def post_json(self, target: str, value: Any) -> Answer:
        return self.send("POST", target, json.dumps(value).encode())


@pytest.fixture(scope="module")
def stack(azurite: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    model = FakeOpenAIServer().start_in_thread()
    app_dir = tmp_path_factory.mktemp("hostile") / "app"
    try:
        with root_app_host(azurite, model.env(), app_dir, "Hostile") as host:
            probe = StateProbe(task_hub_database(app_dir), azurite.connection_string)
            yield Stack(host, model, probe, azurite.connection_string)
    finally:
        model.stop()


@pytest.fixture(autouse=True)
def _model_echoes(stack: Stack) -> Iterator[None]:
    stack.model.clear_script()
    stack.model.set_responder(None)
    yield
    stack.model.set_responder(None)


def waiting_run(stack: Stack) -> tuple[str, str]:
    """A draft-review run waiting for its approval: (run id, request id)."""
    started = stack.post_json("/api/workflows/draft-review/runs?wait=true", {"input": "a note"}).json()
    assert started["state"] == "waiting_for_input", started
    return started["runId"], started["pendingRequests"][0]["requestId"]


def assert_error(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer.text
    assert error_shape_problem(answer) is None, answer.text
    body: dict[str, Any] = answer.json()
    assert body["error"]["code"] == code, body
    assert not leaks(answer.text), answer.text
    return body


# Finding 1: malformed bodies and unbounded values ---------------------------------------------------------


def test_malformed_json_bodies_are_400_invalid_json_on_every_library_route(stack: Stack) -> None:
    run_id, request_id = waiting_run(stack)
    routes = [
        "/api/agents/Assistant/run",
        "/api/workflows/draft-review/runs",
        f"/api/workflows/draft-review/runs/{run_id}/requests/{request_id}",
        f"/api/workflows/draft-review/runs/{run_id}/terminate",
    ]
    bodies = {
        "10,000 levels deep": b"[" * 10_000 + b"]" * 10_000,
        "objects 10,000 deep": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        "a lone surrogate": b'{"message": "\\ud800", "input": "\\ud800", "reason": "\\ud800"}',
        "a lone surrogate in a key": b'{"\\udc00": 1}',
        "not UTF-8": b'{"message": "caf\xe9", "input": "caf\xe9"}',
        "NaN": b'{"message": NaN, "input": NaN}',
        "an overflowing number": b'{"message": 1e999, "input": 1e999}',
    }
    before = stack.probe.settled()
    for route in routes:
        for what, body in bodies.items():
            answer = stack.send("POST", route, body)
            assert answer.status == 400, (route, what, answer.text)
            assert_error(answer, 400, "invalid_json")
    assert stack.probe.settled() == before, "a 400 changed state"
    # The run is still waiting and the well-formed answer still works.
    answer = stack.send("POST", routes[2], b"true")
    assert answer.status == 202, answer.text


def test_caller_supplied_values_are_bounded_with_stable_codes(stack: Stack) -> None:
    assert stack.post_json("/api/agents/Assistant/run", {"message": "hi", "sessionId": "bounded"}).status == 200
    before = stack.probe.settled()
    cases: list[tuple[str, str, bytes | None, dict[str, str] | None, int, str]] = [
        (
            "POST",
            "/api/agents/Assistant/run",
            b'{"message": "' + b"x" * 200_000 + b'"}',
            None,
            413,
            "message_too_large",
        ),
        (
            "POST",
            "/api/workflows/draft-review/runs",
            b'{"input": "' + b"x" * 1_100_000 + b'"}',
            None,
            413,
            "message_too_large",
        ),
        (
            "POST",
            "/api/agents/Assistant/run",
            b'{"message": "hi", "sessionId": "' + b"k" * 129 + b'"}',
            None,
            400,
            "invalid_session_id",
        ),
        (
            "POST",
            "/api/agents/Assistant/run",
            b'{"message": "hi", "correlationId": "a\\nb"}',
            None,
            400,
            "invalid_correlation_id",
        ),
        (
            "POST",
            "/api/agents/Assistant/run",
            b'{"message": "hi"}',
            {**JSON, "Idempotency-Key": "x" * 300},
            400,
            "invalid_correlation_id",
        ),
        (
            "POST",
            "/api/agents/Assistant/run",
            b'{"message": "hi"}',
            {**JSON, "x-ms-wait-for-response": "maybe"},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/agents/Assistant/run?wait_for_response=" + "1" * 40,
            b'{"message": "hi"}',
            None,
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/agents/Assistant/run",
            b"<message/>",
            {"Content-Type": "a" * 3000},
            415,
            "unsupported_media_type",
        ),
        ("GET", "/api/agents/Assistant/bounded?page_size=" + "9" * 5000, None, None, 400, "invalid_request"),
        ("GET", "/api/agents/Assistant/bounded?cursor=1_0", None, None, 400, "invalid_request"),
        ("GET", "/api/agents/Assistant/bounded?page_size=%D9%A3", None, None, 400, "invalid_request"),
        ("GET", "/api/agents/Assistant/bounded/runs/" + "c" * 200, None, None, 400, "invalid_correlation_id"),
        ("GET", "/api/agents/Assistant/bounded/runs/a%0Ab", None, None, 400, "invalid_correlation_id"),
        ("GET", "/api/agents/Assistant/" + "k" * 5000, None, None, 400, "invalid_session_id"),
        ("POST", "/api/workflows/draft-review/runs", b'{"input": "x", "runId": "a\\nb"}', None, 400, "invalid_request"),
        (
            "POST",
            "/api/workflows/draft-review/runs",
            b'{"input": "x", "checkpointId": 5}',
            None,
            400,
            "invalid_request",
        ),
        ("POST", "/api/workflows/draft-review/runs?wait=maybe", b'{"input": "x"}', None, 400, "invalid_request"),
        (
            "POST",
            "/api/workflows/draft-review/runs?timeoutSeconds=1e999",
            b'{"input": "x"}',
            None,
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/workflows/draft-review/runs",
            b'{"input": "x", "timeoutSeconds": true}',
            None,
            400,
            "invalid_request",
        ),
        ("GET", "/api/workflows/draft-review/runs/" + "r" * 5000, None, None, 404, "run_not_found"),
        ("GET", "/api/workflows/" + "w" * 5000 + "/runs/x", None, None, 404, "workflow_not_found"),
    ]
    for method, target, body, headers, status, code in cases:
        mark = len(stack.host.log())
        answer = stack.send(method, target, body, headers)
        if not LIBRARY_FUNCTION.search(stack.host.log()[mark:]):
            assert 400 <= answer.status < 500, (target, answer.text)
            continue  # the host itself refused the route value (no function ran): the local host's business
        body_json = assert_error(answer, status, code)
        assert len(answer.body) < 1000, body_json  # a long value is not echoed back whole
    run_id, _ = waiting_run(stack)
    before = stack.probe.settled()
    long_reason = json.dumps({"reason": "r" * 2000}).encode()
    assert_error(
        stack.send("POST", f"/api/workflows/draft-review/runs/{run_id}/terminate", long_reason), 400, "invalid_request"
    )
    assert stack.probe.settled() == before, "a 4xx changed state"


# Finding 2: internal text never reaches callers (or logs) ----------------------------------------------------


def _verbose_model_failure(request: dict[str, Any]) -> Reply:
    """A model service whose error echoes the whole request, instructions included (as some proxies do)."""
    return Reply.error(
        400, {"error": {"message": f"bad request: {json.dumps(request)}", "type": "invalid_request_error"}}
    )


def test_failures_tell_callers_a_code_and_our_words_only(stack: Stack) -> None:
    stack.model.set_responder(_verbose_model_failure)
    # Agent route: 502 with a stable code, no exception class, no model request.
    answer = stack.post_json("/api/agents/Assistant/run", {"message": "hello", "sessionId": "failing"})
    body = assert_error(answer, 502, "agent_run_failed")
    assert body["error"]["message"] == "The model service answered with HTTP 400."
    # Queue run with a reply queue: the posted outcome says the same.
    replies = f"replies-{uuid.uuid4().hex[:8]}"
    _enqueue(stack, "assistant-runs", {"message": "hello", "sessionId": "failing-q", "replyQueue": replies})
    outcome = _receive(stack, replies)
    assert outcome["status"] == "failed" and outcome["error"]["code"] == "agent_run_failed", outcome
    assert not leaks(json.dumps(outcome)), outcome
    # Workflow: the drafting agent fails; status and events carry codes, not the exception.
    started = stack.post_json("/api/workflows/draft-review/runs?wait=true", {"input": "a note"})
    assert started.status == 200, started.text
    status = started.json()
    assert status["state"] == "failed", status
    assert status["error"] == {
        "code": "executor_failed",
        "message": "Executor 'draft' failed. The model service answered with HTTP 400.",
    }
    assert not leaks(started.text), started.text
    events = stack.send("GET", f"/api/workflows/draft-review/runs/{status['runId']}/events")
    assert events.status == 200 and not leaks(events.text), events.text
    failures = [e for e in events.json()["events"] if e["type"] in ("executor_failed", "failed")]
    assert [e["details"] for e in failures] == [
        {"code": "executor_failed", "executorId": "draft"},
        {"code": "workflow_failed"},
    ], failures
    # Logs: the code, the status, the exception's type at most; never the request or its instructions.
    log = stack.host.log()
    assert "bad request:" not in log
    for text in INSTRUCTIONS:
        assert text not in log


def _queue(stack: Stack, name: str) -> QueueClient:
    return QueueClient.from_connection_string(stack.connection, name, message_encode_policy=TextBase64EncodePolicy())


def _enqueue(stack: Stack, name: str, message: dict[str, Any]) -> None:
    with _queue(stack, name) as queue:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(json.dumps(message))


def _receive(stack: Stack, name: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception), QueueClient.from_connection_string(stack.connection, name) as queue:
            for message in queue.receive_messages():
                queue.delete_message(message)
                content = message.content
                with contextlib.suppress(ValueError):
                    content = base64.b64decode(content, validate=True).decode()
                result: dict[str, Any] = json.loads(content)
                return result
        time.sleep(0.2)
    raise AssertionError(f"nothing arrived on queue {name}")


# Finding 3: log lines cannot be forged ------------------------------------------------------------------------


def test_caller_values_cannot_forge_log_lines(stack: Stack) -> None:
    forged = [
        {"message": "hi", "role": "user\nFORGED role line"},
        {"message": "hi", "sessionId": "s\nFORGED session line"},
        {"message": "hi", "correlationId": "c\r\nFORGED correlation line"},
        {"message": "hi", "role": "user\u2028FORGED separator line"},
    ]
    for message in forged:
        _enqueue(stack, "assistant-runs", message)
    poisoned = [_receive(stack, "assistant-runs-poison") for _ in forged]
    assert sorted(p["error"]["code"] for p in poisoned) == sorted(
        ["invalid_role", "invalid_session_id", "invalid_correlation_id", "invalid_role"]
    ), poisoned
    assert_eventually(lambda: stack.host.log().count("is invalid (invalid_") >= len(forged), 30, "no log lines")
    lines = stack.host.log().splitlines()
    assert not [line for line in lines if "FORGED" in line and not line.startswith("[")], lines[-40:]
    # The role is quoted escaped, on its own record's line (roles compare lower-cased).
    assert any(line.startswith("[") and "user\\x0aforged role line" in line for line in lines)


def test_library_loggers_escape_control_characters_and_drop_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    logger = get_logger("durableagent.test-hostile")
    assert sum(isinstance(f, SafeLogFilter) for f in get_logger("durableagent.test-hostile").filters) == 1
    with caplog.at_level(logging.INFO, logger="durableagent.test-hostile"):
        logger.info("run %s for role %s", "id\r\nFORGED", "user\x1b[2J\u2029x")
        try:
            raise ValueError("the model request: You are a concise, helpful assistant")
        except ValueError:
            logger.exception("failed")
    first, second = caplog.records
    assert first.getMessage() == "run id\\r\\nFORGED for role user\\x1b[2J\\u2029x"
    assert second.exc_info is None and "ValueError at test_hostile_input.py:" in second.getMessage()
    assert "concise" not in caplog.text


def test_json_parser_bounds() -> None:
    assert json_depth(b'{"a": "[[[[", "b": [[1]], "c": "\\"[["}') == 3
    assert json_depth(b"[" * 100_000) == 100_000
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, max_bytes=1000) is not None
    assert parse_json(b'"\\ud83d\\ude00"', max_bytes=100) == "\U0001f600"  # a surrogate pair is text
    for raw in (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), b'"\\ud800"', b"\xff", b"NaN", b"1e400"):
        with pytest.raises(RequestError) as caught:
            parse_json(raw, max_bytes=1000)
        assert caught.value.error.code == "invalid_json"
    with pytest.raises(RequestError) as caught:
        parse_json(b"[1]", max_bytes=2)
    assert caught.value.error.code == "message_too_large"


# Finding 4: wrong methods and unknown sub-routes in the library's namespaces -----------------------------


def test_wrong_methods_on_library_routes_reach_no_library_function_or_get_json(stack: Stack) -> None:
    run_id, request_id = waiting_run(stack)
    routes = {
        "/api/agents/Assistant/run": "POST",
        "/api/agents/Assistant/known": "GET DELETE",
        "/api/agents/Assistant/known/runs/x": "GET",
        "/api/workflows/draft-review/runs": "POST",
        f"/api/workflows/draft-review/runs/{run_id}": "GET",
        f"/api/workflows/draft-review/runs/{run_id}/requests/{request_id}": "POST",
        f"/api/workflows/draft-review/runs/{run_id}/terminate": "POST",
        f"/api/workflows/draft-review/runs/{run_id}/events": "GET",
        "/api/health": "GET",
        "/api/agents/Assistant": "",
        "/api/agents/Assistant/known/runs": "",
        "/api/workflows/draft-review": "",
        "/api/workflows/draft-review/runs/x/y/z": "",
    }
    before = stack.probe.settled()
    for route, allowed in routes.items():
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            if method in allowed.split():
                continue
            mark = len(stack.host.log())
            answer = stack.send(method, route, b"{}")
            ran = bool(LIBRARY_FUNCTION.search(stack.host.log()[mark:]))
            assert 400 <= answer.status < 500, (method, route, answer.status, answer.text)
            if ran:  # only GET/DELETE .../run reach a function: the session routes, for session "run"
                assert (method, route) in (
                    ("GET", "/api/agents/Assistant/run"),
                    ("DELETE", "/api/agents/Assistant/run"),
                )
                assert_error(answer, 404, "session_not_found")
            elif answer.body:
                assert error_shape_problem(answer) is None, (method, route, answer.text)
    assert stack.probe.settled() == before, "a wrong method changed state"
