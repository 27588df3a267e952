"""End to end: queue, timer and HTTP-with-queue-output functions in the host subprocess, with Azurite."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, assert_eventually, copy_app

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "triggers"


@dataclass(frozen=True)
class Triggers:
    host: HostProcess
    connection: str
    suffix: str
    timer_log: Path

    def queue(self, role: str, *, base64_text: bool = True, poison: bool = False) -> QueueClient:
        """A client for one of the app's queues (``input``, ``results``, ``failing``, ...)."""
        name = f"{role}-{self.suffix}" + ("-poison" if poison else "")
        if base64_text:
            return QueueClient.from_connection_string(
                self.connection,
                name,
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
            )
        return QueueClient.from_connection_string(self.connection, name)


@pytest.fixture(scope="module")
def triggers(azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Triggers]:
    root = tmp_path_factory.mktemp("triggers")
    suffix = uuid.uuid4().hex[:10]
    timer_dir = root / "timer"
    timer_dir.mkdir()
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": "E2eTriggers",
        "INPUT_QUEUE": f"input-{suffix}",
        "RESULTS_QUEUE": f"results-{suffix}",
        "FAILING_QUEUE": f"failing-{suffix}",
        "HTTP_OUT_QUEUE": f"httpout-{suffix}",
        "QUEUE_SUFFIX": suffix,
        "TIMER_LOG_DIR": str(timer_dir),
    }
    # The trigger queues exist before the host starts, as they would in a deployed app.
    for name in ("INPUT_QUEUE", "FAILING_QUEUE"):
        queue = QueueClient.from_connection_string(azurite.connection_string, env[name])
        with queue, contextlib.suppress(ResourceExistsError):
            queue.create_queue()
    with HostProcess(copy_app(APP, root / "app"), env=env) as host:
        yield Triggers(host, azurite.connection_string, suffix, timer_dir / "heartbeat.log")


def drain(queue: QueueClient, into: list[str]) -> None:
    """Move every visible message of ``queue`` into ``into`` (deleting them)."""
    with contextlib.suppress(Exception):  # the queue may not exist yet
        for message in queue.receive_messages(messages_per_page=32):
            into.append(message.content)
            queue.delete_message(message)


def test_queue_trigger_processes_base64_messages(triggers: Triggers) -> None:
    bodies = [f"item {i} ✓" for i in range(5)]
    with triggers.queue("input") as queue:
        for body in bodies:
            queue.send_message(body)
    results: list[str] = []
    with triggers.queue("results") as out:
        assert_eventually(
            lambda: drain(out, results) or len(results) >= len(bodies),
            timeout=30,
            message=f"results so far: {results}\n{triggers.host.log()[-3000:]}",
        )
    decoded = [json.loads(r) for r in results]
    assert sorted(d["body"] for d in decoded) == sorted(bodies)
    assert {d["dequeueCount"] for d in decoded} == {1}
    assert len({d["id"] for d in decoded}) == len(bodies)


def test_failing_message_goes_to_the_poison_queue(triggers: Triggers) -> None:
    body = f"poison-{uuid.uuid4().hex[:6]}"
    with triggers.queue("failing") as queue:
        queue.send_message(body)
    poisoned: list[str] = []
    with triggers.queue("failing", poison=True) as poison:
        assert_eventually(
            lambda: drain(poison, poisoned) or body in poisoned,
            timeout=30,
            message=f"not poisoned: {poisoned}\n{triggers.host.log()[-3000:]}",
        )
    assert poisoned == [body]
    # host.json maxDequeueCount is 3: three attempts, then the poison queue.
    log = triggers.host.log()
    assert f"cannot process {body!r} (attempt 3)" in log
    assert f"cannot process {body!r} (attempt 4)" not in log
    with triggers.queue("failing") as queue:
        assert queue.get_queue_properties().approximate_message_count == 0


def test_timer_runs_on_startup_and_on_schedule(triggers: Triggers) -> None:
    def lines() -> list[str]:
        return triggers.timer_log.read_text().splitlines() if triggers.timer_log.exists() else []

    # runOnStartup ran once as the host started; the */2 schedule keeps adding lines.
    assert_eventually(lambda: len(lines()) >= 1, timeout=10, message="the timer never ran")
    seen = len(lines())
    assert_eventually(lambda: len(lines()) >= seen + 2, timeout=10, message=f"no schedule runs: {lines()}")
    assert lines()[0].endswith("past_due=False")  # runOnStartup is never past due


def test_http_function_queue_output(triggers: Triggers) -> None:
    body = f"from http {uuid.uuid4().hex[:6]}"
    code, _, text = triggers.host.request("POST", "/api/enqueue", body=body.encode())
    assert (code, text) == (202, b"queued")
    received: list[str] = []
    with triggers.queue("httpout") as queue:
        assert_eventually(lambda: drain(queue, received) or bool(received), timeout=10)
    assert received == [body]
    # The output is base64-encoded like the Functions host writes it (messageEncoding default).
    with triggers.queue("httpout", base64_text=False) as raw:
        triggers.host.request("POST", "/api/enqueue", body=b"raw check")
        plain: list[str] = []
        assert_eventually(lambda: drain(raw, plain) or bool(plain), timeout=10)
    assert plain == [base64.b64encode(b"raw check").decode()]


def test_http_queue_output_name_with_a_setting_inside(triggers: Triggers) -> None:
    """The host resolves %SETTING% anywhere in a binding property, not only as the whole value."""
    code, _, _ = triggers.host.request("POST", "/api/enqueue-prefixed", body=b"prefixed")
    assert code == 202
    received: list[str] = []
    with triggers.queue("prefixed") as queue:
        assert_eventually(lambda: drain(queue, received) or bool(received), timeout=10)
    assert received == ["prefixed"]
