"""Load and invoke the app through the real Python worker library, in process (Python 3.13+).

For Python 3.13 and later, Azure runs function apps through ``azure_functions_runtime``: a proxy
worker receives the host's gRPC messages and hands each to the library's handlers
(``worker_init_request`` → ``functions_metadata_request`` → ``function_load_request`` →
``invocation_request``). This module plays the proxy worker's part without the wire: it builds the
same requests from our own message classes (:mod:`._rpc_messages`), so the library itself imports
the app, indexes it, checks every signature, decodes inputs, calls the function and encodes its
outputs. An app the library refuses fails here with the library's own message.

The sequence and the request properties follow the proxy worker's dispatcher
(``azure-functions-python-worker``, ``workers/proxy_worker/dispatcher.py``): ``start_threadpool_executor()``
before init, ``properties={"protos": ..., "host": ...}`` on init, one load request per function.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
from azure.functions.meta import Datum

from . import _rpc_messages as rpc
from ._app_loader import (
    MODULE_NAME,
    SCRIPT_FILE,
    AppLoadError,
    LoadedApp,
    find_function_register,
    indexed_function,
    validate_functions,
)
from ._functions import DURABLE_CLIENT, IndexedFunction
from ._invoker import (
    ClientBindingJson,
    FunctionInvocationError,
    InputProvider,
    Invoker,
    OutputSink,
    _Outcome,
    _TraceContext,
    set_cookie_header,
)

__all__ = ["RuntimeInvoker", "load_with_runtime", "runtime_available", "runtime_version"]

# What the Functions host advertises to the worker at init (a subset; the library reads only these).
_HOST_CAPABILITIES = {"RpcHttpBodyOnly": "true", "RawHttpBodyBytes": "true", "TypedDataCollection": "true"}
_RUNTIME_MODULE = "azure_functions_runtime"


def runtime_available() -> bool:
    """Whether the worker library can run here (it is published for Python 3.13+ only)."""
    if sys.version_info < (3, 13):
        return False
    try:
        importlib.import_module(_RUNTIME_MODULE)
    except ImportError:
        return False
    return True


def runtime_version() -> str:
    """The installed worker library's version."""
    return str(importlib.import_module(f"{_RUNTIME_MODULE}.version").VERSION)


def _runtime() -> ModuleType:
    return importlib.import_module(_RUNTIME_MODULE)


def _succeeded(result: Any) -> bool:
    return result is not None and result.status == rpc.StatusResult.Success  # type: ignore[attr-defined]


async def load_with_runtime(app_dir: str | Path, *, route_prefix: str = "api") -> tuple[LoadedApp, dict[str, str]]:
    """Import and index ``<app_dir>/function_app.py`` through the worker library.

    Returns:
        The loaded app and each function's id (by function name), as the worker assigned them.

    Raises:
        AppLoadError: The library refused the app (with its message and stack trace), or the host's
            own start-up checks failed.
    """
    directory = Path(app_dir).resolve()
    script = directory / SCRIPT_FILE
    if not script.is_file():
        raise AppLoadError(f"{script} not found: the Python v2 programming model needs a {SCRIPT_FILE}")
    runtime = _runtime()
    # The worker imports the script by module name from the app root, as a fresh import.
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    sys.modules.pop(MODULE_NAME, None)
    runtime.start_threadpool_executor()
    init = rpc.WorkerRequest(
        "WorkerInitRequest",
        rpc.StreamingMessage(
            worker_init_request=rpc.WorkerInitRequest(
                function_app_directory=str(directory), capabilities=dict(_HOST_CAPABILITIES)
            )
        ),
        {"protos": rpc.PROTOS, "host": "127.0.0.1"},
    )
    init_response = await runtime.worker_init_request(init)
    if not _succeeded(init_response.result):
        exception = init_response.result.exception
        raise AppLoadError(
            f"The Python worker could not index the app: {exception.message}",
            traceback_text=exception.stack_trace or None,
        )
    metadata_response = await runtime.functions_metadata_request(
        rpc.WorkerRequest(
            "WorkerMetadataRequest",
            rpc.StreamingMessage(
                functions_metadata_request=rpc.FunctionsMetadataRequest(function_app_directory=str(directory))
            ),
        )
    )
    results = metadata_response.function_metadata_results or []
    registry = _registry(runtime)
    functions: list[IndexedFunction] = []
    function_ids: dict[str, str] = {}
    for metadata in results:
        load_response = await runtime.function_load_request(
            rpc.WorkerRequest(
                "FunctionLoadRequest",
                rpc.StreamingMessage(
                    function_load_request=rpc.FunctionLoadRequest(function_id=metadata.function_id, metadata=metadata)
                ),
            )
        )
        if not _succeeded(load_response.result):
            raise AppLoadError(
                f"The Python worker could not load {metadata.name}: {load_response.result.exception.message}"
            )
        info = registry.get_function(metadata.function_id) if registry is not None else None
        functions.append(indexed_function(metadata.name, metadata.raw_bindings, getattr(info, "func", _not_callable)))
        function_ids[metadata.name] = metadata.function_id
    module = sys.modules.get(MODULE_NAME)
    if module is None:
        raise AppLoadError(f"The Python worker did not import {script}")
    indexed = tuple(functions)
    validate_functions(indexed, route_prefix=route_prefix)
    return LoadedApp(directory, module, find_function_register(module, script), indexed), function_ids


