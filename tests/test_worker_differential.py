"""Our invoker against the real Python worker library, app by app (Python 3.13+).

Azure runs Python 3.13+ apps through ``azure-functions-runtime``; on 3.10-3.12 the local host uses
its own invoker, which must agree with it. Each app, in the repository or in the corpus of tricky
signatures below, is loaded and invoked once by each worker in a fresh process
(``tests/hosttools/worker_probe.py``); the two reports must be equal: the same functions and
bindings, the same load error, the same invocation results and outputs.

The same probe guards the project's own code: every app in the repository must load in the real
worker (a generated function with a signature the worker refuses stops the app in Azure).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "hosttools" / "worker_probe.py"

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 13), reason="the worker library exists for Python 3.13+ (the 3.13 pass of ./dev test)"
)


def _repository_apps() -> list[Path]:
    candidates = [REPO, *sorted((REPO / "samples").iterdir()), *sorted((REPO / "tests" / "apps").iterdir())]
    candidates += sorted((REPO / "tests" / "corpus").iterdir())
    candidates += sorted((REPO / "benchmarks" / "apps").iterdir())
    # agents_upstream is the upstream package's app: it needs that package, which lives in .venv-bench.
    return [p for p in candidates if (p / "function_app.py").is_file() and p.name != "agents_upstream"]


def _probe_both(app_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The runtime and builtin reports for one app (the two probes run side by side)."""
    procs = {
        worker: subprocess.Popen(
            [sys.executable, str(PROBE), str(app_dir), worker],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=app_dir,
            env=_probe_env(app_dir),
        )
        for worker in ("runtime", "builtin")
    }
    reports = {}
    for worker, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{worker} probe of {app_dir} crashed:\n{err[-4000:]}"
        reports[worker] = json.loads(out.strip().splitlines()[-1])
    return reports["runtime"], reports["builtin"]


