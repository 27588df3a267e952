"""Issue 10 ("hostile input"): a caller's ``response_schema`` is data, never a fetch, a loop or a stall.

One test per finding (SSRF through ``$ref``, ``{"$ref": "#"}``, a 300-deep schema, ReDoS through
``pattern``), each at request time and on the unit path that validates the model's answer, then the same
through the local host with the fake OpenAI server scripting the model's answer. Legitimate schemas
(``$defs`` with local references, a recursive tree, patterns that match) keep working.
"""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from agent_framework import AgentResponse, Message
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, copy_app

from durableagent._entity import StructuredOutputError, _checked_structured_value, classify_failure
from durableagent._errors import RequestError
from durableagent._requests import RequestLimits, build_run_request
from durableagent._response_schema import (
    MAX_ANSWER_BYTES,
    MAX_KEYWORD_EVALUATIONS,
    MAX_SCHEMA_BYTES,
    AnswerRejected,
    SchemaAnalysis,
    check_response_schema,
    validate_answer,
)
from durableagent.testing import FakeOpenAIServer, Reply

APP = Path(__file__).parent / "apps" / "agents_e2e"
NEAR_MISS = "a" * 28 + "!"  # 29 characters: the answer that took `re` 14.7 s on ^(a+)+$
# Catastrophic for `regex` as well (^(a+)+$ is not: regex's engine sees through it), so this one
# really runs into the per-match time limit.
HARD_FOR_REGEX = "^(a|a)*$"


# Helpers -----------------------------------------------------------------------------------------------


def _answer(value: Any) -> AgentResponse:
    text = value if isinstance(value, str) else json.dumps(value)
    return AgentResponse(messages=[Message(role="assistant", contents=[text])])


def _request_error(schema: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        build_run_request("Chat", {"message": "hi", "sessionId": "s", "response_schema": schema}, RequestLimits())
    return caught.value


def _rejected(schema: dict[str, Any], answer: Any) -> str:
    """The failure code and message of the entity's check of ``answer`` against ``schema``."""
    with pytest.raises(StructuredOutputError) as caught:
        _checked_structured_value(_answer(answer), schema)
    failure = classify_failure(caught.value)
    assert failure["code"] == "invalid_structured_output"
    _assert_no_internals(failure["message"])
    return failure["message"]


def _assert_no_internals(message: str) -> None:
    for internal in ("RecursionError", "TimeoutError", "Exception", "jsonschema", "referencing", "Traceback", ".py"):
        assert internal not in message, message


def _deep(levels: int, keyword: str = "properties") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        if keyword == "properties":
            schema = {"type": "object", "properties": {"a": schema}}
        elif keyword == "items":
            schema = {"type": "array", "items": schema}
        else:
            schema = {keyword: [schema]}
    return schema


def _pattern_schema(pattern: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}, "required": ["s"]}


