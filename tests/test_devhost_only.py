"""End to end: the host installed alone (``pip install ./durableagent/devhost``) runs a plain Durable
Functions app that pins openai 1.x — a venv the durableagent library (openai 3.x) cannot share.

``./dev setup`` builds ``.venv-devhost``; these tests install nothing (no network at test time) and
fail, rather than skip, when it is missing or older than the host's source.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import REPO, HostProcess, assert_eventually, copy_app

pytestmark = pytest.mark.e2e

VENV = REPO / ".venv-devhost"
APP = Path(__file__).parent / "apps" / "plain_dfapp"
SOURCE = REPO / "durableagent" / "devhost"
# Reads the venv from outside the checkout, so the checkout's own durableagent is not on sys.path.
PROBE = """
import importlib.metadata as md, importlib.util, json, os, sys
import durableagent.devhost

def installed(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None

print(json.dumps({
    "prefix": sys.prefix,
    "host_dir": os.path.dirname(durableagent.devhost.__file__),
    "durableagent_is_namespace": getattr(sys.modules["durableagent"], "__file__", None) is None,
    "agent_framework_importable": importlib.util.find_spec("agent_framework") is not None,
    "versions": {n: installed(n) for n in ("durableagent-devhost", "durableagent", "agent-framework-core", "openai")},
}))
"""


def _devhost_python() -> Path:
    """The venv's interpreter; fails the test when ./dev setup has not built it."""
    python = VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{VENV} is missing: run ./dev setup (it installs the host and {APP}/requirements.txt there)")
    return python


def _probe(python: Path, cwd: Path) -> dict[str, Any]:
    result = subprocess.run([str(python), "-c", PROBE], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _assert_installed_host_is_current(host_dir: Path) -> None:
    # A non-editable install is a copy: testing an old copy would prove nothing about this checkout.
    source = {p.name: p.read_bytes() for p in SOURCE.glob("*.py")}
    installed = {p.name: p.read_bytes() for p in host_dir.glob("*.py")}
    stale = sorted(name for name in source.keys() | installed.keys() if source.get(name) != installed.get(name))
    assert not stale, f"{VENV} holds an older host ({', '.join(stale)} differ): run ./dev setup"


def _get_json(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_devhost_venv_holds_the_host_alone(tmp_path: Path) -> None:
    probe = _probe(_devhost_python(), tmp_path)
    host_dir = Path(probe["host_dir"])
    # Installed into the venv's site-packages, durableagent being a namespace package there.
    assert host_dir.is_relative_to(probe["prefix"]) and "site-packages" in host_dir.parts, host_dir
    assert probe["durableagent_is_namespace"]
    versions = probe["versions"]
    assert versions["durableagent-devhost"] is not None
    assert versions["durableagent"] is None
    assert versions["agent-framework-core"] is None
    assert not probe["agent_framework_importable"]
    assert versions["openai"].split(".")[0] == "1"  # the app's pin won, not the library's 3.x
    _assert_installed_host_is_current(host_dir)


def test_devhost_alone_runs_a_plain_durable_app(azurite: AzuriteInstance, tmp_path: Path) -> None:
    # Checked in the test, not a fixture, so a missing venv is a failure rather than a setup error.
    python = _devhost_python()
    _assert_installed_host_is_current(Path(_probe(python, tmp_path)["host_dir"]))
    app_dir = copy_app(APP, tmp_path / "app")
    env = {"AzureWebJobsStorage": azurite.connection_string}
    with HostProcess(app_dir, env=env, python=str(python), cwd=tmp_path) as host:
        _run_the_app(host)


def _run_the_app(host: HostProcess) -> None:
    # The orchestration: HTTP starter -> two chained activities -> the entity, then the status URL.
    code, headers, raw = host.request("POST", "/api/greet", body={"name": "Ada"})
    assert code == 202, raw
    started = json.loads(raw)
    assert headers["Location"] == started["statusQueryGetUri"]

    def completed() -> bool:
        _, status = _get_json(started["statusQueryGetUri"])
        return bool(status["runtimeStatus"] in ("Completed", "Failed"))

    assert_eventually(completed, timeout=60, message=f"greeting_chain did not finish:\n{host.log()[-3000:]}")
    _, status = _get_json(started["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status
    assert status["name"] == "greeting_chain"
    assert status["output"] == {"greeting": "HELLO, ADA!", "count": 1}

    # The entity: a signal from a client function, then its state read back through the client.
    code, _, raw = host.request("POST", "/api/counter/add?amount=5")
    assert code == 202, raw

    def counted() -> bool:
        return bool(_get_json(f"{host.base_url}/api/counter")[1] == {"exists": True, "value": 6})

    assert_eventually(counted, timeout=30, message="the counter entity never reached 6")

    # The app's own openai, imported by the app in the host's process.
    code, body = _get_json(f"{host.base_url}/api/openai-version")
    assert code == 200
    assert body["openai"].split(".")[0] == "1", body
