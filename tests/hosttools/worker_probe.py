"""Load one app with one worker, invoke each of its functions once, print what happened as JSON.

    python worker_probe.py APP_DIR builtin|runtime

Run in a fresh process per app and worker: both workers import the app as the module
``function_app`` and the worker library keeps its registry in module globals. Used by
``tests/test_worker_differential.py`` to hold our invoker to the real worker library.

Every function gets canned input for its trigger (HTTP request, queue message, timer tick, blob,
activity input) and canned blobs for its blob inputs; orchestrators and entities are left to the
end-to-end suite, which runs them through both workers against the real Durable SDK.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from azure.functions.meta import Datum

from durableagent.devhost._app_loader import AppLoadError, load_function_app
from durableagent.devhost._function_errors import partition_functions
from durableagent.devhost._functions import ACTIVITY_TRIGGER, BLOB_TRIGGER, HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER
from durableagent.devhost._invoker import (
    FunctionInvocationError,
    FunctionLoadError,
    HttpRequestData,
    Invoker,
    check_worker_load,
)
from durableagent.devhost._trigger_input import TriggerInput

CLIENT_JSON = json.dumps({"taskHubName": "probe", "baseUrl": "http://localhost:7071/runtime/webhooks/durabletask"})
_LOAD_REASON = re.compile(r"cannot load the .*", re.DOTALL)


def _plain(value: Any) -> Any:
    return {"base64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value


class RecordingSink:
    """Keeps every queue and blob output instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def queue(self, binding: dict[str, Any], datum: Datum) -> None:
        self.sent.append({"binding": binding["name"], "type": datum.type, "value": _plain(datum.value)})

    async def blob(self, binding: dict[str, Any], datum: Datum, binding_data: Mapping[str, Any]) -> None:
        # The binding data the host would bind the output's path with, as the host computed it.
        self.sent.append(
            {
                "binding": binding["name"],
                "type": datum.type,
                "value": _plain(datum.value),
                "binding_data": {key: _plain(value) for key, value in binding_data.items()},
            }
        )


class CannedBlobs:
    """Serves blob inputs as the host would send them: text, bytes or nothing, as the dataType says."""

    def __init__(self) -> None:
        self.read: list[dict[str, Any]] = []

    async def blob(self, binding: dict[str, Any], binding_data: Mapping[str, Any]) -> Datum:
        self.read.append({"binding": binding["name"], "binding_data": {k: _plain(v) for k, v in binding_data.items()}})
        data_type = str(binding.get("dataType") or "string").lower()
        if "missing" in str(binding.get("path")) or data_type not in ("string", "binary"):
            return Datum(None, None)
        return Datum("blob text \u00e9", "string") if data_type == "string" else Datum(b"\x00blob \xff", "bytes")


def _client_json(origin: str | None) -> str:
    return CLIENT_JSON


async def _load(app_dir: Path, worker: str, sink: RecordingSink, blobs: CannedBlobs) -> tuple[Any, Any, Invoker]:
    """The loaded app, the host's partition of it, and an invoker for the functions it serves."""
    if worker == "runtime":
        from durableagent.devhost._runtime_worker import RuntimeInvoker, load_with_runtime

        loaded, ids = await load_with_runtime(app_dir)
        partition = partition_functions(loaded.functions)
        invoker: Invoker = RuntimeInvoker(
            partition.servable, ids, output_sink=sink, input_provider=blobs, client_binding_json=_client_json
        )
        return loaded, partition, invoker
    loaded = load_function_app(app_dir)
    for fn in loaded.functions:
        check_worker_load(fn)
    partition = partition_functions(loaded.functions)
    invoker = Invoker(partition.servable, output_sink=sink, input_provider=blobs, client_binding_json=_client_json)
    return loaded, partition, invoker


