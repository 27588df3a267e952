"""Choosing the worker, our RPC message classes, and the host refusing what the worker refuses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from durableagent.devhost import _rpc_messages as rpc
from durableagent.devhost._host import BUILTIN_WORKER, RUNTIME_WORKER, HostStartError, choose_worker
from durableagent.devhost._runtime_worker import runtime_available

REPO = Path(__file__).resolve().parents[1]
ON_313 = sys.version_info >= (3, 13)


def test_typed_data_reports_the_field_that_was_set() -> None:
    assert rpc.TypedData(string="x").WhichOneof("data") == "string"
    # Like protobuf, a oneof set to its type's zero value still counts as set.
    assert rpc.TypedData(int=0).WhichOneof("data") == "int"
    assert rpc.TypedData(bytes=b"").WhichOneof("data") == "bytes"
    assert rpc.TypedData().WhichOneof("data") is None


def test_unset_fields_read_as_defaults_and_unknown_fields_are_refused() -> None:
    http = rpc.RpcHttp(method="GET")
    assert http.headers == {} and http.cookies == [] and http.body is None
    http.headers["a"] = "1"
    assert rpc.RpcHttp().headers == {}, "defaults must not be shared between messages"
    with pytest.raises(TypeError, match="no field"):
        rpc.RpcHttp(nonsense=1)


def test_enum_values_are_numbered_as_in_the_proto() -> None:
    assert (rpc.StatusResult.Failure, rpc.StatusResult.Success) == (0, 1)  # type: ignore[attr-defined]
    assert (getattr(rpc.BindingInfo, "in"), rpc.BindingInfo.out, rpc.BindingInfo.inout) == (0, 1, 2)  # type: ignore[attr-defined]
    assert rpc.BindingInfo.undefined == 0  # type: ignore[attr-defined]
    assert getattr(rpc.RpcHttpCookie.SameSite, "None") == 0  # type: ignore[attr-defined]


def test_parameter_binding_oneof() -> None:
    binding = rpc.ParameterBinding(name="req", data=rpc.TypedData(json="{}"))
    assert binding.WhichOneof("rpc_data") == "data"


def test_builtin_is_always_available() -> None:
    assert choose_worker(BUILTIN_WORKER) == BUILTIN_WORKER


@pytest.mark.skipif(not ON_313, reason="the worker library is published for Python 3.13+")
def test_auto_and_runtime_pick_the_worker_library_on_313() -> None:
    assert runtime_available()
    assert choose_worker("auto") == RUNTIME_WORKER
    assert choose_worker(RUNTIME_WORKER) == RUNTIME_WORKER


@pytest.mark.skipif(ON_313, reason="on 3.13+ the worker library is installed")
def test_auto_falls_back_and_runtime_is_refused_before_313() -> None:
    assert not runtime_available()
    assert choose_worker("auto") == BUILTIN_WORKER
    with pytest.raises(HostStartError, match=r"Python 3\.13"):
        choose_worker(RUNTIME_WORKER)


# Optional[...] is neither a type nor a generic to the worker on every Python; dict[str, Any] is
# refused from 3.11 on only (a GenericAlias passes isinstance(..., type) on 3.10): see the corpus.
_REFUSED_APP = """
from typing import Any, Dict, Optional
import azure.functions as func
import azure.durable_functions as df

app = df.DFApp()

@app.route(route="ok")
def ok(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")

@app.activity_trigger(input_name="payload")
def act(payload: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    return payload or {}
"""


@pytest.mark.parametrize("worker", ["auto", "builtin"])
def test_the_host_refuses_an_app_the_worker_refuses_with_the_workers_message(tmp_path: Path, worker: str) -> None:
    (tmp_path / "function_app.py").write_text(textwrap.dedent(_REFUSED_APP))
    command = [sys.executable, "-m", "durableagent.devhost", "--app-dir", str(tmp_path), "--no-azurite"]
    proc = subprocess.run(
        [*command, "--port", "0", "--worker", worker],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "AzureWebJobsStorage": "UseDevelopmentStorage=true"},
    )
    assert proc.returncode == 1
    assert "cannot load the act function: binding payload has invalid non-type annotation typing.Optional[" in (
        proc.stderr
    )
    assert "Host started" not in proc.stdout