class _CountingServer:
    """A local HTTP server that counts every request (a fetch of a ``$ref`` would be one)."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = json.dumps({"type": "integer"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.hits = hits
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[_CountingServer]:
    server = _CountingServer()
    try:
        yield server
    finally:
        server.close()


# Finding 1: SSRF through $ref ----------------------------------------------------------------------------


def test_ssrf_remote_references_are_refused_and_never_fetched(internal: _CountingServer) -> None:
    url = f"{internal.url}/internal"
    hostile = [
        {"$ref": url},
        {"type": "object", "properties": {"a": {"$ref": url}}},
        {"type": "object", "properties": {"a": {"$dynamicRef": url}}},
        {"type": "object", "$defs": {"x": {"$ref": f"{url}#/x"}}},
        {"$id": f"{internal.url}/base", "type": "object", "properties": {"a": {"$ref": "internal"}}},
        {"type": "object", "properties": {"a": {"$id": f"{internal.url}/", "$ref": "#/x"}}},
        {"$schema": f"{internal.url}/meta", "type": "object"},
        {"type": "object", "properties": {"a": {"$ref": "internal#/x"}}},
    ]
    for schema in hostile:
        error = _request_error(schema)
        assert error.error.code == "invalid_response_schema", schema
        _assert_no_internals(error.message)
    # The unit path the entity takes (an orchestration's schema reaches it without the edge's check).
    for schema in hostile:
        assert "refused" in _rejected(schema, {"a": 1})
    assert internal.hits == []


def test_ssrf_validation_registry_never_fetches_even_for_a_schema_that_slipped_through(
    internal: _CountingServer,
) -> None:
    # Defence in depth: validate against a schema that never went through check_response_schema.
    url = f"{internal.url}/internal"
    for root in (
        {"type": "object", "properties": {"a": {"$ref": url}}},
        {"$id": f"{internal.url}/base", "type": "object", "properties": {"a": {"$ref": "internal"}}},
    ):
        with pytest.raises(AnswerRejected) as caught:
            validate_answer({"a": 1}, SchemaAnalysis(root=root))
        _assert_no_internals(str(caught.value))
    assert internal.hits == []


# Finding 1b: {"$ref": "#"} and other loops on one value -----------------------------------------------------


def test_self_reference_is_a_400_not_a_recursion_error() -> None:
    loops = [
        {"$ref": "#"},
        {"type": "object", "allOf": [{"$ref": "#/$defs/b"}], "$defs": {"b": {"$ref": "#"}}},
        {"type": "object", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}},
        {"type": "object", "properties": {"x": {"$ref": "#/properties/x"}}},
        {"type": "object", "properties": {"x": {"$anchor": "me", "not": {"$ref": "#me"}}}},
    ]
    for schema in loops:
        error = _request_error(schema)
        assert error.error.code == "invalid_response_schema", schema
        assert "loops" in error.message
    # Validation itself stops at its nesting bound should a looping schema ever reach it.
    with pytest.raises(AnswerRejected) as caught:
        validate_answer({}, SchemaAnalysis(root={"$ref": "#"}))
    _assert_no_internals(str(caught.value))


# Finding 2: a 300-deep schema ------------------------------------------------------------------------------


def test_a_300_deep_schema_is_a_400() -> None:
    for keyword in ("properties", "items", "allOf"):
        schema = _deep(300, keyword)
        if keyword != "properties":
            schema = {"type": "object", "properties": {"deep": schema}}
        error = _request_error(schema)
        assert error.error.code == "invalid_response_schema"
        assert "deeper than 64 levels" in error.message
    # Far deeper than Python's recursion limit: the walk is iterative.
    assert _request_error(_deep(5_000)).error.code == "invalid_response_schema"


def test_schema_size_and_pattern_bounds_are_400s() -> None:
    big = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 60} for i in range(600)}}
    error = _request_error(big)
    assert error.error.code == "invalid_response_schema" and str(MAX_SCHEMA_BYTES) in error.message
    for pattern, words in (
        ("((", "not a regular expression"),
        ("[z-a]", "not a regular expression"),
        ("a{4294967296}", "repeat too much"),
        ("(a{1000}){1000}", "repeat too much"),  # compiling it alone takes half a second
        ("a" * 1_001, "longer than"),
    ):
        error = _request_error(_pattern_schema(pattern))
        assert error.error.code == "invalid_response_schema" and words in error.message, pattern
    error = _request_error({"type": "object", "patternProperties": {"((": {}}})
    assert error.error.code == "invalid_response_schema"
    for schema in ({"$ref": "#/$defs/missing"}, {"type": "object", "properties": {"a": {"$ref": "#nowhere"}}}):
        assert _request_error(schema).error.code == "invalid_response_schema"


# Finding 3: ReDoS ----------------------------------------------------------------------------------------


def test_redos_pattern_fails_with_the_stable_code_within_the_budget() -> None:
    # The reported pattern: `regex` needs no time limit for it, the near miss simply does not match.
    assert "does not match" in _rejected(_pattern_schema("^(a+)+$"), {"s": NEAR_MISS})
    # A pattern catastrophic for `regex` too: the per-match time limit ends it.
    message = _rejected(_pattern_schema(HARD_FOR_REGEX), {"s": NEAR_MISS})
    assert "ran longer than" in message
    # The same through patternProperties, additionalProperties and unevaluatedProperties.
    for schema in (
        {"type": "object", "patternProperties": {HARD_FOR_REGEX: {"type": "integer"}}},
        {"type": "object", "patternProperties": {HARD_FOR_REGEX: {}}, "additionalProperties": False},
        {"type": "object", "allOf": [{"patternProperties": {HARD_FOR_REGEX: {}}}], "unevaluatedProperties": False},
    ):
        assert "ran longer than" in _rejected(schema, {NEAR_MISS: 1})
    # Many strings cannot add up past the total: one answer gets REGEX_TOTAL_SECONDS of patterns.
    many = {"type": "object", "additionalProperties": {"type": "string", "pattern": HARD_FOR_REGEX}}
    assert "ran longer than" in _rejected(many, {f"k{i}": NEAR_MISS for i in range(50)})


def test_validation_work_is_bounded_whatever_the_schema_shape() -> None:
    # 2^14 paths through anyOf/$ref: each fits the chain bound, together they blow any fixed budget.
    fan: dict[str, Any] = {"type": "object", "$defs": {"d0": {"type": "object"}}, "unevaluatedProperties": False}
    for i in range(1, 15):
        fan["$defs"][f"d{i}"] = {"anyOf": [{"$ref": f"#/$defs/d{i - 1}"}, {"$ref": f"#/$defs/d{i - 1}"}]}
    fan["$ref"] = "#/$defs/d14"
    check_response_schema(fan)
    assert str(MAX_KEYWORD_EVALUATIONS) in _rejected(fan, {"q": 1})
    # A chain of references longer than the bound is refused at the edge.
    chain: dict[str, Any] = {"type": "object", "$defs": {"d0": {"type": "object"}}}
    for i in range(1, 40):
        chain["$defs"][f"d{i}"] = {"$ref": f"#/$defs/d{i - 1}"}
    chain["$ref"] = "#/$defs/d39"
    assert "chains more than" in _request_error(chain).message


def test_answer_size_and_depth_are_bounded() -> None:
    schema = {"type": "object"}
    assert "nests deeper than" in _rejected(schema, '{"a":' * 70 + "1" + "}" * 70)
    assert "nests deeper than" in _rejected(schema, "[" * 100_000 + "]" * 100_000)  # past the json recursion
    assert str(MAX_ANSWER_BYTES) in _rejected(schema, json.dumps({"a": "x" * MAX_ANSWER_BYTES}))
    assert "not JSON" in _rejected(schema, "not json")


# Legitimate schemas keep working -----------------------------------------------------------------------------

TREE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"$ref": "#"}},
    },
    "required": ["name"],
}


def test_defs_and_local_references_still_work() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "owner": {"$ref": "#/$defs/person"},
            "reviewers": {"type": "array", "items": {"$ref": "#/$defs/person"}, "uniqueItems": True},
            "status": {"$ref": "#status"},
        },
        "required": ["owner"],
        "$defs": {
            "person": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            "status": {"$anchor": "status", "enum": ["open", "closed"]},
        },
    }
    build_run_request("Chat", {"message": "hi", "response_schema": schema}, RequestLimits())
    good = {"owner": {"name": "Ada"}, "reviewers": [{"name": "Bo"}, {"name": "Cy"}], "status": "open"}
    assert _checked_structured_value(_answer(good), schema) == good
    _rejected(schema, {"owner": {}})
    _rejected(schema, {"owner": {"name": "Ada"}, "status": "pending"})
    _rejected(schema, {"owner": {"name": "Ada"}, "reviewers": [{"name": "Bo"}, {"name": "Bo"}]})


def test_a_recursive_tree_schema_still_works() -> None:
    build_run_request("Chat", {"message": "hi", "response_schema": TREE}, RequestLimits())
    tree: dict[str, Any] = {"name": "leaf"}
    for depth in range(25):
        tree = {"name": f"n{depth}", "children": [tree, {"name": "x"}]}
    assert _checked_structured_value(_answer(tree), TREE) == tree
    assert "children/0" in _rejected(TREE, {"name": "r", "children": [{"children": []}]})


def test_patterns_that_match_still_work() -> None:
    schema = {
        "type": "object",
        "properties": {
            "sku": {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"},
            "tags": {"type": "object", "patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": False},
            "id": {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
        },
        "unevaluatedProperties": False,
    }
    build_run_request("Chat", {"message": "hi", "response_schema": schema}, RequestLimits())
    good = {"sku": "ABC-1234", "tags": {"x-team": "core"}, "id": str(uuid.UUID(int=7))}
    assert _checked_structured_value(_answer(good), schema) == good
    assert "sku" in _rejected(schema, {"sku": "abc-1234"})
    _rejected(schema, {"tags": {"team": "core"}})
    _rejected(schema, {"sku": "ABC-1234", "other": 1})
    # The reported pattern, on answers it matches and does not.
    assert _checked_structured_value(_answer({"s": "aaaa"}), _pattern_schema("^(a+)+$")) == {"s": "aaaa"}


# Through the local host ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host(
    azurite: AzuriteInstance, model: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProcess]:
    root = tmp_path_factory.mktemp("schema_safety")
    (root / "tools").mkdir()
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": "SchemaSafety",
        **model.env(),
        "TOOL_LOG_DIR": str(root / "tools"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    with HostProcess(copy_app(APP, root / "app"), env=env) as process:
        yield process


def _call(host: HostProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    code, _, raw = host.request(method, path, body, None, 60.0)
    return code, json.loads(raw) if raw else None


@pytest.mark.e2e
def test_hostile_schemas_get_400_from_the_host(host: HostProcess, internal: _CountingServer) -> None:
    for schema in ({"$ref": f"{internal.url}/internal"}, {"$ref": "#"}):
        code, body = _call(host, "POST", "/api/agents/Chat/run", {"message": "x", "response_schema": schema})
        assert (code, body["error"]["code"]) == (400, "invalid_response_schema"), body
    # 300 deep: the body's own nesting bound (64 levels) answers before the schema is looked at (the
    # schema's own depth bound, also 64, holds for schemas that come another way: see the unit tests).
    code, body = _call(host, "POST", "/api/agents/Chat/run", {"message": "x", "response_schema": _deep(300)})
    assert (code, body["error"]["code"]) == (400, "invalid_json"), body
    assert internal.hits == []


@pytest.mark.e2e
@pytest.mark.parametrize("pattern", ["^(a+)+$", HARD_FOR_REGEX])
def test_redos_answer_fails_the_run_and_health_answers_meanwhile(
    host: HostProcess, model: FakeOpenAIServer, pattern: str
) -> None:
    model.clear_script()
    model.script(Reply.json({"s": NEAR_MISS}))
    session = f"redos-{uuid.uuid4().hex[:8]}"
    outcome: dict[str, Any] = {}

    def run() -> None:
        body = {"message": "answer", "sessionId": session, "response_schema": _pattern_schema(pattern)}
        outcome["code"], outcome["body"] = _call(host, "POST", "/api/agents/Chat/run", body)

    runner = threading.Thread(target=run)
    runner.start()
    health: list[int] = []
    while True:  # at least once, and for as long as the run is in flight
        with urllib.request.urlopen(f"http://127.0.0.1:{host.port}/api/health", timeout=30) as resp:
            health.append(resp.status)
        if not runner.is_alive():
            break
    runner.join()
    assert health and set(health) == {200}
    assert outcome["code"] == 502, outcome
    error = outcome["body"]["error"]
    assert error["code"] == "invalid_structured_output", error
    _assert_no_internals(error["message"])
