"""The ``DurableOrchestrationClient`` contract: every SDK method against the host, plus the raw webhook API.

Each client method runs inside a real HTTP function of ``tests/apps/client_contract`` (so the SDK talks
to the host's rpcBaseUrl exactly as in Azure) and the function answers what the SDK returned or raised.
The expectations are the extension's behaviour as the SDK 1.7.0 sees it, quirks included
(``reference/durable-protocol.md`` §4).
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, assert_eventually, copy_app

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "client_contract"
WEBHOOK = "/runtime/webhooks/durabletask"
MANAGEMENT_URL_KEYS = {
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "rewindPostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
}


@pytest.fixture(scope="module")
def host(azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    app_dir = copy_app(APP, tmp_path_factory.mktemp("client_contract") / "app")
    env = {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": "E2eClientContract"}
    with HostProcess(app_dir, env=env) as proc:
        yield proc


# Calling the SDK through the app ------------------------------------------------------------------


def call(host: HostProcess, method: str, **args: Any) -> dict[str, Any]:
    code, _, body = host.request("POST", f"/api/client/{method}", body=args)
    assert code == 200, (code, body, host.log()[-3000:])
    envelope: dict[str, Any] = json.loads(body)
    return envelope


def result(host: HostProcess, method: str, **args: Any) -> Any:
    envelope = call(host, method, **args)
    assert "result" in envelope, envelope
    return envelope["result"]


def raised(host: HostProcess, method: str, **args: Any) -> str:
    envelope = call(host, method, **args)
    assert "raised" in envelope, envelope
    message: str = envelope["raised"]["message"]
    return message


def status(host: HostProcess, instance_id: str, **options: bool) -> dict[str, Any]:
    found: dict[str, Any] = result(host, "get_status", instanceId=instance_id, **options)
    return found


def new_id(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def start(host: HostProcess, name: str, data: Any = None, instance_id: str | None = None) -> str:
    args: dict[str, Any] = {"name": name, "instanceId": instance_id or new_id()}
    if data is not None:
        args["input"] = data
    started: str = result(host, "start_new", **args)
    return started


def completed(host: HostProcess, instance_id: str) -> dict[str, Any]:
    done = host.wait_for(instance_id, timeout=30)
    assert done["runtimeStatus"] == "Completed", done
    return done


def running_waiter(host: HostProcess) -> str:
    instance_id = start(host, "waiter")
    host.wait_for(instance_id, timeout=30, done=lambda s: s["customStatus"] == "waiting")
    return instance_id


def utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def raw(
    host: HostProcess, method: str, path: str, data: bytes | None = None, content_type: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": content_type} if content_type else {}
    return host.request(method, path, body=data, headers=headers)


def not_found(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, str]:
    """Status and ``error.code`` of an answer. The extension's 404s have empty bodies; the local host
    adds its JSON error object (a documented deviation)."""
    code, _, body = answer
    # Only a 404 is read: while polling, a 200 carries the entity's own state.
    return code, json.loads(body)["error"]["code"] if code == 404 and body else ""


# start_new ----------------------------------------------------------------------------------------


def test_start_new_without_id_or_input(host: HostProcess) -> None:
    instance_id = result(host, "start_new", name="echo")
    assert re.fullmatch(r"[0-9a-f]{32}", instance_id), instance_id  # Guid.ToString("N")
    completed(host, instance_id)
    found = status(host, instance_id)["json"]
    assert found["name"] == "echo"
    assert found["runtimeStatus"] == "Completed"
    assert found["input"] is None
    assert found["output"] is None


def test_start_new_with_id_and_dict_input_keeps_the_input_as_a_string(host: HostProcess) -> None:
    instance_id = new_id()
    assert result(host, "start_new", name="echo", instanceId=instance_id, input={"a": 1, "b": [1, 2]}) == instance_id
    done = completed(host, instance_id)
    assert done["output"] == {"a": 1, "b": [1, 2]}  # the orchestrator saw a dict...
    found = status(host, instance_id)["json"]
    assert found["input"] == '{"a": 1, "b": [1, 2]}'  # ...but the status shows the JSON string (quirk)
    assert found["output"] == {"a": 1, "b": [1, 2]}


def test_start_new_with_a_string_input(host: HostProcess) -> None:
    instance_id = start(host, "echo", "hello")
    assert completed(host, instance_id)["output"] == "hello"
    assert status(host, instance_id)["json"]["input"] == '"hello"'


def test_start_new_unknown_orchestrator_raises_the_hosts_message(host: HostProcess) -> None:
    message = raised(host, "start_new", name="nope")
    assert message.startswith("The function 'nope' doesn't exist, is disabled, or is not an orchestrator function.")


def test_start_new_over_a_running_instance_raises(host: HostProcess) -> None:
    instance_id = running_waiter(host)
    assert "already exists" in raised(host, "start_new", name="waiter", instanceId=instance_id)
    result(host, "terminate", instanceId=instance_id, reason="cleanup")


# get_status ---------------------------------------------------------------------------------------


def test_get_status_history_and_input_options(host: HostProcess) -> None:
    instance_id = start(host, "echo", {"x": 1})
    completed(host, instance_id)

    plain = status(host, instance_id)
    assert plain["truthy"] is True
    assert plain["historyEvents"] is None
    # show_input=False sends no showInput at all, and the host's default is true: the input is there.
    assert plain["json"]["input"] == '{"x": 1}'
    assert set(plain["json"]) >= {"name", "instanceId", "createdTime", "lastUpdatedTime", "runtimeStatus"}

    history = status(host, instance_id, showHistory=True)["historyEvents"]
    assert [e["EventType"] for e in history] == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]
    assert history[1]["FunctionName"] == "identity"
    assert history[2]["OrchestrationStatus"] == "Completed"
    assert all("Result" not in e and "Input" not in e for e in history)

    with_output = status(host, instance_id, showHistory=True, showHistoryOutput=True)["historyEvents"]
    assert with_output[1]["Result"] == {"x": 1}
    assert with_output[2]["Result"] == {"x": 1}


def test_get_status_of_an_unknown_instance_is_falsy(host: HostProcess) -> None:
    assert status(host, new_id("missing")) == {"truthy": False, "json": None, "historyEvents": None}


def test_get_status_all_lists_instances(host: HostProcess) -> None:
    instance_id = start(host, "echo", 1)
    completed(host, instance_id)
    everything = result(host, "get_status_all")
    mine = [s for s in everything if s["instanceId"] == instance_id]
    assert len(mine) == 1
    assert mine[0]["runtimeStatus"] == "Completed"
    assert mine[0]["output"] == 1


def test_get_status_by_time_status_and_prefix(host: HostProcess) -> None:
    prefix = new_id("by")
    before = datetime.now(timezone.utc) - timedelta(seconds=2)
    done = [start(host, "echo", i, f"{prefix}-{i}") for i in (1, 2)]
    waiting = start(host, "waiter", instance_id=f"{prefix}-3")
    for instance_id in done:
        completed(host, instance_id)
    host.wait_for(waiting, done=lambda s: s["runtimeStatus"] == "Running")

    def ids(**query: Any) -> set[str]:
        return {s["instanceId"] for s in result(host, "get_status_by", prefix=prefix, **query)}

    assert ids() == {*done, waiting}
    assert ids(runtimeStatus=["Running"]) == {waiting}
    assert ids(runtimeStatus=["Completed", "Failed"]) == set(done)
    assert ids(createdTimeFrom=utc(before), createdTimeTo=utc(datetime.now(timezone.utc) + timedelta(minutes=1))) == {
        *done,
        waiting,
    }
    assert ids(createdTimeFrom=utc(datetime.now(timezone.utc) + timedelta(hours=1))) == set()
    assert (
        ids(createdTimeFrom=utc(before - timedelta(hours=2)), createdTimeTo=utc(before - timedelta(hours=1))) == set()
    )
    result(host, "terminate", instanceId=waiting, reason="cleanup")


# raise_event, terminate, suspend/resume -----------------------------------------------------------


def test_raise_event_delivers_a_dict_as_its_json_string(host: HostProcess) -> None:
    instance_id = running_waiter(host)
    assert result(host, "raise_event", instanceId=instance_id, eventName="Go", eventData={"x": 1}) is None
    # Azure/azure-functions-durable-python#295: the SDK double-encodes, the orchestrator gets a str.
    assert completed(host, instance_id)["output"] == {"payload": '{"x": 1}', "type": "str"}


def test_raise_event_to_a_finished_or_unknown_instance_raises(host: HostProcess) -> None:
    instance_id = start(host, "echo", 1)
    completed(host, instance_id)
    message = raised(host, "raise_event", instanceId=instance_id, eventName="Go", eventData=1)
    assert message == f"Instance with ID {instance_id} is gone: either completed or failed"
    unknown = new_id("missing")
    message = raised(host, "raise_event", instanceId=unknown, eventName="Go", eventData=1)
    assert message == f"No instance with ID {unknown} found."


def test_terminate(host: HostProcess) -> None:
    instance_id = running_waiter(host)
    assert result(host, "terminate", instanceId=instance_id, reason="enough of this") is None
    done = host.wait_for(instance_id)
    assert (done["runtimeStatus"], done["output"]) == ("Terminated", "enough of this")
    # The API answers 410 for a finished instance, which the SDK 1.7.0 accepts without raising.
    assert result(host, "terminate", instanceId=instance_id, reason="again") is None
    assert host.status(instance_id)["output"] == "enough of this"  # type: ignore[index]
    unknown = new_id("missing")
    assert raised(host, "terminate", instanceId=unknown, reason="x") == f"No instance with ID '{unknown}' found."


def test_suspend_and_resume(host: HostProcess) -> None:
    instance_id = running_waiter(host)
    assert result(host, "suspend", instanceId=instance_id, reason="hold on") is None
    host.wait_for(instance_id, done=lambda s: s["runtimeStatus"] == "Suspended")
    # An event sent while suspended waits for the resume.
    result(host, "raise_event", instanceId=instance_id, eventName="Go", eventData="later")
    time.sleep(0.5)
    assert host.status(instance_id)["runtimeStatus"] == "Suspended"  # type: ignore[index]
    assert result(host, "resume", instanceId=instance_id, reason="go on") is None
    assert completed(host, instance_id)["output"] == {"payload": '"later"', "type": "str"}
    # Suspending or resuming a finished instance: 410, accepted silently by the SDK.
    assert result(host, "suspend", instanceId=instance_id, reason="late") is None
    assert result(host, "resume", instanceId=instance_id, reason="late") is None
    unknown = new_id("missing")
    assert raised(host, "suspend", instanceId=unknown, reason="x") == f"No instance with ID '{unknown}' found."


# Purge --------------------------------------------------------------------------------------------


def test_purge_instance_history(host: HostProcess) -> None:
    instance_id = start(host, "echo", 1)
    completed(host, instance_id)
    assert result(host, "purge_instance_history", instanceId=instance_id) == {"instancesDeleted": 1}
    assert status(host, instance_id)["truthy"] is False
    assert result(host, "purge_instance_history", instanceId=instance_id) == {"instancesDeleted": 0}


def test_purge_instance_history_by(host: HostProcess) -> None:
    # A tight window: the module's other instances were created before it opened.
    since = datetime.now(timezone.utc)
    finished = [start(host, "echo", i) for i in range(3)]
    for instance_id in finished:
        completed(host, instance_id)
    until = datetime.now(timezone.utc)
    deleted = result(
        host,
        "purge_instance_history_by",
        createdTimeFrom=utc(since),
        createdTimeTo=utc(until),
        runtimeStatus=["Completed"],
    )
    assert deleted == {"instancesDeleted": 3}
    assert all(status(host, i)["truthy"] is False for i in finished)
    # Nothing matches: the API's 404 becomes 0.
    nothing = result(
        host, "purge_instance_history_by", createdTimeFrom=utc(datetime.now(timezone.utc) + timedelta(hours=1))
    )
    assert nothing == {"instancesDeleted": 0}


# Entities -----------------------------------------------------------------------------------------


def read_entity(host: HostProcess, key: str) -> dict[str, Any]:
    state: dict[str, Any] = result(host, "read_entity_state", name="box", key=key)
    return state


def test_signal_and_read_entity(host: HostProcess) -> None:
    key = new_id("box")
    assert read_entity(host, key) == {"entityExists": False, "entityState": None}
    assert result(host, "signal_entity", name="box", key=key, operation="set", input={"a": [1, 2]}) is None
    assert_eventually(lambda: read_entity(host, key)["entityExists"], timeout=10)
    assert read_entity(host, key) == {"entityExists": True, "entityState": {"a": [1, 2]}}
    result(host, "signal_entity", name="box", key=key, operation="delete")
    assert_eventually(lambda: not read_entity(host, key)["entityExists"], timeout=10)


def test_signal_entity_drops_a_falsy_input(host: HostProcess) -> None:
    key = new_id("box")
    result(host, "signal_entity", name="box", key=key, operation="record", input=5)
    assert_eventually(lambda: read_entity(host, key)["entityState"] == {"input": 5}, timeout=10)
    # The SDK sends no body for 0 (`if operation_input`), so the entity gets no input at all.
    result(host, "signal_entity", name="box", key=key, operation="record", input=0)
    assert_eventually(lambda: "input" not in (read_entity(host, key)["entityState"] or {}), timeout=10)
    assert "NoneType" in read_entity(host, key)["entityState"]["error"]


def test_entity_names_are_case_insensitive(host: HostProcess) -> None:
    key = new_id("box")
    result(host, "signal_entity", name="BOX", key=key, operation="set", input="upper")
    assert_eventually(lambda: read_entity(host, key)["entityState"] == "upper", timeout=10)


# HTTP helpers -------------------------------------------------------------------------------------


def test_create_check_status_response_uses_the_request_origin(host: HostProcess) -> None:
    instance_id = new_id("check")
    code, headers, body = host.request(
        "POST",
        "/api/client/create_check_status_response",
        body={"instanceId": instance_id},
        headers={"Host": "contract.example:8443"},
    )
    assert code == 202
    assert headers["Retry-After"] == "10"
    assert headers["Content-Type"].startswith("application/json")
    payload = json.loads(body)
    assert set(payload) == MANAGEMENT_URL_KEYS
    assert payload["id"] == instance_id
    assert headers["Location"] == payload["statusQueryGetUri"]
    base = f"http://contract.example:8443{WEBHOOK}/instances/{instance_id}"
    for key, url in payload.items():
        if key != "id":
            assert url.startswith(base), (key, url)
    assert payload["sendEventPostUri"].startswith(f"{base}/raiseEvent/{{eventName}}?")
    assert "taskHub=E2eClientContract" in payload["statusQueryGetUri"]


def test_check_status_urls_work_against_the_host(host: HostProcess) -> None:
    instance_id = start(host, "echo", "via url")
    completed(host, instance_id)
    _, _, body = host.request("POST", "/api/client/create_check_status_response", body={"instanceId": instance_id})
    url = json.loads(body)["statusQueryGetUri"]
    assert url.startswith(host.base_url)
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["output"] == "via url"


def test_wait_for_completion_returns_the_output(host: HostProcess) -> None:
    code, headers, body = host.request(
        "POST",
        "/api/client/wait_for_completion_or_create_check_status_response",
        body={"name": "echo", "input": {"w": 1}, "timeoutMs": 15000},
    )
    assert code == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"w": 1}


def test_wait_for_completion_times_out_with_a_check_status_response(host: HostProcess) -> None:
    code, headers, body = host.request(
        "POST",
        "/api/client/wait_for_completion_or_create_check_status_response",
        body={"name": "sleeper", "input": 60, "timeoutMs": 500},
    )
    assert code == 202, body
    payload = json.loads(body)
    assert set(payload) == MANAGEMENT_URL_KEYS
    assert headers["Location"] == payload["statusQueryGetUri"]
    assert headers["Retry-After"] == "10"
    result(host, "terminate", instanceId=payload["id"], reason="cleanup")


# restart ------------------------------------------------------------------------------------------


def test_restart_with_a_new_instance_id(host: HostProcess) -> None:
    original = start(host, "echo", {"r": 1})
    completed(host, original)
    restarted = result(host, "restart", instanceId=original)
    # The SDK returns the API's whole check-status body, not just an id.
    assert set(restarted) == MANAGEMENT_URL_KEYS
    assert restarted["id"] != original
    assert completed(host, restarted["id"])["output"] == {"r": 1}
    assert status(host, restarted["id"])["json"]["input"] == '{"r": 1}'


def test_restart_with_the_same_instance_id(host: HostProcess) -> None:
    original = start(host, "echo", {"r": 2})
    completed(host, original)
    restarted = result(host, "restart", instanceId=original, newInstanceId=False)
    assert restarted["id"] == original
    assert completed(host, original)["output"] == {"r": 2}
    unknown = new_id("missing")
    assert raised(host, "restart", instanceId=unknown) == f"No instance with ID '{unknown}' found."


# The raw webhook API ------------------------------------------------------------------------------


def test_raw_status_codes(host: HostProcess) -> None:
    done = start(host, "echo", 1)
    completed(host, done)
    waiting = running_waiter(host)
    failed = start(host, "failing")
    host.wait_for(failed)

    code, headers, body = raw(host, "GET", f"{WEBHOOK}/instances/{done}")
    assert code == 200
    assert "Location" not in headers
    assert json.loads(body)["runtimeStatus"] == "Completed"

    code, headers, body = raw(host, "GET", f"{WEBHOOK}/instances/{waiting}")
    assert code == 202
    assert headers["Retry-After"] == "5"
    assert f"/instances/{waiting}" in headers["Location"]
    assert json.loads(body)["runtimeStatus"] == "Running"

    code, _, body = raw(host, "GET", f"{WEBHOOK}/instances/{failed}")
    assert code == 200
    assert json.loads(body)["output"] == "Orchestrator function 'failing' failed: failing on purpose"
    code, _, _ = raw(host, "GET", f"{WEBHOOK}/instances/{failed}?returnInternalServerErrorOnFailure=true")
    assert code == 500

    assert not_found(raw(host, "GET", f"{WEBHOOK}/instances/{new_id('missing')}")) == (404, "instance_not_found")

    event = f"{WEBHOOK}/instances/{{}}/raiseEvent/Go"
    assert raw(host, "POST", event.format(done), b"1", "application/json")[0] == 410
    missing_event = raw(host, "POST", event.format(new_id("missing")), b"1", "application/json")
    assert not_found(missing_event) == (404, "instance_not_found")
    code, _, body = raw(host, "POST", event.format(waiting), b"hello", "text/plain")
    assert code == 400
    assert "Only application/json request content is supported" in body.decode()
    assert raw(host, "POST", event.format(waiting), b'{"k": "v"}', "application/json")[0] == 202
    # Through the webhook the body is one JSON token, so the orchestrator gets the object itself.
    assert completed(host, waiting)["output"] == {"payload": {"k": "v"}, "type": "dict"}

    assert raw(host, "POST", f"{WEBHOOK}/instances/{done}/terminate?reason=x")[0] == 410
    assert raw(host, "POST", f"{WEBHOOK}/instances/{new_id('missing')}/terminate?reason=x")[0] == 404
    assert raw(host, "POST", f"{WEBHOOK}/instances/{done}/suspend?reason=x")[0] == 410


def test_raw_raise_event_checks_the_instance_before_the_media_type(host: HostProcess) -> None:
    done = start(host, "echo", 1)
    completed(host, done)
    assert raw(host, "POST", f"{WEBHOOK}/instances/{new_id('missing')}/raiseEvent/Go", b"x", "text/plain")[0] == 404
    assert raw(host, "POST", f"{WEBHOOK}/instances/{done}/raiseEvent/Go", b"x", "text/plain")[0] == 410


def test_raw_purge(host: HostProcess) -> None:
    code, _, body = raw(host, "DELETE", f"{WEBHOOK}/instances/")
    assert code == 400, body
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert not_found(raw(host, "DELETE", f"{WEBHOOK}/instances/?createdTimeFrom={future}")) == (
        404,
        "instance_not_found",
    )
    assert not_found(raw(host, "DELETE", f"{WEBHOOK}/instances/{new_id('missing')}")) == (404, "instance_not_found")
    done = start(host, "echo", 1)
    completed(host, done)
    code, _, body = raw(host, "DELETE", f"{WEBHOOK}/instances/{done}")
    assert (code, json.loads(body)) == (200, {"instancesDeleted": 1})


def test_raw_entity_signal_bodies(host: HostProcess) -> None:
    """A JSON body becomes RequestMessage.Input as its token; any other body becomes a JSON string.

    The SDK's ``get_input()`` decodes twice (``df_loads(json.loads(input))``), so a Python entity gets a
    value from text that is JSON, or from a JSON body that is a string holding JSON (what the SDK sends).
    """
    key = new_id("box")
    path = f"{WEBHOOK}/entities/box/{key}"

    def state() -> Any:
        code, _, body = raw(host, "GET", path)
        return json.loads(body) if code == 200 else "<missing>"

    assert raw(host, "POST", f"{path}?op=set", b'{"a": 1}', "text/plain")[0] == 202
    assert_eventually(lambda: state() == {"a": 1}, timeout=10, message=f"state: {state()}")
    assert raw(host, "POST", f"{path}?op=set", b'"[1, 2]"', "application/json")[0] == 202
    assert_eventually(lambda: state() == [1, 2], timeout=10, message=f"state: {state()}")
    # A bare JSON number: get_input() json.loads "5" and then df_loads the int, which raises TypeError.
    assert raw(host, "POST", f"{path}?op=record", b"5", "application/json")[0] == 202
    assert_eventually(lambda: "error" in state(), timeout=10, message=f"state: {state()}")
    assert "not int" in state()["error"]
    assert raw(host, "DELETE", path)[0] == 202
    assert_eventually(lambda: not_found(raw(host, "GET", path)) == (404, "entity_not_found"), timeout=10)
