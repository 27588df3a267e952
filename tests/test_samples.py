"""The samples under ``samples/`` do what their READMEs and ``demo.http`` files promise.

Each sample runs once, unchanged, on the local host as a subprocess (copied to a temporary directory),
with the test Azurite and a fake OpenAI server of its own (``FakeOpenAIServer`` in this process) behind
the real OpenAI client, so every model call crosses real HTTP and the tests read what the model was
sent. The static checks keep the samples' files from rotting: every ``demo.http`` request targets a
route the sample really has, and the pins, ``host.json`` and settings templates stay in step with the
repository root. The end-to-end classes are marked ``e2e``; the static checks are not (no Azurite).
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from conftest import AzuriteInstance
from hosttools.host_process import REPO, HostProcess, assert_eventually, copy_app

from durableagent.devhost._app_loader import http_methods, http_route, load_function_app
from durableagent.devhost._routes import MethodNotAllowed, RouteTable, join_route
from durableagent.testing import FakeOpenAIServer, Reply

SAMPLES = REPO / "samples"
SAMPLE_NAMES = sorted(p.name for p in SAMPLES.iterdir() if (p / "function_app.py").is_file())
DEMO_HOST = "http://localhost:7071/api"
AGENT_FUNCTIONS = {"agents-run", "agents-session", "agents-session-delete", "agents-run-result"}


# The stack: one host and one fake model per sample ------------------------------------------------------


class Model:
    """The sample's fake OpenAI server: what it will answer, and what it was asked."""

    def __init__(self, server: FakeOpenAIServer) -> None:
        self.server = server

    def script(self, *replies: Reply) -> None:
        self.server.script(*replies)

    def asked(self, marker: str) -> list[dict[str, Any]]:
        """The request bodies whose last user message contains ``marker``, oldest first."""
        return [r.body for r in self.server.requests if marker in last_user_text(r.body)]


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def messages_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body.get("messages", []) if isinstance(m, dict)]


def last_user_text(body: dict[str, Any]) -> str:
    users = [text_of(m.get("content")) for m in messages_of(body) if m.get("role") == "user"]
    return users[-1] if users else ""


def system_text(body: dict[str, Any]) -> str:
    return "\n".join(text_of(m.get("content")) for m in messages_of(body) if m.get("role") == "system")


def tool_results(body: dict[str, Any]) -> list[str]:
    return [text_of(m.get("content")) for m in messages_of(body) if m.get("role") == "tool"]


@dataclass
class Sample:
    host: HostProcess
    model: Model
    connection: str

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """One request to ``/api<path>`` (or to a URL the app gave out); returns the status and parsed JSON body."""
        if path.startswith("http"):
            assert path.startswith(self.host.base_url + "/"), path
            path = path[len(self.host.base_url) :]
        else:
            path = "/api" + path
        code, _, raw = self.host.request(method, path, body, headers)
        return code, json.loads(raw) if raw else None

    def run(self, agent: str, message: str, session: str | None = None, **fields: Any) -> tuple[int, Any]:
        body = {"message": message, **({"sessionId": session} if session else {}), **fields}
        return self.call("POST", f"/agents/{agent}/run", body)

    def queue(self, name: str) -> QueueClient:
        """A client for one of the app's queues, base64 both ways like the Functions queue bindings."""
        return QueueClient.from_connection_string(
            self.connection,
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )

    def eventually(self, method: str, path: str, done: Any, timeout: float = 30.0) -> Any:
        """Repeat a request until ``done(status, body)``; returns the last body."""
        last: list[Any] = [None]

        def check() -> bool:
            code, body = self.call(method, path)
            last[0] = (code, body)
            return bool(done(code, body))

        try:
            assert_eventually(check, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"{method} {path}: last answer {last[0]}\n{self.host.log()[-4000:]}") from None
        return last[0][1]


