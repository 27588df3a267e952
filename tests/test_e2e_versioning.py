"""End to end: the SDK's orchestration_versioning sample on the local host, deployment included.

``tests/apps/orchestration_versioning`` is that sample's app (host.json ``defaultVersion`` 1.0). The README's
walk-through: start an instance, let it wait for ``Continue``, stop the app, raise ``defaultVersion`` to
2.0, start it again, send the event. The running instance keeps version 1.0 and its branch; the
sub-orchestration it starts afterwards gets 2.0. An instance newer than the app's version waits
(``versionFailureStrategy`` Reject) until a host that accepts it runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, assert_eventually, copy_app

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "orchestration_versioning"
WAITING = "Waiting for Continue event..."


def _env(azurite: AzuriteInstance, hub: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": hub}


def _set_host_json(app_dir: Path, **durable: str) -> None:
    path = app_dir / "host.json"
    document = json.loads(path.read_text())
    document["extensions"]["durableTask"].update(durable)
    path.write_text(json.dumps(document, indent=2))


def _start(host: HostProcess, version: str | None = None) -> str:
    query = f"?version={version}" if version else ""
    code, _, body = host.request("POST", f"/api/orchestrators/versioned_orchestrator{query}")
    assert code == 202, body
    return str(json.loads(body)["id"])


def _waiting(host: HostProcess, instance_id: str) -> dict[str, Any]:
    return host.wait_for(instance_id, done=lambda s: s["customStatus"] == WAITING)


def _continue(host: HostProcess, instance_id: str) -> None:
    code, _, body = host.request(
        "POST", f"/runtime/webhooks/durabletask/instances/{instance_id}/raiseEvent/Continue", {}
    )
    assert code == 202, body


def _output(host: HostProcess, instance_id: str) -> Any:
    status = host.wait_for(instance_id)
    assert status["runtimeStatus"] == "Completed", status
    return status["output"]


def test_the_sample_takes_the_default_versions_branch(azurite: AzuriteInstance, tmp_path: Path) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    with HostProcess(app_dir, env=_env(azurite, "VersioningSample")) as host:
        plain = _start(host)
        _waiting(host, plain)
        _continue(host, plain)
        assert _output(host, plain) == [
            "Orchestration version: 1.0",
            "Suborchestration version (explicit): 0.9",
            "Suborchestration version (default): 1.0",
            "Hello from A!",
        ]


def test_a_deployment_keeps_running_instances_on_their_version(azurite: AzuriteInstance, tmp_path: Path) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    env = _env(azurite, "VersioningDeploy")
    with HostProcess(app_dir, env=env) as old:
        running = _start(old)
        _waiting(old, running)
        # Newer than this app's 1.0: CurrentOrOlder refuses it, Reject leaves it for a newer host.
        newer = _start(old, version="2.0")
        assert_eventually(lambda: f"(instance {newer}) has version '2.0'" in old.log(), message=old.log()[-3000:])
        status = old.status(newer)
        assert status is not None and status["runtimeStatus"] == "Pending"

    _set_host_json(app_dir, defaultVersion="2.0")
    with HostProcess(app_dir, env=env) as new:
        _continue(new, running)
        assert _output(new, running) == [
            "Orchestration version: 1.0",
            "Suborchestration version (explicit): 0.9",
            "Suborchestration version (default): 2.0",
            "Hello from A!",
        ]
        # The instance the old host left alone runs here, on the new branch.
        _waiting(new, newer)
        _continue(new, newer)
        assert _output(new, newer)[0::3] == ["Orchestration version: 2.0", "Hello from B!"]
        fresh = _start(new)
        _waiting(new, fresh)
        _continue(new, fresh)
        assert _output(new, fresh) == [
            "Orchestration version: 2.0",
            "Suborchestration version (explicit): 0.9",
            "Suborchestration version (default): 2.0",
            "Hello from B!",
        ]


def test_strict_matching_with_fail_fails_other_versions(azurite: AzuriteInstance, tmp_path: Path) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    _set_host_json(app_dir, versionMatchStrategy="Strict", versionFailureStrategy="Fail")
    with HostProcess(app_dir, env=_env(azurite, "VersioningStrict")) as host:
        older = _start(host, version="0.9")
        status = host.wait_for(older)
        assert status["runtimeStatus"] == "Failed"
        assert status["output"] == "VersionMismatch: Orchestration version did not comply with Worker Versioning"
        # The sample pins a sub-orchestration to 0.9, which Strict fails too: the parent sees it fail.
        current = _start(host)
        _waiting(host, current)
        _continue(host, current)
        status = host.wait_for(current)
        assert status["runtimeStatus"] == "Failed"
        assert re.match(
            r"Orchestrator function 'versioned_orchestrator' failed: VersionMismatch: Orchestration version did not",
            status["output"],
        ), status["output"]
