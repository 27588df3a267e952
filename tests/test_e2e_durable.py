"""End to end: the durable patterns through real HTTP against the host as a subprocess, with Azurite.

One host serves the module (the tests use distinct instance ids and entity keys); the key and the
broken-app tests start their own.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import REPO, HostProcess, assert_eventually, copy_app

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "durable_basics"
WEBHOOK = "/runtime/webhooks/durabletask"


def _env(azurite: AzuriteInstance, hub: str, **extra: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": hub, **extra}


@pytest.fixture(scope="module")
def host(azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    root = tmp_path_factory.mktemp("durable_basics")
    retries = root / "retries"
    retries.mkdir()
    app_dir = copy_app(APP, root / "app")
    with HostProcess(app_dir, env=_env(azurite, "E2eDurable", RETRY_STATE_DIR=str(retries))) as proc:
        yield proc


@pytest.fixture
def retry_dir(host: HostProcess) -> Path:
    return host.app_dir.parent / "retries"


def _json(body: bytes) -> Any:
    return json.loads(body)


def start(host: HostProcess, name: str, body: Any = None, instance_id: str | None = None) -> dict[str, Any]:
    """Start through the app's HTTP starter; returns the check-status payload."""
    query = f"?instanceId={instance_id}" if instance_id else ""
    code, headers, raw = host.request("POST", f"/api/start/{name}{query}", body=body)
    assert code == 202, (code, raw)
    payload = _json(raw)
    assert headers["Location"] == payload["statusQueryGetUri"]
    assert headers["Retry-After"] == "10"
    return payload