@contextlib.contextmanager
def running(name: str, azurite: AzuriteInstance, tmp: pytest.TempPathFactory, **settings: str) -> Iterator[Sample]:
    """Start ``samples/<name>`` unchanged on the local host, with a fake model of its own."""
    server = FakeOpenAIServer().start_in_thread()
    try:
        app_dir = copy_app(SAMPLES / name, tmp.mktemp(name) / "app")
        env = {
            "AzureWebJobsStorage": azurite.connection_string,
            "TASKHUB_NAME": f"Samples{uuid.uuid4().hex[:12]}",
            "OPENAI_API_KEY": "test",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_MODEL": "fake-model",
            "AZURE_OPENAI_ENDPOINT": "",
            "NO_PROXY": "127.0.0.1,localhost",
            # As the READMEs say: the sample imports durableagent from the repository.
            "PYTHONPATH": str(REPO),
            **settings,
        }
        with HostProcess(app_dir, env=env) as host:
            yield Sample(host, Model(server), azurite.connection_string)
    finally:
        server.stop()


def key(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def history(sample: Sample, agent: str, session: str) -> list[dict[str, Any]]:
    code, body = sample.call("GET", f"/agents/{agent}/{session}?page_size=200")
    assert code == 200, body
    entries: list[dict[str, Any]] = body["conversation_history"]
    return entries


def module_constant(sample: str, name: str) -> Any:
    """A literal assigned at the top of a sample's function_app.py (read, not imported)."""
    tree = ast.parse((SAMPLES / sample / "function_app.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return ast.literal_eval(value)
    raise KeyError(name)


# 01: one agent with tools -----------------------------------------------------------------------------


@pytest.mark.e2e
class TestSingleAgentTools:
    NAME = "01_single_agent_tools"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    def test_health_lists_the_agent(self, sample: Sample) -> None:
        code, body = sample.call("GET", "/health")
        assert code == 200
        assert body["agents"] == [{"name": "ShopAssistant", "type": "Agent"}] and body["agent_count"] == 1

    def test_tools_run_and_the_session_remembers(self, sample: Sample) -> None:
        session = key("shop")
        question = f"My shelf is 32 inches wide. How many centimetres is that? ({session})"
        sample.model.script(
            Reply.tool_call("convert_units", {"value": 32, "from_unit": "in", "to_unit": "cm"}),
            Reply.text("32 inches is about 81.3 cm."),
        )
        code, body = sample.run("ShopAssistant", question, session)
        assert code == 200, body
        assert body["status"] == "success" and body["response"] == "32 inches is about 81.3 cm."
        assert (body["sessionId"], body["agentSessionId"]) == (session, f"@ShopAssistant@{session}")
        assert body["message_count"] == 1  # one exchange (question, tool call, tool result, answer)
        first, second = sample.model.asked(session)
        assert {t["function"]["name"] for t in first["tools"]} == {"convert_units", "faq_lookup"}
        assert tool_results(second) == ["32 in = 81.28 cm"]  # the sample's own tool ran

        follow_up = f"If it does not fit, can I return it? ({session})"
        sample.model.script(
            Reply.tool_call("faq_lookup", {"topic": "returns"}),
            Reply.text("Yes, within 30 days, and return shipping is free."),
        )
        code, body = sample.run("ShopAssistant", follow_up, session)
        assert code == 200 and body["response"] == "Yes, within 30 days, and return shipping is free.", body
        asked = sample.model.asked(follow_up)
        assert len(asked) == 2
        # The first turn (tool call and result included) went to the model with the follow-up.
        assert question in json.dumps(asked[0]["messages"]) and "81.28 cm" in json.dumps(asked[0]["messages"])
        faq = module_constant("01_single_agent_tools", "FAQ")
        assert tool_results(asked[1])[-1] == faq["returns"]

        entries = history(sample, "ShopAssistant", session)
        assert [(e["role"], e["content"]) for e in entries] == [
            ("user", question),
            ("assistant", "32 inches is about 81.3 cm."),
            ("user", follow_up),
            ("assistant", "Yes, within 30 days, and return shipping is free."),
        ]
        code, page = sample.call("GET", f"/agents/ShopAssistant/{session}?page_size=1")
        assert code == 200 and page["turn_count"] == 2 and page["page"]["next_cursor"] == 1
        assert page["last_response"] == "Yes, within 30 days, and return shipping is free."

    def test_plain_text_background_run_and_delete(self, sample: Sample) -> None:
        code, _, raw = sample.host.request(
            "POST", "/api/agents/ShopAssistant/run", b"What is 5 lb in kg?", {"Content-Type": "text/plain"}
        )
        body = json.loads(raw)
        assert code == 200 and body["response"] == "echo: What is 5 lb in kg?", body
        assert body["agentSessionId"] == f"@ShopAssistant@{body['sessionId']}"

        session = key("background")
        code, accepted = sample.run(
            "ShopAssistant", "When does customer service answer?", session, wait_for_response=False
        )
        assert code == 202, accepted
        done = sample.eventually("GET", accepted["statusQueryGetUri"], lambda c, b: c == 200)
        assert done["response"] == "echo: When does customer service answer?"

        code, body = sample.call("DELETE", f"/agents/ShopAssistant/{session}")
        assert code == 200 and body["status"] == "deleted", body
        code, body = sample.call("GET", f"/agents/ShopAssistant/{session}")
        assert code == 404 and body["error"]["code"] == "session_not_found"


# 02: several agents ------------------------------------------------------------------------------------


@pytest.mark.e2e
class TestMultipleAgents:
    NAME = "02_multiple_agents"
    AGENTS = ("Writer", "Critic", "Translator")

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    def test_health_lists_all_agents(self, sample: Sample) -> None:
        code, body = sample.call("GET", "/health")
        assert code == 200 and body["agent_count"] == 3
        assert [a["name"] for a in body["agents"]] == list(self.AGENTS)

    def test_each_agent_answers_under_its_name_with_its_instructions(self, sample: Sample) -> None:
        instructions = module_constant("02_multiple_agents", "INSTRUCTIONS")
        session = key("launch")
        for agent in self.AGENTS:
            message = f"{agent}, over to you ({session})"
            code, body = sample.run(agent, message, session)
            assert code == 200, body
            assert body["agentSessionId"] == f"@{agent}@{session}" and body["response"] == f"echo: {message}"
            assert body["sessionId"] == session
            [request] = sample.model.asked(message)
            assert system_text(request) == instructions[agent]
            # Same key, separate conversations: each agent saw only its own message.
            assert [m["role"] for m in messages_of(request)] == ["system", "user"]
        assert len(set(instructions.values())) == 3

        revise = f"Revise it ({session})"
        code, body = sample.run("Writer", revise, session)
        assert code == 200, body
        [request] = sample.model.asked(revise)
        assert [text_of(m["content"]) for m in messages_of(request)][1:] == [
            f"Writer, over to you ({session})",
            f"echo: Writer, over to you ({session})",
            revise,
        ]
        assert len(history(sample, "Writer", session)) == 4
        assert len(history(sample, "Critic", session)) == 2
        code, body = sample.call("GET", f"/agents/Translator/@Translator@{session}")
        assert code == 200 and body["agentSessionId"] == f"@Translator@{session}" and body["turn_count"] == 1

    def test_unknown_agent(self, sample: Sample) -> None:
        code, body = sample.run("Poet", "Write a haiku.")
        assert code == 404 and body["error"]["code"] == "agent_not_found"


# 03: background work through queues -------------------------------------------------------------------


@pytest.mark.e2e
class TestQueueBackground:
    NAME = "03_queue_background"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    def test_submitted_task_is_summarized_through_the_queues(self, sample: Sample) -> None:
        text = f"Queues decouple producers from consumers. Marker {uuid.uuid4().hex}."
        sample.model.script(Reply.text("- Queues decouple producers and consumers."))
        code, body = sample.call("POST", "/tasks", {"text": text})
        assert code == 202 and body["status"] == "queued", body
        task = body["taskId"]
        assert body["statusUri"] == f"{sample.host.base_url}/api/tasks/{task}"

        done = sample.eventually("GET", f"/tasks/{task}", lambda c, b: c == 200)
        assert done["status"] == "done" and done["summary"] == "- Queues decouple producers and consumers."
        assert done["submittedAt"] and done["completedAt"]
        [request] = sample.model.asked(text)
        assert last_user_text(request) == f"Summarize this text:\n\n{text}"
        # The agent's view: the task id is the session and the correlation id.
        [question, answer] = history(sample, "Summarizer", task)
        assert question["correlationId"] == task and answer["content"] == done["summary"]

    def test_reply_appears_on_the_reply_queue(self, sample: Sample) -> None:
        replies, correlation = key("replies"), key("direct")
        with sample.queue("summarizer-runs") as runs:
            runs.send_message(
                json.dumps(
                    {"message": f"Summarize: {correlation}", "correlationId": correlation, "replyQueue": replies}
                )
            )
        received: list[dict[str, Any]] = []

        def replied() -> bool:
            with sample.queue(replies) as queue, contextlib.suppress(Exception):
                received.extend(json.loads(m.content) for m in queue.receive_messages())
            return bool(received)

        assert_eventually(replied, timeout=30, message=sample.host.log()[-3000:])
        [outcome] = received
        assert outcome == {
            "agent": "Summarizer",
            "correlationId": correlation,
            "status": "success",
            "turn": 0,
            "error": None,
            "response": f"echo: Summarize: {correlation}",
        }

    def test_http_run_with_reply_queue_is_collected_as_a_task(self, sample: Sample) -> None:
        correlation = key("http")
        code, body = sample.run(
            "Summarizer",
            f"Summarize: {correlation}",
            correlationId=correlation,
            replyQueue="summaries",
            wait_for_response=False,
        )
        assert code == 202, body
        done = sample.eventually("GET", f"/tasks/{correlation}", lambda c, b: c == 200)
        assert done["status"] == "done" and done["summary"] == f"echo: Summarize: {correlation}"

    def test_invalid_message_goes_to_the_poison_queue(self, sample: Sample) -> None:
        marker = key("bad")
        with sample.queue("summarizer-runs") as runs:
            runs.send_message(json.dumps({"sessionId": marker}))
        found: list[dict[str, Any]] = []

        def poisoned() -> bool:
            with sample.queue("summarizer-runs-poison") as queue, contextlib.suppress(Exception):
                for message in queue.peek_messages(max_messages=32):
                    if marker in message.content:
                        found.append(json.loads(message.content))
            return bool(found)

        assert_eventually(poisoned, timeout=30, message=sample.host.log()[-3000:])
        assert found[0]["error"]["code"] == "message_required"
        assert json.loads(found[0]["message"]) == {"sessionId": marker}

    def test_task_errors(self, sample: Sample) -> None:
        code, body = sample.call("GET", "/tasks/no-such-task")
        assert code == 404 and body["error"]["code"] == "task_not_found"
        code, body = sample.call("POST", "/tasks", {"text": "  "})
        assert code == 400 and body["error"]["code"] == "text_required"


# 04: a scheduled agent and expiring sessions ----------------------------------------------------------


@pytest.mark.e2e
class TestScheduledAgent:
    NAME = "04_scheduled_agent"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        settings = {
            "DIGEST_SCHEDULE": "*/2 * * * * *",
            "MAINTENANCE_SCHEDULE": "*/2 * * * * *",
            "SESSION_TTL_HOURS": str(8 / 3600),  # eight seconds: four digests apart
        }
        with running(self.NAME, azurite, tmp_path_factory, **settings) as sample:
            yield sample

    def test_the_schedule_runs_the_agent(self, sample: Sample) -> None:
        body = sample.eventually(
            "GET", "/agents/Digest/hourly-digest", lambda c, b: c == 200 and b["turn_count"] >= 1, timeout=20
        )
        question, answer = body["conversation_history"][:2]
        assert question["content"] == "Write the hourly digest."
        assert re.fullmatch(r"schedule-hourly-\d{8}T\d{6}", question["correlationId"])
        assert answer["content"] == "echo: Write the hourly digest."
        [first, *_] = sample.model.asked("Write the hourly digest.")
        assert "order_stats" in system_text(first)
        assert [t["function"]["name"] for t in first["tools"]] == ["order_stats"]

    def test_idle_sessions_are_deleted(self, sample: Sample) -> None:
        session = key("idle")
        code, body = sample.run("Digest", "How many orders are pending?", session)
        assert code == 200, body
        sample.eventually("GET", f"/agents/Digest/{session}", lambda c, b: c == 404, timeout=30)
        # The scheduled session is never idle for long, so it stays.
        code, body = sample.call("GET", "/agents/Digest/hourly-digest")
        assert code == 200 and body["turn_count"] >= 1, body


# 05: structured output --------------------------------------------------------------------------------


@pytest.mark.e2e
class TestStructuredOutput:
    NAME = "05_structured_output"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory) as sample:
            yield sample

    def test_run_with_schema_returns_the_parsed_object(self, sample: Sample) -> None:
        code, schema = sample.call("GET", "/triage/schema")
        assert code == 200 and schema == module_constant("05_structured_output", "TICKET_TRIAGE_SCHEMA")
        jsonschema.Draft202012Validator.check_schema(schema)
        variables, _, demo = parse_demo(SAMPLES / self.NAME / "demo.http")
        in_demo = [json.loads(_substitute(r.body, variables)) for r in demo if "TicketTriage" in r.body]
        assert [body["response_schema"] for body in in_demo] == [schema]  # demo.http sends the served schema
        session = key("ticket")
        ticket = f"Ticket {session}: I was charged twice for order 1002."
        triage = {"category": "billing", "priority": "urgent", "summary": "The customer was charged twice."}
        sample.model.script(Reply.json(triage))
        code, body = sample.run("Triage", ticket, session, response_schema=schema)
        assert code == 200, body
        assert body["response"] == triage
        jsonschema.validate(body["response"], schema)
        [request] = sample.model.asked(ticket)
        assert schema["properties"] == _sent_schema(request)["properties"]

        code, outcome = sample.call("GET", f"/agents/Triage/{session}/runs/{body['correlationId']}")
        assert code == 200 and outcome["response"] == triage

        code, body = sample.run("Triage", "Draft a two-sentence reply to the customer.", session)
        assert code == 200 and isinstance(body["response"], str), body
        entries = history(sample, "Triage", session)
        assert json.loads(entries[1]["content"]) == triage and len(entries) == 4

    def test_schema_must_describe_an_object(self, sample: Sample) -> None:
        code, body = sample.run("Triage", "Where is my parcel?", response_schema={"type": "array"})
        assert code == 400 and body["error"]["code"] == "invalid_response_schema"


def _sent_schema(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema a chat-completions request asked the answer to follow."""
    fmt = body.get("response_format") or {}
    assert fmt.get("type") == "json_schema", body
    schema: dict[str, Any] = fmt["json_schema"]["schema"]
    return schema


# 06: custom functions beside the agents --------------------------------------------------------------


@pytest.mark.e2e
class TestCustomFunctions:
    NAME = "06_custom_functions"

    @pytest.fixture(scope="class")
    def sample(self, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
        with running(self.NAME, azurite, tmp_path_factory, HEARTBEAT_SCHEDULE="*/2 * * * * *") as sample:
            yield sample

    def test_own_route_timer_and_entity(self, sample: Sample) -> None:
        body = sample.eventually("GET", "/about", lambda c, b: c == 200 and b["heartbeat"]["beats"] >= 1)
        assert body["app"] == "06_custom_functions" and body["agents"] == ["Assistant"]
        assert body["heartbeat"]["last"]["pastDue"] is False
        code, health = sample.call("GET", "/health")
        assert code == 200 and [a["name"] for a in health["agents"]] == ["Assistant"]

    def test_own_orchestration_completes(self, sample: Sample) -> None:
        texts = [
            "Durable Functions keeps state between steps.",
            "Agents answer questions.",
            "Both live in one function app.",
        ]
        code, started = sample.call("POST", "/reports", {"texts": texts})
        assert code == 202, started
        status = sample.eventually(
            "GET", started["statusQueryGetUri"], lambda c, b: c == 200 and b["runtimeStatus"] == "Completed"
        )
        assert status["name"] == "text_report"
        assert status["output"] == {
            "documents": 3,
            "words": 15,
            "characters": 98,
            "per_document": [
                {"words": 6, "characters": 44},
                {"words": 3, "characters": 24},
                {"words": 6, "characters": 30},
            ],
        }
        code, body = sample.call("POST", "/reports", {"texts": "not a list"})
        assert code == 400 and body["error"]["code"] == "texts_required"

    def test_agent_beside_them(self, sample: Sample) -> None:
        session = key("custom")
        code, body = sample.run("Assistant", "What is a durable orchestration?", session)
        assert code == 200 and body["response"] == "echo: What is a durable orchestration?", body
        assert len(history(sample, "Assistant", session)) == 2


# Static checks: demo.http, pins, settings, READMEs ----------------------------------------------------


@dataclass(frozen=True)
class DemoRequest:
    title: str
    method: str
    url: str
    content_type: str | None
    body: str


_REQUEST_LINE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(\S+)(?:\s+HTTP/\S+)?\s*$")
_VARIABLE = re.compile(r"^@(\w+)\s*=\s*(.*?)\s*$")


def parse_demo(path: Path) -> tuple[dict[str, str], list[str], list[DemoRequest]]:
    """REST Client's format: ``@name = value`` variables, ``###``-separated requests, ``# @name`` names."""
    variables: dict[str, str] = {}
    names: list[str] = []
    requests: list[DemoRequest] = []
    # [text before the first ###, title 1, block 1, title 2, block 2, ...]
    parts = re.split(r"^###([^\n]*)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    for title, block in zip(["", *parts[1::2]], parts[0::2], strict=True):
        lines = block.splitlines()
        request: tuple[str, str] | None = None
        headers: dict[str, str] = {}
        body_lines: list[str] = []
        in_body = False
        for line in lines:
            if in_body:
                body_lines.append(line)
            elif request is None:
                if match := _VARIABLE.match(line):
                    variables[match[1]] = match[2]
                elif match := re.match(r"^#\s*@name\s+(\w+)", line):
                    names.append(match[1])
                elif match := _REQUEST_LINE.match(line):
                    request = (match[1], match[2])
                else:
                    assert not line.strip() or line.startswith("#"), f"{path.name}: unexpected line {line!r}"
            elif not line.strip():
                in_body = True
            else:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if request is not None:
            body = "\n".join(body_lines).strip()
            requests.append(DemoRequest(title.strip(), request[0], request[1], headers.get("content-type"), body))
    return variables, names, requests


def _substitute(text: str, variables: dict[str, str]) -> str:
    text = re.sub(r"\{\{(\w+)\}\}", lambda m: variables.get(m[1], m[0]), text)
    # Values from earlier responses ({{name.response.body.$.field}}) stand for one path segment or a string.
    return re.sub(r"\{\{\w+\.response\.[^}]+\}\}", "from-response", text)


@pytest.fixture
def isolated_imports() -> Iterator[None]:
    """Loading an app edits sys.path and sys.modules['function_app']; put both back afterwards."""
    saved_path = list(sys.path)
    saved_module = sys.modules.get("function_app")
    yield
    sys.path[:] = saved_path
    if saved_module is None:
        sys.modules.pop("function_app", None)
    else:
        sys.modules["function_app"] = saved_module


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_demo_http_targets_routes_the_sample_has(
    name: str, isolated_imports: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for setting in ("AZURE_OPENAI_ENDPOINT", "OPENAI_API_KEY", "DIGEST_SCHEDULE", "HEARTBEAT_SCHEDULE"):
        monkeypatch.delenv(setting, raising=False)
    loaded = load_function_app(SAMPLES / name)
    agents = {a.lower() for a in getattr(loaded.app, "agents", {})}
    table: RouteTable[str] = RouteTable()
    for function in loaded.functions:
        if function.trigger_type == "httpTrigger":
            table.add(join_route("api", http_route(function)), function.name, http_methods(function))

    variables, names, requests = parse_demo(SAMPLES / name / "demo.http")
    assert variables.get("host") == DEMO_HOST
    assert requests and requests[0].method == "GET" and requests[0].url == "{{host}}/health"
    for request in requests:
        where = f"{name}/demo.http '{request.title}': {request.method} {request.url}"
        for reference in re.findall(r"\{\{(\w+)\.response\.", request.url + request.body):
            assert reference in names, f"{where}: no request is named '{reference}'"
        unknown = set(re.findall(r"\{\{(\w+)\}\}", request.url + request.body)) - set(variables)
        assert not unknown, f"{where}: undefined variables {unknown}"
        if request.content_type == "application/json":
            json.loads(_substitute(request.body, variables))
        if re.fullmatch(r"\{\{\w+\.response\.body\.\$\.\w+Uri\}\}", request.url):
            continue  # a link the previous answer carries (check-status URLs)
        url = _substitute(request.url, variables)
        assert url.startswith(DEMO_HOST + "/"), where
        path = url[len("http://localhost:7071") :]
        match = table.lookup(request.method, path)
        assert match is not None and not isinstance(match, MethodNotAllowed), f"{where}: no such route"
        if match.target in AGENT_FUNCTIONS and match.params["name"].lower() not in agents:
            assert "agent_not_found" in request.title, f"{where}: '{match.params['name']}' is not an agent here"


def _pins(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_files_stay_in_step_with_the_root(name: str) -> None:
    folder = SAMPLES / name
    for file in (
        "function_app.py",
        "host.json",
        "local.settings.sample.json",
        "requirements.txt",
        "README.md",
        "demo.http",
    ):
        assert (folder / file).is_file(), f"{name} lacks {file}"
    assert _pins(folder / "requirements.txt") == _pins(REPO / "requirements.txt")
    assert json.loads((folder / "host.json").read_text()) == json.loads((REPO / "host.json").read_text())
    values = json.loads((folder / "local.settings.sample.json").read_text())["Values"]
    assert all(isinstance(v, str) for v in values.values())
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,44}", values["TASKHUB_NAME"])
    readme = (folder / "README.md").read_text(encoding="utf-8")
    for section in (
        "## What it shows",
        "## Run it locally",
        "## Try it with demo.http",
        "## Expected responses",
        "## Deploy",
    ):
        assert section in readme, f"{name}/README.md lacks '{section}'"
    assert f"\n.venv/bin/durableagent start --app-dir samples/{name}\n```" in readme  # in the command block
    assert readme.count("```") % 2 == 0


def test_every_sample_has_end_to_end_tests() -> None:
    # Workflow and orchestration samples keep their end-to-end classes in sibling modules.
    import test_samples_orchestrations
    import test_samples_workflows

    namespaces = [globals(), vars(test_samples_workflows), vars(test_samples_orchestrations)]
    tested = sorted(
        {obj.NAME for names in namespaces for obj in names.values() if isinstance(obj, type) and hasattr(obj, "NAME")}
    )
    assert tested == SAMPLE_NAMES and len(SAMPLE_NAMES) == 14


def test_demo_parser_reads_named_requests_and_bodies(tmp_path: Path) -> None:
    demo = tmp_path / "demo.http"
    demo.write_text(
        "@host = http://localhost:7071/api\n\n### First\n# @name first\nPOST {{host}}/x HTTP/1.1\n"
        'Content-Type: application/json\n\n{"a": 1}\n\n### Second\nGET {{first.response.body.$.id}}\n',
        encoding="utf-8",
    )
    variables, names, requests = parse_demo(demo)
    assert variables == {"host": "http://localhost:7071/api"} and names == ["first"]
    assert [(r.title, r.method, r.url, r.content_type, r.body) for r in requests] == [
        ("First", "POST", "{{host}}/x", "application/json", '{"a": 1}'),
        ("Second", "GET", "{{first.response.body.$.id}}", None, ""),
    ]