def _registry(runtime: ModuleType) -> Any:
    # The library keeps its function registry in a module global; it holds the user callables.
    handle_event = getattr(runtime, "handle_event", None)
    return getattr(handle_event, "_functions", None)


def _not_callable(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("this function is invoked through the Python worker library")


# ---------------------------------------------------------------------------------------------
# Datum <-> TypedData (what the host sends and what the worker answers)
# ---------------------------------------------------------------------------------------------


def _typed(datum: Datum) -> Any:
    """A ``Datum`` as the host would send it in ``TypedData``."""
    if datum.type == "http":
        value = datum.value

        def strings(values: dict[str, Datum]) -> dict[str, str]:
            return {key: str(item.value) for key, item in values.items()}

        return rpc.TypedData(
            http=rpc.RpcHttp(
                method=value["method"].value,
                url=value["url"].value,
                headers=strings(value["headers"]),
                body=_typed(value["body"]),
                params=strings(value["params"]),
                query=strings(value["query"]),
            )
        )
    if datum.type in ("string", "bytes", "json", "int", "double"):
        return rpc.TypedData(**{datum.type: datum.value})
    if datum.type is None:
        return rpc.TypedData()
    raise TypeError(f"the host cannot send a {datum.type!r} value to the worker")


def _datum(data: Any) -> Datum | None:
    """A worker's ``TypedData`` answer as the ``Datum`` the host's output handling reads."""
    if data is None:
        return None
    kind = data.WhichOneof("data")
    if kind is None:
        return Datum(None, None)
    value = getattr(data, kind)
    if kind != "http":
        return Datum(value, kind)
    return Datum(
        {
            "status_code": Datum(value.status_code, "string"),
            "headers": {name: Datum(text, "string") for name, text in value.headers.items()},
            "cookies": [_cookie_header(cookie) for cookie in value.cookies or []],
            "body": _datum(value.body) or Datum(None, None),
        },
        "http",
    )


def _nullable(wrapper: Any) -> Any:
    return None if wrapper is None else wrapper.value


def _cookie_header(cookie: Any) -> str:
    expires = _nullable(cookie.expires)
    same_site = {1: "lax", 2: "strict", 3: "none"}.get(cookie.same_site or 0)
    return set_cookie_header(
        cookie.name,
        cookie.value,
        domain=_nullable(cookie.domain),
        path=_nullable(cookie.path),
        expires=None if expires is None else datetime.fromtimestamp(expires.seconds, timezone.utc),
        max_age=_nullable(cookie.max_age),
        secure=bool(_nullable(cookie.secure)),
        http_only=bool(_nullable(cookie.http_only)),
        same_site=same_site,
    )


def _failure(exception: Any, *, function_name: str, invocation_id: str) -> FunctionInvocationError:
    """The worker's ``RpcException`` (``"<Type>: <message>"`` plus its formatted traceback)."""
    message = str(exception.message or "")
    exception_type, sep, text = message.partition(": ")
    if not sep:
        exception_type, text = "Exception", message
    return FunctionInvocationError(
        function_name=function_name,
        invocation_id=invocation_id,
        exception_type=exception_type,
        exception_message=text,
        stack=str(exception.stack_trace or ""),
    )


# ---------------------------------------------------------------------------------------------
# The invoker
# ---------------------------------------------------------------------------------------------


class RuntimeInvoker(Invoker):
    """An :class:`Invoker` whose functions run inside ``azure_functions_runtime``.

    The host's part stays ours (which inputs to send, trigger metadata, the timeout, what happens to
    outputs); the worker's part (signature checks, converters, ``context``, ``Out``, calling sync
    functions in its thread pool and async ones on the loop, failure text) is the library's.

    Args:
        functions: The functions :func:`load_with_runtime` indexed.
        function_ids: Their worker-assigned ids, by name.
        output_sink, input_provider, client_binding_json, function_timeout: As for :class:`Invoker`.
    """

    def __init__(
        self,
        functions: Iterable[IndexedFunction],
        function_ids: dict[str, str],
        *,
        output_sink: OutputSink | None = None,
        input_provider: InputProvider | None = None,
        client_binding_json: ClientBindingJson | None = None,
        function_timeout: Any = None,
    ) -> None:
        self._function_ids = dict(function_ids)
        # Per loaded function: the binding its return value goes to (worked out once, not per call).
        self._return_bindings: dict[str, dict[str, Any] | None] = {}
        self._runtime = _runtime()
        super().__init__(
            functions,
            output_sink=output_sink,
            input_provider=input_provider,
            client_binding_json=client_binding_json,
            function_timeout=function_timeout,
            max_workers=1,  # unused: sync functions run in the library's own thread pool
        )

    def _load(self, fn: IndexedFunction) -> None:
        # The library already checked the signature at init; only what the host serves is ours.
        if fn.name not in self._function_ids:
            raise AppLoadError(f"Function '{fn.name}' was not indexed by the Python worker")
        self._check_host_support(fn)
        self._return_bindings[fn.name] = _return_binding(fn)

    def _is_loaded(self, name: str) -> bool:
        return name in self._return_bindings

    def close(self) -> None:
        """Stop the library's thread pool (running sync functions finish in the background)."""
        super().close()
        # Not stop_threadpool_executor(): it waits for running functions, and the host must not.
        executor = self._runtime.get_threadpool_executor()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _execute(
        self,
        fn: IndexedFunction,
        trigger_datum: Datum,
        metadata: dict[str, Datum],
        inputs: Mapping[str, Datum],
        origin: str | None,
        invocation_id: str,
        trace: _TraceContext,
    ) -> _Outcome:
        # The host sends the trigger, each input it read, then the Durable client, as TypedData.
        input_data = [rpc.ParameterBinding(name=fn.trigger["name"], data=_typed(trigger_datum))]
        input_data += [rpc.ParameterBinding(name=name, data=_typed(datum)) for name, datum in inputs.items()]
        for binding in fn.bindings:
            if binding["type"] == DURABLE_CLIENT and str(binding.get("direction", "IN")).upper() == "IN":
                assert self._client_binding_json is not None  # checked at load
                input_data.append(
                    rpc.ParameterBinding(
                        name=binding["name"], data=rpc.TypedData(string=self._client_binding_json(origin))
                    )
                )
        request = rpc.InvocationRequest(
            invocation_id=invocation_id,
            function_id=self._function_ids[fn.name],
            input_data=input_data,
            trigger_metadata={key: _typed(value) for key, value in metadata.items()},
            trace_context=rpc.RpcTraceContext(
                trace_parent=trace.trace_parent, trace_state=trace.trace_state, attributes=dict(trace.attributes)
            ),
            retry_context=rpc.RetryContext(
                retry_count=0, max_retry_count=0, exception=rpc.RpcException(source="", stack_trace="", message="")
            ),
        )
        response = await self._runtime.invocation_request(
            rpc.WorkerRequest("FunctionInvocationRequest", rpc.StreamingMessage(invocation_request=request))
        )
        if not _succeeded(response.result):
            raise _failure(response.result.exception, function_name=fn.name, invocation_id=invocation_id)
        by_name = {binding["name"]: binding for binding in fn.bindings}
        outcome = _Outcome()
        for output in response.output_data or []:
            datum = _datum(output.data) if output.data is not None else None
            if datum is not None:
                outcome.outputs.append((by_name[output.name], datum))
        returned = _datum(response.return_value)
        return_binding = self._return_bindings[fn.name]
        if returned is not None and return_binding is not None:
            outcome.add_return(return_binding, returned)
        return outcome


def _return_binding(fn: IndexedFunction) -> dict[str, Any] | None:
    """Where the return value goes: ``$return``, else the binding whose converter has an implicit
    output (Durable triggers)."""
    for binding in fn.bindings:
        if binding["name"] == "$return":
            return dict(binding)
    registry: Any = func.get_binding_registry()  # type: ignore[no-untyped-call]
    for binding in fn.bindings:
        converter = registry.get(binding["type"])
        if converter is not None and getattr(converter, "has_implicit_output", lambda: False)():
            return dict(binding)
    return None