def get_url(url: str, method: str = "GET", data: bytes | None = None, **headers: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_completed(host: HostProcess, instance_id: str, timeout: float = 60.0) -> dict[str, Any]:
    status = host.wait_for(instance_id, timeout=timeout)
    assert status["runtimeStatus"] == "Completed", status
    return status


# Patterns -----------------------------------------------------------------------------------------


def test_chaining_through_the_check_status_urls(host: HostProcess) -> None:
    payload = start(host, "chaining")
    # The starter built its payload from the request's origin: the URLs work as given.
    assert payload["statusQueryGetUri"].startswith(f"{host.base_url}{WEBHOOK}/instances/{payload['id']}?")

    def done() -> bool:
        code, body = get_url(payload["statusQueryGetUri"])
        return code == 200 and _json(body)["runtimeStatus"] == "Completed"

    assert_eventually(done, timeout=30, message="chaining did not complete")
    _, body = get_url(payload["statusQueryGetUri"])
    status = _json(body)
    assert status["name"] == "chaining"
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_chaining_wait_for_completion(host: HostProcess) -> None:
    code, headers, body = host.request("POST", "/api/startwait/chaining?timeoutMs=20000")
    assert code == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert _json(body) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_fan_out_fan_in_100_activities(host: HostProcess) -> None:
    payload = start(host, "fan_out_fan_in", 100)
    status = wait_completed(host, payload["id"])
    squares = [i * i for i in range(100)]
    assert status["output"] == {"squares": squares, "total": sum(squares)}


def test_human_interaction_approved_via_send_event_uri(host: HostProcess) -> None:
    payload = start(host, "approval", {"timeoutSeconds": 120})
    host.wait_for(payload["id"], done=lambda s: s["runtimeStatus"] == "Running")
    url = payload["sendEventPostUri"].replace("{eventName}", "Approval")
    code, _ = get_url(url, "POST", b"true", **{"Content-Type": "application/json"})
    assert code == 202
    assert wait_completed(host, payload["id"])["output"] == "approved"


def test_human_interaction_times_out(host: HostProcess) -> None:
    began = time.monotonic()
    payload = start(host, "approval", {"timeoutSeconds": 1})
    assert wait_completed(host, payload["id"])["output"] == "timeout"
    assert time.monotonic() - began >= 1.0


def test_entity_counter_200_concurrent_signals(host: HostProcess) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    path = f"{WEBHOOK}/entities/counter/{key}"

    def signal(_: int) -> int:
        # A body that is not application/json reaches the entity as a string: get_input() gives 1.
        return host.request("POST", f"{path}?op=add", body=b"1", headers={"Content-Type": "text/plain"})[0]

    with ThreadPoolExecutor(max_workers=32) as pool:
        codes = list(pool.map(signal, range(200)))
    assert codes == [202] * 200

    def total_is_200() -> bool:
        code, _, body = host.request("GET", path)
        return code == 200 and _json(body) == 200

    assert_eventually(total_is_200, timeout=30, message="the counter never reached 200")

    # reset, then delete (destruct_on_exit): the entity stops existing.
    assert host.request("POST", f"{path}?op=reset")[0] == 202
    assert_eventually(lambda: _json(host.request("GET", path)[2]) == 0, timeout=10)
    assert host.request("DELETE", path)[0] == 202
    assert_eventually(lambda: host.request("GET", path)[0] == 404, timeout=10)
    code, _, body = host.request("GET", path)
    # The extension's 404 has no body; the local host adds its error object.
    assert (code, _json(body)["error"]["code"]) == (404, "entity_not_found")


def test_orchestration_calls_the_entity(host: HostProcess) -> None:
    key = f"o-{uuid.uuid4().hex[:8]}"
    payload = start(host, "counter_user", key)
    assert wait_completed(host, payload["id"])["output"] == 12
    code, _, body = host.request("GET", f"{WEBHOOK}/entities/counter/{key}")
    assert (code, _json(body)) == (200, 12)


def test_sub_orchestrations_with_and_without_instance_id(host: HostProcess) -> None:
    parent_id = f"parent-{uuid.uuid4().hex[:8]}"
    start(host, "parent", instance_id=parent_id)
    named, unnamed = wait_completed(host, parent_id)["output"]
    assert named == {"n": 1, "square": 1, "instanceId": f"{parent_id}-child", "parent": parent_id}
    assert {k: unnamed[k] for k in ("n", "square", "parent")} == {"n": 2, "square": 4, "parent": parent_id}
    # DTFx names an id-less sub-orchestration "<parent execution id>:<task id>".
    assert re.fullmatch(r"[0-9a-f]+:1", unnamed["instanceId"]), unnamed["instanceId"]
    for child_id in (named["instanceId"], unnamed["instanceId"]):
        child = wait_completed(host, child_id)
        assert child["name"] == "child"


def test_retry_succeeds_on_the_third_attempt(host: HostProcess, retry_dir: Path) -> None:
    key = f"r-{uuid.uuid4().hex[:8]}"
    payload = start(host, "retrying", {"key": key, "attempts": 3})
    assert wait_completed(host, payload["id"])["output"] == "succeeded on attempt 3"
    assert (retry_dir / f"{key}.attempts").read_text() == "3"


def test_retry_exhausted_fails_the_orchestration(host: HostProcess, retry_dir: Path) -> None:
    key = f"x-{uuid.uuid4().hex[:8]}"
    payload = start(host, "retrying", {"key": key, "attempts": 2})
    status = host.wait_for(payload["id"])
    assert status["runtimeStatus"] == "Failed"
    assert "flaky failure #2" in status["output"]
    assert (retry_dir / f"{key}.attempts").read_text() == "2"


def test_failing_orchestrator(host: HostProcess) -> None:
    payload = start(host, "failing")
    status = host.wait_for(payload["id"])
    assert status["runtimeStatus"] == "Failed"
    assert status["output"] == "Orchestrator function 'failing' failed: the orchestrator gave up on purpose"


def test_continue_as_new(host: HostProcess) -> None:
    payload = start(host, "counter_loop", {"n": 0, "until": 5})
    status = wait_completed(host, payload["id"])
    assert status["output"] == 5
    # The last generation's input, kept as the JSON string the SDK sent (the same quirk as start_new).
    assert status["input"] == '{"n": 5, "until": 5}'


def test_custom_status_while_waiting(host: HostProcess) -> None:
    payload = start(host, "with_custom_status")
    running = host.wait_for(payload["id"], done=lambda s: s["customStatus"] is not None)
    assert running["runtimeStatus"] == "Running"
    assert running["customStatus"] == {"stage": "waiting for Go", "progress": 50}
    url = payload["sendEventPostUri"].replace("{eventName}", "Go")
    assert get_url(url, "POST", b'{"ok": true}', **{"Content-Type": "application/json"})[0] == 202
    status = wait_completed(host, payload["id"])
    assert status["output"] == {"received": {"ok": True}}
    assert status["customStatus"] == {"stage": "done", "progress": 100}


def test_unknown_orchestrator_surfaces_the_hosts_400(host: HostProcess) -> None:
    code, _, body = host.request("POST", "/api/start/no_such_orchestrator")
    assert code == 400
    text = body.decode()
    assert text.startswith(
        "The function 'no_such_orchestrator' doesn't exist, is disabled, or is not an orchestrator function."
    ), text
    assert "'chaining'" in text  # the extension lists the active orchestrator functions


# Host-level behaviour -----------------------------------------------------------------------------


def test_function_keys_are_enforced_when_asked(azurite: AzuriteInstance, tmp_path: Path) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    env = _env(azurite, "E2eKeys", RETRY_STATE_DIR=str(tmp_path))
    with HostProcess(app_dir, env=env, extra_args=["--enforce-keys"]) as proc:
        keys = json.loads((app_dir / ".durableagent" / "keys.json").read_text())
        key = keys["functionKeys"]["default"]
        assert proc.request("POST", "/api/startwait/chaining")[0] == 401
        assert proc.request("POST", "/api/startwait/chaining?code=wrong")[0] == 401
        code, _, body = proc.request("POST", "/api/startwait/chaining", headers={"x-functions-key": key})
        assert (code, _json(body)) == (200, ["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
        code, _, body = proc.request("POST", f"/api/startwait/chaining?code={key}")
        assert (code, _json(body)) == (200, ["Hello Tokyo!", "Hello Seattle!", "Hello London!"])


def test_app_that_fails_to_import_stops_the_host(tmp_path: Path) -> None:
    app_dir = tmp_path / "broken"
    app_dir.mkdir()
    (app_dir / "host.json").write_text((APP / "host.json").read_text())
    (app_dir / "function_app.py").write_text(
        "import azure.functions as func\n\n"
        "def _configure():\n"
        "    raise RuntimeError('settings are broken on purpose')\n\n"
        "_configure()\n"
        "app = func.FunctionApp()\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "durableagent.devhost",
            "--app-dir",
            str(app_dir),
            "--port",
            "0",
            "--no-azurite",
        ],
        cwd=REPO,
        env={"TASKHUB_NAME": "E2eBroken", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback (most recent call last)" in output
    assert "in _configure" in output
    assert "RuntimeError: settings are broken on purpose" in output


def test_enforced_keys_protect_the_durable_webhook(azurite: AzuriteInstance, tmp_path: Path) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    env = _env(azurite, "E2eWebhookKeys", RETRY_STATE_DIR=str(tmp_path))
    with HostProcess(app_dir, env=env, extra_args=["--enforce-keys"]) as proc:
        keys = json.loads((app_dir / ".durableagent" / "keys.json").read_text())
        code, _, body = proc.request(
            "POST", "/api/start/chaining", headers={"x-functions-key": keys["functionKeys"]["default"]}
        )
        assert code == 202
        # A function key must not hand out the master key.
        assert keys["masterKey"] not in body.decode()
        instance_id = _json(body)["id"]
        assert proc.request("GET", f"{WEBHOOK}/instances/{instance_id}")[0] == 401
        assert proc.request("POST", f"{WEBHOOK}/entities/counter/k?op=add", body=b"1")[0] == 401
        # The check-status URL carries the durabletask_extension system key, and it opens the webhook.
        system_key = keys["systemKeys"]["durabletask_extension"]
        assert f"code={system_key}" in _json(body)["statusQueryGetUri"]
        assert proc.request("GET", f"{WEBHOOK}/instances/{instance_id}?code={system_key}")[0] in (200, 202)
        assert (
            proc.request("GET", f"{WEBHOOK}/instances/{instance_id}?code={keys['functionKeys']['default']}")[0] == 401
        )
