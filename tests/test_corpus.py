"""The corpus: public-style Durable Functions apps in ``tests/corpus``, run unchanged as their READMEs say.

Each folder is an app as people write it (``function_app.py``, ``host.json``, ``requirements.txt`` and a
README saying what to send and what comes back). One parametrised test per app starts the local host on a
copy of it with Azurite, does what the README says, over HTTP only, and checks what the README promises.
``pytest -s`` prints a table of the results.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, copy_app

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).parent / "corpus"
APPS = sorted(p.name for p in CORPUS.iterdir() if (p / "function_app.py").is_file())
TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")
RESULTS: dict[str, str] = {}


@dataclass(frozen=True)
class Starter:
    """Starts the local host on one copy of an app (a scenario may stop it, edit the app, start it again)."""

    app_dir: Path
    env: dict[str, str]

    def __call__(self) -> HostProcess:
        return HostProcess(self.app_dir, env=self.env)


# HTTP as a README reader does it ------------------------------------------------------------------


def http(method: str, url: str, body: Any = None, *, raw: bytes | None = None) -> tuple[int, Any]:
    """One request; the answer's JSON (or text, or None when empty)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            code, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            code, payload = error.code, error.read()
    text = payload.decode("utf-8")
    try:
        return code, json.loads(text) if text else None
    except json.JSONDecodeError:
        return code, text


