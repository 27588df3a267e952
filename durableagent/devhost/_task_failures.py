"""How a failed activity reaches its orchestrator: ``TaskFailed`` ``Reason`` and ``Details`` as in Azure.

For an out-of-proc activity the extension (``Listener/TaskActivityShim.cs``) takes the Functions host's
``RpcException`` (message ``"Result: Failure\\nException: <Type>: <message>\\nStack: <stack>"``, Functions
host ``Workers/Rpc/RpcException.cs``), cuts out the text after ``"\\nException:"`` (``OutOfProcExceptionHelpers``:
the label has no trailing space, so the friendly message starts with one), and throws
``TaskFailureException("Activity function '<name>' failed: <friendly>", Utils.SerializeCause(...))``:
``Details`` is the Newtonsoft JSON of ``new Exception(friendly, rpcException)`` (the error converter writes
``$type``). The Python SDK raises ``Exception(f"{Reason} \\n {Details}")`` in the orchestrator.

The stack the worker reported stays in ``Details``, as in Azure, but without the local host's own
frames: Azure shows the worker's frames, never a host written in Python.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["activity_failure", "exception_json", "strip_host_frames"]

_HOST_DIR = str(Path(__file__).resolve().parent)
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+')
# System.Exception's HResult (COR_E_EXCEPTION).
_COR_E_EXCEPTION = -2146233088
_RPC_EXCEPTION = "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException"


def exception_json(
    class_name: str,
    message: str,
    *,
    assembly: str = "System.Private.CoreLib",
    inner: dict[str, Any] | None = None,
    hresult: int = _COR_E_EXCEPTION,
) -> dict[str, Any]:
    """A .NET exception as Newtonsoft serializes it through ``ISerializable`` (``TypeNameHandling.Objects``)."""
    return {
        "$type": f"{class_name}, {assembly}",
        "ClassName": class_name,
        "Message": message,
        "Data": None,
        "InnerException": inner,
        "HelpURL": None,
        "StackTraceString": None,
        "RemoteStackTraceString": None,
        "RemoteStackIndex": 0,
        "ExceptionMethod": None,
        "HResult": hresult,
        "Source": None,
        "WatsonBuckets": None,
    }


def strip_host_frames(stack: str) -> str:
    """``stack`` without the frames of files inside the local host's package (each frame is its ``File``
    line plus the indented source and caret lines under it)."""
    kept: list[str] = []
    skipping = False
    for line in stack.splitlines(keepends=True):
        frame = _FRAME.match(line)
        if frame is not None:
            skipping = str(Path(frame["path"]).resolve()).startswith(_HOST_DIR)
        elif skipping and not line.startswith("    "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "".join(kept)


def activity_failure(activity: str, exc: BaseException) -> tuple[str, str]:
    """``(Reason, Details)`` of the ``TaskFailed`` event for ``activity`` failing with ``exc``."""
    message = getattr(exc, "message", None)
    if not isinstance(message, str) or not message:
        message = f"{type(exc).__name__}: {exc}"
    stack = getattr(exc, "stack", None)
    stack_text = strip_host_frames(stack) if isinstance(stack, str) else ""
    friendly = f" {message}"
    rpc = exception_json(
        _RPC_EXCEPTION,
        f"Result: Failure\nException: {message}\nStack: {stack_text}",
        assembly="Microsoft.Azure.WebJobs.Script",
    )
    details = exception_json("System.Exception", friendly, inner=rpc)
    return f"Activity function '{activity}' failed: {friendly}", json.dumps(details, separators=(",", ":"))