def _probe_env(app_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    # What the apps read at import; nothing connects while they are only indexed and probed.
    env.setdefault("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    env.update(
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        OPENAI_API_KEY="probe",
        OPENAI_MODEL="probe-model",
        TOOL_LOG_DIR=str(app_dir),
    )
    return env


@pytest.mark.parametrize("app_dir", _repository_apps(), ids=lambda p: str(p.relative_to(REPO)) or "root")
def test_every_repository_app_loads_in_the_real_worker_as_in_ours(app_dir: Path) -> None:
    runtime, builtin = _probe_both(app_dir)
    assert runtime["load_error"] is None, f"the real worker refuses {app_dir}: {runtime['load_error']}"
    assert builtin["load_error"] is None
    assert builtin["functions"] == runtime["functions"]
    assert runtime["functions"], "no functions indexed"


# ---------------------------------------------------------------------------------------------
# The corpus: one app per case, so that a case the worker refuses does not hide the others.
# ---------------------------------------------------------------------------------------------

_HEADER = """
import typing
from typing import Any, Dict, List, Optional
import azure.functions as func
import azure.durable_functions as df

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
"""

CORPUS: dict[str, str] = {
    "builtin_generic_activity_input": """
@app.activity_trigger(input_name="payload")
def act(payload: dict[str, Any]) -> dict[str, Any]:
    return payload
""",
    "typing_dict_activity_input": """
@app.activity_trigger(input_name="payload")
def act(payload: Dict[str, Any]) -> Dict[str, Any]:
    return {"got": payload}
""",
    "unannotated_activity": """
@app.activity_trigger(input_name="payload")
def act(payload):
    return [payload, 1, 2.5, None, True]
""",
    "activity_any_annotation": """
@app.activity_trigger(input_name="payload")
def act(payload: Any) -> Any:
    return payload
""",
    "activity_str_annotation": """
@app.activity_trigger(input_name="payload")
def act(payload: str) -> str:
    return repr(payload)
""",
    "activity_returns_bool": """
@app.activity_trigger(input_name="payload")
def act(payload: Dict[str, Any]) -> bool:
    return True
""",
    "activity_raises": """
@app.activity_trigger(input_name="payload")
def act(payload: Dict[str, Any]) -> None:
    raise ValueError("bad payload " + str(sorted(payload)))
""",
    "optional_http_request": """
@app.route(route="opt")
def opt(req: Optional[func.HttpRequest]) -> func.HttpResponse:
    return func.HttpResponse("x")
""",
    "pep604_union_http_request": """
@app.route(route="u")
def u(req: func.HttpRequest | None) -> func.HttpResponse:
    return func.HttpResponse("x")
""",
    "http_str_annotation": """
@app.route(route="s")
def s(req: str) -> func.HttpResponse:
    return func.HttpResponse("x")
""",
    "http_bytes_annotation": """
@app.route(route="b")
def b(req: bytes) -> func.HttpResponse:
    return func.HttpResponse("x")
""",
    "http_unannotated": """
@app.route(route="n/{id}")
def n(req):
    return func.HttpResponse(
        json.dumps({"id": req.route_params.get("id"), "q": dict(req.params), "body": req.get_json(),
                    "h": req.headers.get("x-probe"), "method": req.method}),
        mimetype="application/json",
    )
import json
""",
    "http_returns_str": """
@app.route(route="str")
def returns_str(req: func.HttpRequest) -> str:
    return "plain text"
""",
    "http_returns_dict": """
@app.route(route="d")
def returns_dict(req: func.HttpRequest):
    return {"a": 1}
""",
    "http_returns_none": """
@app.route(route="none")
def returns_none(req: func.HttpRequest) -> func.HttpResponse:
    return None
""",
    "http_list_return_annotation": """
@app.route(route="l")
def l(req: func.HttpRequest) -> List[str]:
    return ["a"]
""",
    "http_builtin_list_return_annotation": """
@app.route(route="l")
def l(req: func.HttpRequest) -> list[str]:
    return ["a"]
""",
    "http_async_with_context": """
@app.route(route="ctx")
async def ctx(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(f"{context.function_name}|{bool(context.invocation_id)}|{req.url}")
""",
    "http_context_wrong_annotation": """
@app.route(route="ctx")
def ctx(req: func.HttpRequest, context: str) -> func.HttpResponse:
    return func.HttpResponse("x")
""",
    "http_cookies_and_headers": """
@app.route(route="c")
def c(req: func.HttpRequest) -> func.HttpResponse:
    r = func.HttpResponse("ok", status_code=201, headers={"X-A": "1", "Set-Cookie": "s=abc; Path=/; HttpOnly"})
    return r
""",
    "http_raises": """
@app.route(route="r")
def r(req: func.HttpRequest) -> func.HttpResponse:
    raise KeyError("missing")
""",
    "http_bytes_body": """
@app.route(route="bb")
def bb(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(body=b"\\x00\\x01\\xff", mimetype="application/octet-stream")
""",
    "two_queue_outs_and_http_return": """
@app.route(route="outs")
@app.queue_output(arg_name="first", queue_name="one", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="second", queue_name="two", connection="AzureWebJobsStorage")
def outs(req: func.HttpRequest, first: func.Out[str], second: func.Out[List[str]]) -> func.HttpResponse:
    first.set("hello")
    second.set(["a", "b"])
    return func.HttpResponse("sent")
""",
    "out_of_builtin_generic": """
@app.route(route="outs")
@app.queue_output(arg_name="first", queue_name="one", connection="AzureWebJobsStorage")
def outs(req: func.HttpRequest, first: func.Out[list[str]]) -> func.HttpResponse:
    first.set(["a"])
    return func.HttpResponse("sent")
""",
    "out_without_out_annotation": """
@app.route(route="outs")
@app.queue_output(arg_name="first", queue_name="one", connection="AzureWebJobsStorage")
def outs(req: func.HttpRequest, first: str) -> func.HttpResponse:
    return func.HttpResponse("sent")
""",
    "out_annotation_on_input": """
@app.route(route="o")
def o(req: func.Out[func.HttpRequest]) -> func.HttpResponse:
    return func.HttpResponse("x")
""",
    "http_out_parameter": """
@app.function_name("httpout")
@app.route(route="ho")
@app.generic_output_binding(arg_name="res", type="http")
def ho(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    res.set(func.HttpResponse("via out", status_code=202))
""",
    "queue_message": """
@app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="echo", connection="AzureWebJobsStorage")
def q(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set(json.dumps({"body": msg.get_body().decode(), "id": msg.id, "dequeue": msg.dequeue_count,
                        "inserted": str(msg.insertion_time), "pop": msg.pop_receipt}))
import json
""",
    "queue_str": """
@app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="echo", connection="AzureWebJobsStorage")
def q(msg: str, out: func.Out[str]) -> None:
    out.set(type(msg).__name__ + ":" + msg)
""",
    "queue_bytes": """
@app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="echo", connection="AzureWebJobsStorage")
def q(msg: bytes, out: func.Out[bytes]) -> None:
    out.set(b"got:" + msg)
""",
    "queue_unannotated_async": """
@app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="echo", connection="AzureWebJobsStorage")
async def q(msg, out) -> None:
    out.set(msg.get_body().decode().upper())
""",
    "queue_returns_without_return_binding": """
@app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")
def q(msg: func.QueueMessage) -> str:
    return "ignored"
""",
    "queue_wrong_annotation": """
@app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")
def q(msg: func.HttpRequest) -> None:
    pass
""",
    "binding_name_mismatch": """
@app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")
def q(message: func.QueueMessage) -> None:
    pass
""",
    "extra_python_parameter": """
@app.route(route="x")
def x(req: func.HttpRequest, extra: int) -> func.HttpResponse:
    return func.HttpResponse("x")
""",
    "timer_past_due": """
@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
@app.queue_output(arg_name="out", queue_name="ticks", connection="AzureWebJobsStorage")
def t(timer: func.TimerRequest, out: func.Out[str]) -> None:
    out.set(f"past_due={timer.past_due}")
""",
    "timer_str_annotation": """
@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
@app.queue_output(arg_name="out", queue_name="ticks", connection="AzureWebJobsStorage")
def t(timer: str, out: func.Out[str]) -> None:
    out.set(timer)
""",
    "durable_client_and_http": """
@app.route(route="start")
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return func.HttpResponse(client.task_hub_name)
""",
    "durable_client_unannotated": """
@app.route(route="start")
@app.durable_client_input(client_name="client")
def start(req: func.HttpRequest, client) -> func.HttpResponse:
    return func.HttpResponse(type(client).__name__ + ":" + client)
""",
    "durable_client_int_annotation": """
@app.route(route="start")
@app.durable_client_input(client_name="client")
def start(req: func.HttpRequest, client: int) -> func.HttpResponse:
    return func.HttpResponse(str(client))
""",
    "bare_out_annotation": """
@app.route(route="outs")
@app.queue_output(arg_name="first", queue_name="one", connection="AzureWebJobsStorage")
def outs(req: func.HttpRequest, first: func.Out) -> func.HttpResponse:
    return func.HttpResponse("sent")
""",
    "queue_return_binding": """
@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
@app.queue_output(arg_name="$return", queue_name="ticks", connection="AzureWebJobsStorage")
def t(timer: func.TimerRequest) -> str:
    return "returned to the queue"
""",
    "queue_output_json_list": """
@app.route(route="many")
@app.queue_output(arg_name="msgs", queue_name="many", connection="AzureWebJobsStorage")
def many(req: func.HttpRequest, msgs: func.Out[typing.List[str]]) -> func.HttpResponse:
    msgs.set(["one", "two", "three"])
    return func.HttpResponse(status_code=204)
""",
    "http_get_body_and_params": """
@app.route(route="echo/{a}/{b:int}", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        req.get_body() + b"|" + repr(sorted(req.route_params.items())).encode() + b"|" + req.url.encode(),
        headers={"X-Params": repr(sorted(req.params.items())), "X-Headers": str(req.headers.get("content-type"))},
    )
""",
    "blob_trigger_input_stream": """
@app.blob_trigger(arg_name="blob", path="uploads/{name}.txt", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="seen", connection="AzureWebJobsStorage")
def on_blob(blob: func.InputStream, out: func.Out[str]) -> None:
    out.set(json.dumps({"name": blob.name, "uri": blob.uri, "length": blob.length, "content": blob.read().hex(),
                        "properties": blob.blob_properties, "metadata": blob.metadata}))
import json
""",
    "blob_trigger_bytes_and_str": """
@app.blob_trigger(arg_name="blob", path="uploads/{name}.txt", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="seen", connection="AzureWebJobsStorage")
def as_bytes(blob: bytes, out: func.Out[str]) -> None:
    out.set(type(blob).__name__ + ":" + blob.hex())

@app.blob_trigger(arg_name="blob", path="uploads/{name}.txt", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="seen", connection="AzureWebJobsStorage")
def as_str(blob: str, out: func.Out[str]) -> None:
    out.set(type(blob).__name__ + ":" + repr(blob))
""",
    "blob_trigger_unannotated_return_to_blob": """
@app.blob_trigger(arg_name="blob", path="uploads/{name}.txt", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="$return", path="copies/{name}.out", connection="AzureWebJobsStorage")
def copy(blob) -> str:
    return blob.name + ":" + blob.read().decode("utf-8", "replace")
""",
    "blob_inputs_and_outputs_on_http": """
@app.route(route="docs/{id}")
@app.blob_input(arg_name="text", path="docs/{id}.txt", connection="AzureWebJobsStorage")
@app.blob_input(arg_name="raw", path="docs/{id}.bin", data_type="BINARY", connection="AzureWebJobsStorage")
@app.blob_input(arg_name="stream", path="docs/{id}.bin", data_type="BINARY", connection="AzureWebJobsStorage")
@app.blob_input(arg_name="untyped", path="docs/{id}.txt", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="copy", path="copies/{id}.txt", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="raw_copy", path="copies/{id}.bin", connection="AzureWebJobsStorage")
def docs(req: func.HttpRequest, text: str, raw: bytes, stream: func.InputStream, untyped,
         copy: func.Out[str], raw_copy: func.Out[bytes]) -> func.HttpResponse:
    copy.set(text.upper())
    raw_copy.set(raw + b"!")
    return func.HttpResponse(repr([text, raw, stream.name, stream.length, stream.read(), type(untyped).__name__,
                                   untyped.read()]))
""",
    "blob_input_bytes_without_data_type_gets_text": """
@app.route(route="docs/{id}")
@app.blob_input(arg_name="raw", path="docs/{id}.bin", connection="AzureWebJobsStorage")
def docs(req: func.HttpRequest, raw: bytes) -> str:
    return type(raw).__name__ + ":" + repr(raw)
""",
    "blob_inputs_missing_or_stream": """
@app.route(route="docs/{id}")
@app.blob_input(arg_name="text", path="docs/missing-{id}.txt", connection="AzureWebJobsStorage")
@app.blob_input(arg_name="raw", path="docs/missing-{id}.bin", data_type="BINARY", connection="AzureWebJobsStorage")
@app.blob_input(arg_name="stream", path="docs/{id}.bin", data_type="STREAM", connection="AzureWebJobsStorage")
def docs(req: func.HttpRequest, text: str, raw: bytes, stream: func.InputStream) -> str:
    return repr([text, raw, stream])
""",
    "blob_output_file_like_and_input_stream": """
import io

@app.route(route="put")
@app.blob_output(arg_name="text", path="out/a.txt", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="stream", path="out/b.bin", connection="AzureWebJobsStorage")
def put(req: func.HttpRequest, text: func.Out[io.StringIO], stream: func.Out[func.InputStream]) -> str:
    text.set(io.StringIO("file-like"))
    stream.set(func.blob.InputStream(data=b"\x01\x02"))
    return "OK"
""",
    "blob_output_wrong_annotation": """
@app.route(route="put")
@app.blob_output(arg_name="out", path="out/a.txt", connection="AzureWebJobsStorage")
def put(req: func.HttpRequest, out: func.Out[int]) -> str:
    return "OK"
""",
    "blob_trigger_wrong_annotation": """
@app.blob_trigger(arg_name="blob", path="uploads/{name}", connection="AzureWebJobsStorage")
def on_blob(blob: func.HttpRequest) -> None:
    pass
""",
    "blob_output_of_a_queue_trigger_by_queue_trigger_text": """
@app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="out", path="archive/{queueTrigger}", connection="AzureWebJobsStorage")
def archive(msg: func.QueueMessage, out: func.Out[bytes]) -> None:
    out.set(msg.get_body())
""",
    "activity_async_context": """
@app.activity_trigger(input_name="payload")
async def act(payload: Dict[str, Any], context: func.Context) -> str:
    return f"{context.function_name}:{payload['name']}"
""",
    "orchestrator_and_entity_signatures": """
@app.orchestration_trigger(context_name="context")
def orch(context: df.DurableOrchestrationContext):
    return None

@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    pass
""",
    "orchestrator_wrong_annotation": """
@app.orchestration_trigger(context_name="context")
def orch(context: func.HttpRequest):
    return None
""",
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_our_invoker_agrees_with_the_real_worker(case: str, tmp_path: Path) -> None:
    app_dir = tmp_path / case
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(textwrap.dedent(_HEADER) + textwrap.dedent(CORPUS[case]))
    runtime, builtin = _probe_both(app_dir)
    assert builtin == runtime


def test_the_corpus_exercises_both_outcomes(tmp_path: Path) -> None:
    # A corpus where everything loads (or nothing does) would prove little.
    outcomes = {}
    for case in ("builtin_generic_activity_input", "typing_dict_activity_input"):
        app_dir = tmp_path / case
        app_dir.mkdir()
        (app_dir / "function_app.py").write_text(textwrap.dedent(_HEADER) + textwrap.dedent(CORPUS[case]))
        outcomes[case] = _probe_both(app_dir)[0]["load_error"]
    assert outcomes["typing_dict_activity_input"] is None
    assert "invalid non-type annotation" in str(outcomes["builtin_generic_activity_input"])