def started(host: HostProcess, path: str, body: Any = None) -> dict[str, Any]:
    """POST to a starter; the README promises 202 with the check-status payload."""
    code, payload = http("POST", host.base_url + path, body)
    assert code == 202, (code, payload)
    assert {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri"} <= set(payload), payload
    return dict(payload)


def poll(
    urls: dict[str, Any], until: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll ``statusQueryGetUri`` until ``until`` holds (default: the instance finished)."""
    check = until or (lambda status: status["runtimeStatus"] in TERMINAL)
    deadline = time.monotonic() + timeout
    status: Any = None
    while time.monotonic() < deadline:
        code, status = http("GET", urls["statusQueryGetUri"])
        if code in (200, 202) and isinstance(status, dict) and check(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"not there after {timeout}s: {status}")


def completed(urls: dict[str, Any], timeout: float = 60.0) -> Any:
    status = poll(urls, timeout=timeout)
    assert status["runtimeStatus"] == "Completed", status
    return status["output"]


def eventually(read: Callable[[], tuple[int, Any]], expected: tuple[int, Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    seen = read()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = read()
    assert seen == expected


# One scenario per app: its README, step by step --------------------------------------------------------


def chaining(start: Starter, azurite: AzuriteInstance) -> str:
    with start() as host:
        output = completed(started(host, "/api/orchestrators/hello_orchestrator"))
    assert output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    return "3 activities in order"


def fan_out_fan_in(start: Starter, azurite: AzuriteInstance) -> str:
    documents = ["the quick brown fox", "jumps over", "the lazy dog", "", "durable functions fan out"]
    with start() as host:
        output = completed(started(host, "/api/orchestrators/word_count_orchestrator", {"documents": documents}))
    assert output == {"documents": 5, "counts": [4, 2, 3, 0, 4], "total": 13}
    return "5 parallel activities, fan-in in order"


def versioning(start: Starter, azurite: AzuriteInstance) -> str:
    with start() as host:
        first = completed(started(host, "/api/orders", {"item": "book", "quantity": 3}))
        waiting = started(host, "/api/orders", {"item": "lamp", "quantity": 2, "needsApproval": True})
        status = poll(waiting, until=lambda s: s["customStatus"] == "Waiting for approval")
        assert status["runtimeStatus"] == "Running"
    assert first == {"version": "1.0", "item": "book", "total": 30.0}
    # Step 3: stop, raise defaultVersion, start again (same task hub).
    host_json = start.app_dir / "host.json"
    document = json.loads(host_json.read_text())
    document["extensions"]["durableTask"]["defaultVersion"] = "2.0"
    host_json.write_text(json.dumps(document, indent=2))
    with start() as host:
        second = completed(started(host, "/api/orders", {"item": "book", "quantity": 3}))
        event_url = waiting["sendEventPostUri"].replace("{eventName}", "Approve")
        event_url = host.base_url + event_url[event_url.index("/runtime/") :]  # the restarted host's port
        assert http("POST", event_url, {})[0] == 202
        approved = completed({"statusQueryGetUri": host.base_url + _path(waiting["statusQueryGetUri"])})
    assert second == {"version": "2.0", "item": "book", "total": 27.0}
    assert approved == {"version": "1.0", "item": "lamp", "total": 20.0}
    return "1.0 -> 2.0 by host.json; in-flight 1.0 kept its branch"


def _path(url: str) -> str:
    return url[url.index("/runtime/") :]


def blob_pipeline(start: Starter, azurite: AzuriteInstance) -> str:
    text = "roses are red\nviolets are blue\n\nfunctions are durable"
    with start() as host:
        assert http("GET", host.base_url + "/api/reports/poem")[0] == 404
        assert http("PUT", host.base_url + "/api/uploads/poem", raw=text.encode())[0] == 202
        expected = (200, {"name": "poem", "lines": 4, "words": 9})
        eventually(lambda: http("GET", host.base_url + "/api/reports/poem"), expected)
        # Any storage tool works too: a changed file under the same name runs the pipeline again.
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        service.get_blob_client("pipeline-uploads", "poem.txt").upload_blob(b"one more line", overwrite=True)
        expected = (200, {"name": "poem", "lines": 1, "words": 3})
        eventually(lambda: http("GET", host.base_url + "/api/reports/poem"), expected)
    return "PUT -> blob trigger -> orchestration -> report blob; update re-runs"


def http_polling(start: Starter, azurite: AzuriteInstance) -> str:
    with start() as host:
        output = completed(started(host, "/api/orchestrators/run_report", {"seconds": 2}))
    assert output["statusCode"] == 200 and output["result"]["status"] == "done", output
    assert output["polls"] >= 1
    return f"call_http 202 -> timer -> poll ({output['polls']} polls) -> 200"


def human_interaction(start: Starter, azurite: AzuriteInstance) -> str:
    with start() as host:
        urls = started(host, "/api/expenses", {"description": "conference ticket", "timeoutSeconds": 60})
        status = poll(urls, until=lambda s: s["customStatus"] == "Waiting for a decision")
        assert status["runtimeStatus"] == "Running"
        decision = {"approved": True, "by": "Dana"}
        assert http("POST", f"{host.base_url}/api/expenses/{urls['id']}/decision", decision)[0] == 202
        assert completed(urls) == "Expense 'conference ticket' approved by Dana"
        late = started(host, "/api/expenses", {"description": "conference ticket", "timeoutSeconds": 2})
        began = time.monotonic()
        assert completed(late) == "Expense 'conference ticket' escalated: no decision in time"
        assert time.monotonic() - began >= 1.5  # the timer, not something sooner, decided
    return "event before timer approves; timer alone escalates"


def eternal_orchestration(start: Starter, azurite: AzuriteInstance) -> str:
    with start() as host:
        urls = started(host, "/api/heartbeat/start?intervalSeconds=1")
        assert urls["id"] == "heartbeat"
        status = poll(urls, until=lambda s: (s["customStatus"] or {}).get("beats", 0) >= 3, timeout=30)
        # The Python SDK sends inputs as JSON text, so the status shows the text (as in Azure).
        round_input = json.loads(status["input"]) if isinstance(status["input"], str) else status["input"]
        assert status["runtimeStatus"] == "Running" and round_input["beats"] >= 2, status
        code, text = http("POST", host.base_url + "/api/heartbeat/start")
        assert (code, text) == (409, "'heartbeat' is already running")
        assert http("POST", host.base_url + "/api/heartbeat/stop")[0] == 202
        status = poll(urls)
    assert status["runtimeStatus"] == "Terminated" and status["output"] == "stopped over HTTP", status
    return "continue_as_new rounds counted; singleton 409; terminated"


def entity_counter(start: Starter, azurite: AzuriteInstance) -> str:
    with start() as host:
        base = host.base_url + "/api/counters"
        assert http("GET", f"{base}/apples")[0] == 404
        for amount in (5, 7):
            assert http("POST", f"{base}/apples/add", raw=str(amount).encode())[0] == 202
        eventually(lambda: http("GET", f"{base}/apples"), (200, {"key": "apples", "value": 12}))
        assert completed(started(host, "/api/counters/apples/double")) == 24
        assert http("GET", f"{base}/apples") == (200, {"key": "apples", "value": 24})
        assert http("POST", f"{base}/apples/reset")[0] == 202
        eventually(lambda: http("GET", f"{base}/apples"), (200, {"key": "apples", "value": 0}))
    return "signals, read state, call_entity from an orchestration"


SCENARIOS: dict[str, Callable[[Starter, AzuriteInstance], str]] = {
    "blob_pipeline": blob_pipeline,
    "chaining": chaining,
    "entity_counter": entity_counter,
    "eternal_orchestration": eternal_orchestration,
    "fan_out_fan_in": fan_out_fan_in,
    "http_polling": http_polling,
    "human_interaction": human_interaction,
    "versioning": versioning,
}


# The table -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def results_table() -> Iterator[None]:
    yield
    if RESULTS:
        width = max(len(name) for name in RESULTS)
        lines = [f"{'app'.ljust(width)}  result", f"{'-' * width}  {'-' * 6}"]
        lines += [f"{name.ljust(width)}  {RESULTS[name]}" for name in sorted(RESULTS)]
        print("\n\nCorpus (tests/corpus), run through the local host as each README says:\n" + "\n".join(lines))


def test_every_corpus_app_has_a_scenario_and_the_files_a_public_app_has() -> None:
    assert sorted(SCENARIOS) == APPS
    for name in APPS:
        assert {"function_app.py", "host.json", "requirements.txt", "README.md"} <= {
            p.name for p in (CORPUS / name).iterdir()
        }, name


@pytest.mark.parametrize("name", APPS)
def test_corpus_app_does_what_its_readme_says(name: str, azurite: AzuriteInstance, tmp_path: Path) -> None:
    app_dir = copy_app(CORPUS / name, tmp_path / name)
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "DURABLEAGENT_BLOB_POLLING_SECONDS": "0.5",  # the blob scan every 0.5 s instead of 10 s
    }
    RESULTS[name] = "FAIL"
    try:
        detail = SCENARIOS[name](Starter(app_dir, env), azurite)
    except BaseException as error:
        RESULTS[name] = f"FAIL: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:110]
        logs = sorted(app_dir.glob("host-*.log"))
        raise AssertionError("\n".join(p.read_text(errors="replace")[-3000:] for p in logs)) from error
    RESULTS[name] = f"pass: {detail}"