def _http_request(route: str) -> HttpRequestData:
    params = {name: f"v-{name}" for name in re.findall(r"\{([A-Za-z0-9_]+)[^}]*\}", route)}
    path = re.sub(r"\{([A-Za-z0-9_]+)[^}]*\}", lambda m: f"v-{m.group(1)}", route)
    return HttpRequestData(
        method="POST",
        url=f"http://localhost:7071/api/{path}?q=1&empty=",
        headers={"Content-Type": "application/json", "X-Probe": "yes", "Cookie": "c=1"},
        query={"q": "1", "empty": ""},
        route_params=params,
        body=b'{"a": 1, "text": "h\\u00e9llo"}',
    )


async def _invoke(invoker: Invoker, fn: Any) -> dict[str, Any]:
    kind = fn.trigger_type
    if kind == HTTP_TRIGGER:
        response = await invoker.invoke_http(fn, _http_request(str(fn.trigger.get("route") or fn.name)))
        headers = sorted([name.lower(), value] for name, value in response.headers)
        return {"status": response.status, "headers": headers, "body": response.body.decode("utf-8", "replace")}
    if kind == QUEUE_TRIGGER:
        metadata = {
            "Id": "0b5c0c54-1a39-4ec6-a0a3-5b8a2d1c9f10",
            "DequeueCount": 2,
            "InsertionTime": "2026-12-03T10:00:00+00:00",
            "ExpirationTime": "2026-12-10T10:00:00+00:00",
            "NextVisibleTime": "2026-12-03T10:00:30+00:00",
            "PopReceipt": "AgAAAAMAAAAAAAAA",
        }
        await invoker.invoke_trigger(fn, TriggerInput(data=b"hello queue", data_type="bytes", metadata=metadata))
        return {"ok": True}
    if kind == TIMER_TRIGGER:
        tick = {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": {"Last": "2026-12-03T09:00:00+00:00", "Next": "2026-12-03T10:00:00+00:00"},
            "IsPastDue": True,
        }
        await invoker.invoke_trigger(fn, TriggerInput(data=json.dumps(tick), data_type="json", metadata={}))
        return {"ok": True}
    if kind == BLOB_TRIGGER:
        metadata = {
            "BlobTrigger": "uploads/report.txt",
            "Uri": Datum(json.dumps("http://127.0.0.1:10000/devstoreaccount1/uploads/report.txt"), "json"),
            "Properties": {"ContentLength": 11, "ContentType": "text/plain", "CreatedOn": "2026-12-03T10:00:00+00:00"},
            "Metadata": {"owner": "ada"},
            "name": "report",
        }
        await invoker.invoke_trigger(fn, TriggerInput(data=b"blob \x00bytes", data_type="bytes", metadata=metadata))
        return {"ok": True}
    if kind == ACTIVITY_TRIGGER:
        return {"result": await invoker.invoke_activity(fn, json.dumps({"a": 1, "name": "probe"}))}
    return {"skipped": kind}


async def probe(app_dir: Path, worker: str) -> dict[str, Any]:
    sink = RecordingSink()
    blobs = CannedBlobs()
    report: dict[str, Any] = {
        "load_error": None,
        "functions": {},
        "invocations": {},
        "outputs": sink.sent,
        "inputs_read": blobs.read,
    }
    try:
        loaded, partition, invoker = await _load(app_dir, worker, sink, blobs)
    except (AppLoadError, FunctionLoadError) as exc:
        match = _LOAD_REASON.search(str(exc))
        report["load_error"] = match.group(0).splitlines()[0] if match else f"{type(exc).__name__}: {exc}"
        return report
    report["in_error"] = [failed.log_line() for failed in partition.in_error]
    try:
        for fn in loaded.functions:
            report["functions"][fn.name] = {
                "trigger": fn.trigger_type,
                "bindings": sorted(fn.bindings, key=lambda b: str(b["name"])),
            }
            if fn not in partition.servable:
                continue
            try:
                report["invocations"][fn.name] = await _invoke(invoker, fn)
            except FunctionInvocationError as exc:
                report["invocations"][fn.name] = {"failed": exc.message}
    finally:
        invoker.close()
    return report


def main() -> None:
    app_dir, worker = Path(sys.argv[1]), sys.argv[2]
    print(json.dumps(asyncio.run(probe(app_dir, worker)), sort_keys=True, default=str))


if __name__ == "__main__":
    main()
