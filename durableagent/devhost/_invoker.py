"""Invoke user functions the way the Python worker does.

This reproduces ``azure_functions_worker`` (``functions.py``, ``dispatcher.py``, ``bindings/meta.py``):
the same load-time signature checks, the same ``azure.functions`` converters for every binding
(``str``/``bytes`` annotations use the worker's "generic" binding), a ``context`` parameter, ``Out``
parameters, explicit and implicit ``$return``, coroutines on the loop and sync functions in a thread
pool, and the worker's failure text. Output values go to an :class:`OutputSink`, except HTTP responses,
which come back to the caller; non-trigger inputs other than the Durable client come from an
:class:`InputProvider` (the host reads them before the invocation, as the Functions host binds them).
"""

from __future__ import annotations

import asyncio
import collections.abc
import functools
import inspect
import json
import logging
import os
import pathlib
import secrets
import threading
import time
import traceback
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.cookies import SimpleCookie
from typing import Any, Protocol
from urllib.parse import urlsplit

import azure.functions as func
from azure.functions._abc import RetryContext, RpcException, TraceContext
from azure.functions.meta import Datum

from ._binding_expressions import BindingData, binding_data_for
from ._function_errors import SUPPORTED_INPUTS, SUPPORTED_TRIGGERS
from ._functions import (
    ACTIVITY_TRIGGER,
    BLOB,
    BLOB_TRIGGER,
    DURABLE_CLIENT,
    ENTITY_TRIGGER,
    HTTP_OUTPUT,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
    QUEUE_OUTPUT,
    QUEUE_TRIGGER,
    TIMER_TRIGGER,
    IndexedFunction,
)
from ._logging import RUNNING, function_lines_enabled
from ._trigger_input import TriggerInput

__all__ = [
    "ClientBindingJson",
    "FunctionInvocationError",
    "FunctionLoadError",
    "FunctionTimeoutException",
    "HttpRequestData",
    "HttpResponseData",
    "InputProvider",
    "Invoker",
    "OutputSink",
    "UnsupportedBindingError",
    "check_worker_load",
    "set_cookie_header",
]

logger = logging.getLogger("durableagent.devhost.functions")


# ---------------------------------------------------------------------------------------------
# Seams: request/response data and the output sink
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequestData:
    """An HTTP request as the host hands it to the worker (``ToRpcHttp``).

    Attributes:
        method: The request method.
        url: ``scheme://host[:port]/path?query`` as received.
        headers: Lower-cased names; repeated headers joined with ``,``.
        query: Query parameters with non-empty values; repeated ones joined with ``,``.
        route_params: Route values from the matched template.
        body: The raw body; ``b""`` when empty.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    route_params: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponseData:
    """What the host sends back for an HTTP-triggered invocation."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class OutputSink(Protocol):
    """Where non-HTTP output bindings go after a successful invocation.

    To support another output binding type, add a method here and a row to ``_OUTPUT_WRITERS``.
    """

    async def queue(self, binding: dict[str, Any], datum: Datum) -> None:
        """Deliver one ``queue`` output: ``datum`` is what the queue converter encoded."""
        ...

    async def blob(self, binding: dict[str, Any], datum: Datum, binding_data: BindingData) -> None:
        """Write one ``blob`` output; its ``path`` may use the invocation's binding data (``{name}``)."""
        ...


_OutputWriter = Callable[[OutputSink, dict[str, Any], Datum, BindingData], Awaitable[None]]
_OUTPUT_WRITERS: dict[str, _OutputWriter] = {
    QUEUE_OUTPUT: lambda sink, binding, datum, data: sink.queue(binding, datum),
    BLOB: lambda sink, binding, datum, data: sink.blob(binding, datum, data),
}


class InputProvider(Protocol):
    """Where non-trigger input bindings come from: the host resolves each to the ``Datum`` it sends.

    Both invokers ask it before every invocation (the Functions host binds inputs first), so the
    worker library and our invoker decode the same values. To support another input binding type,
    add a method here and a row to ``_INPUT_READERS``.
    """

    async def blob(self, binding: dict[str, Any], binding_data: BindingData) -> Datum:
        """Read one ``blob`` input; its ``path`` may use the invocation's binding data (``{name}``)."""
        ...


_InputReader = Callable[[InputProvider, dict[str, Any], BindingData], Awaitable[Datum]]
_INPUT_READERS: dict[str, _InputReader] = {
    BLOB: lambda provider, binding, data: provider.blob(binding, data),
}
# Binding types whose properties hold {expressions} bound per invocation; other functions skip the
# binding data (for HTTP it parses the body).
_BOUND_PER_INVOCATION = frozenset({BLOB})

ClientBindingJson = Callable[[str | None], str]
"""Returns the ``durableClient`` binding JSON for a request origin (``None`` outside HTTP)."""


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class FunctionLoadError(Exception):
    """A function the worker would refuse to load (the host reports it at start)."""

    def __init__(self, function_name: str, reason: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {reason}")
        self.function_name = function_name
        self.reason = reason


class UnsupportedBindingError(FunctionLoadError):
    """A binding type the local host cannot serve."""


class FunctionTimeoutException(Exception):
    """An invocation ran past ``functionTimeout``."""


class FunctionInvocationError(Exception):
    """A failed invocation, described as the worker reports it to the host.

    Attributes:
        function_name: The function that failed.
        invocation_id: Its invocation id.
        message: ``"<ExceptionType>: <message>"`` (the worker's ``RpcException.message``).
        exception_type: The exception's class name.
        exception_message: ``str(exception)``.
        stack: The formatted stack frames (no header line).
    """

    def __init__(
        self,
        *,
        function_name: str,
        invocation_id: str,
        exception_type: str,
        exception_message: str,
        stack: str,
    ) -> None:
        self.function_name = function_name
        self.invocation_id = invocation_id
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.stack = stack
        self.message = f"{exception_type}: {exception_message}"
        super().__init__(self.message)

    @classmethod
    def from_exception(cls, exc: BaseException, *, function_name: str, invocation_id: str) -> FunctionInvocationError:
        """Describe ``exc`` as ``dispatcher._serialize_exception`` does."""
        try:
            text = str(exc)
        except Exception:
            text = "Unhandled exception in function. Could not serialize original exception message."
        try:
            stack = "".join(traceback.extract_tb(exc.__traceback__).format())
        except Exception:
            stack = ""
        return cls(
            function_name=function_name,
            invocation_id=invocation_id,
            exception_type=type(exc).__name__,
            exception_message=text,
            stack=stack,
        )

    def host_message(self) -> str:
        """The host's failure text; the Durable extension parses its ``Exception:``/``Stack:`` labels."""
        return f"Result: Failure\nException: {self.message}\nStack: {self.stack}"


# ---------------------------------------------------------------------------------------------
# The worker's binding objects: Out, Context, the generic converter
# ---------------------------------------------------------------------------------------------

# The worker keeps one thread-local for all invocations and sets invocation_id before a sync call,
# so logging from user threads can be attributed.
_INVOCATION_LOCAL = threading.local()


class _Out(func.Out[Any]):
    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _RpcException(RpcException):
    def __init__(self, source: str = "", stack_trace: str = "", message: str = "") -> None:
        self._source, self._stack_trace, self._message = source, stack_trace, message

    @property
    def source(self) -> str:
        return self._source

    @property
    def stack_trace(self) -> str:
        return self._stack_trace

    @property
    def message(self) -> str:
        return self._message


class _TraceContext(TraceContext):
    def __init__(self, trace_parent: str, trace_state: str, attributes: dict[str, str]) -> None:
        self._trace_parent, self._trace_state, self._attributes = trace_parent, trace_state, attributes

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return self._attributes


class _RetryContext(RetryContext):
    def __init__(self) -> None:
        self._exception = _RpcException()

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> RpcException:
        return self._exception


class _Context(func.Context):
    def __init__(self, function_name: str, function_directory: str, invocation_id: str, trace: _TraceContext) -> None:
        self._function_name = function_name
        self._function_directory = function_directory
        self._invocation_id = invocation_id
        self._trace = trace
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        # The library annotates a type, but the worker hands out its threading.local instance.
        return typing.cast(type[threading.local], _INVOCATION_LOCAL)

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace

    @property
    def retry_context(self) -> RetryContext:
        return self._retry


class _GenericConverter:
    """The worker's ``GenericBinding``: used for unknown types and ``str``/``bytes`` annotations."""

    @staticmethod
    def has_trigger_support() -> bool:
        return False

    @staticmethod
    def has_implicit_output() -> bool:
        return False

    @staticmethod
    def check_input_type_annotation(pytype: type) -> bool:
        return issubclass(pytype, str | bytes)

    @staticmethod
    def check_output_type_annotation(pytype: type) -> bool:
        return issubclass(pytype, str | bytes | bytearray)

    @staticmethod
    def decode(data: Datum, *, trigger_metadata: Any) -> Any:
        if data.type in ("string", "bytes", "json", None):
            return data.value
        # The worker's exact (two-argument) exception, so the failure text matches Azure's.
        raise ValueError('unexpected type of data received for the "generic" binding ', repr(data.type))

    @staticmethod
    def encode(obj: Any, *, expected_type: Any) -> Datum:
        if isinstance(obj, str):
            return Datum(obj, "string")
        if isinstance(obj, bytes | bytearray):
            return Datum(bytes(obj), "bytes")
        if obj is None:
            return Datum(None, None)
        for python_type, datum_type in (
            (dict, "dict"),
            (list, "list"),
            (bool, "bool"),
            (int, "int"),
            (float, "double"),
        ):
            if isinstance(obj, python_type):
                return Datum(obj, datum_type)
        raise NotImplementedError


GENERIC = "generic"


def _converter(bind_type: str) -> Any:
    # The library leaves get_binding_registry() unannotated; it returns the converter metaclass.
    registry: Any = func.get_binding_registry()  # type: ignore[no-untyped-call]
    found = None if bind_type == GENERIC else registry.get(bind_type)
    return _GenericConverter if found is None else found


def _has_implicit_output(bind_type: str) -> bool:
    return bool(getattr(_converter(bind_type), "has_implicit_output", lambda: False)())


# ---------------------------------------------------------------------------------------------
# Load-time plan (functions.py: Registry.add_indexed_function)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    binding: dict[str, Any]
    bind_type: str
    pytype: Any


@dataclass(frozen=True)
class _Plan:
    function: IndexedFunction
    directory: str
    is_async: bool
    requires_context: bool
    inputs: dict[str, _Param]
    outputs: dict[str, _Param]
    returns: _Param | None


_NOT_GENERIC_ORIGINS: tuple[Any, ...] = (typing.Union, tuple, typing.ClassVar, collections.abc.Callable)


def _is_generic(annotation: Any) -> bool:
    """``typing_inspect.is_generic_type`` as the worker vendors it.

    True for ``typing`` generic aliases (``typing.Dict[str, Any]``, ``func.Out[str]``) and ``Generic``
    subclasses; False for built-in generics (``dict[str, Any]``), ``Optional``/``Union``/``X | Y``,
    ``Tuple``, ``ClassVar`` and ``Callable``. So the worker refuses ``dict[str, Any]`` on a binding.
    """
    if isinstance(annotation, type):
        return issubclass(annotation, typing.Generic)
    aliases = (typing._GenericAlias, typing._SpecialGenericAlias)  # type: ignore[attr-defined]
    return isinstance(annotation, aliases) and annotation.__origin__ not in _NOT_GENERIC_ORIGINS


def _is_out(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    target = origin if origin is not None else annotation
    return isinstance(target, type) and target.__name__ == "Out"


def _check_annotation(name: str, check: Callable[[Any], Any], pytype: Any) -> bool:
    try:
        return bool(check(pytype))
    except TypeError as exc:
        raise FunctionLoadError(name, f"cannot check the annotation {pytype!r}: {exc}") from None


def _check_supported(name: str, binding: dict[str, Any], direction: str) -> None:
    kind = str(binding["type"])
    if direction == "OUT":
        ok = kind == HTTP_OUTPUT or kind in _OUTPUT_WRITERS
    elif kind.endswith("Trigger"):
        ok = kind in SUPPORTED_TRIGGERS
    else:
        ok = kind in SUPPORTED_INPUTS
    if not ok:
        raise UnsupportedBindingError(
            name,
            f"the {direction.lower()} binding '{binding['name']}' of type '{kind}' is not supported by the local host",
        )


def _function_directory(callable_: Callable[..., Any]) -> str:
    # Like the worker: the directory of the file defining the callable the app registered (for the
    # Durable SDK's wrappers that is the SDK's own directory, in Azure too).
    try:
        return str(pathlib.Path(inspect.getfile(callable_)).parent)
    except TypeError:
        return os.getcwd()


def _param_plan(name: str, param_name: str, binding: dict[str, Any], annotations: dict[str, Any]) -> _Param:
    """One parameter, checked as ``Registry.validate_function_params`` checks it."""
    has_anno = param_name in annotations
    anno = annotations.get(param_name)
    is_param_out = has_anno and _is_out(anno)
    is_binding_out = str(binding.get("direction", "IN")).upper() == "OUT"
    pytype = anno
    if is_param_out:
        args = typing.get_args(anno)
        if len(args) != 1:
            raise FunctionLoadError(name, f"binding {param_name} has invalid Out annotation {anno!r}")
        pytype = args[0]
    if has_anno and not isinstance(pytype, type) and not _is_generic(pytype):
        raise FunctionLoadError(name, f"binding {param_name} has invalid non-type annotation {anno!r}")
    if is_binding_out and has_anno and not is_param_out:
        raise FunctionLoadError(
            name,
            f'binding {param_name} is declared to have the "out" direction, but its annotation in Python '
            "is not a subclass of azure.functions.Out",
        )
    if not is_binding_out and is_param_out:
        raise FunctionLoadError(
            name,
            f'binding {param_name} is declared to have the "in" direction in the binding decorator, but its '
            "annotation is azure.functions.Out in Python",
        )
    kind = str(binding["type"])
    bind_type = GENERIC if has_anno and pytype in (str, bytes) and not _has_implicit_output(kind) else kind
    if has_anno:
        converter = _converter(bind_type)
        if is_param_out:
            ok = _check_annotation(name, converter.check_output_type_annotation, pytype)
        else:
            # The worker skips the check for the Durable client (INPUT_TYPE_CHECK_OVERRIDE_MAP).
            ok = bind_type == DURABLE_CLIENT or _check_annotation(name, converter.check_input_type_annotation, pytype)
        if not ok:
            # The worker tests `binding.data_type is not BindingInfo.undefined`: an enum against an int,
            # always true, so this is the message Azure gives whatever the binding's dataType.
            shown = getattr(pytype, "__name__", repr(pytype))
            raise FunctionLoadError(
                name,
                f'binding type "{param_name!r}" and dataType "{kind}" in the binding decorator do not match '
                f"the corresponding function parameter's Python type annotation {shown}",
            )
    return _Param(binding, bind_type, pytype)


def _return_plan(
    name: str, explicit: dict[str, Any] | None, implicit: dict[str, Any] | None, annotations: dict[str, Any]
) -> _Param | None:
    """The return binding: explicit ``$return`` first, else a Durable trigger's implicit output."""
    binding = explicit or implicit
    if binding is None:
        return None
    return_type = str(binding["type"])
    return_pytype: Any = None
    if explicit is not None and "return" in annotations:
        anno = annotations["return"]
        if _is_generic(anno) and _is_out(anno):
            raise FunctionLoadError(name, "return annotation should not be azure.functions.Out")
        if not isinstance(anno, type):
            raise FunctionLoadError(name, f"has invalid non-type return annotation {anno!r}")
        if not _check_annotation(name, _converter(return_type).check_output_type_annotation, anno):
            raise FunctionLoadError(
                name,
                f'Python return annotation "{anno.__name__}" does not match binding type "{return_type}"',
            )
        return_pytype = anno
    if implicit is not None and "return" in annotations:
        return_pytype = annotations["return"]
    return _Param(binding, return_type, return_pytype)


def check_worker_load(fn: IndexedFunction) -> None:
    """The worker's load checks alone, without the host's binding-type check.

    The worker indexes every function, including those the host then puts in error, so a function it
    refuses stops the app whatever its binding types.

    Raises:
        FunctionLoadError: The worker would refuse ``fn``.
    """
    _build_plan(fn)


def _build_plan(fn: IndexedFunction) -> _Plan:
    """Check ``fn`` and work out how to call it (``Registry.add_indexed_function``)."""
    name = fn.name
    try:
        params = dict(inspect.signature(fn.user_function).parameters)
        annotations = typing.get_type_hints(fn.user_function)
    except Exception as exc:
        raise FunctionLoadError(name, f"cannot read the function's signature: {type(exc).__name__}: {exc}") from exc
    bound: dict[str, dict[str, Any]] = {}
    explicit: dict[str, Any] | None = None
    implicit: dict[str, Any] | None = None
    for binding in fn.bindings:
        direction = str(binding.get("direction", "IN")).upper()
        if direction == "INOUT":
            raise FunctionLoadError(name, '"inout" bindings are not supported')
        if binding["name"] == "$return":
            if direction != "OUT":
                raise FunctionLoadError(name, '"$return" binding must have direction set to "out"')
            explicit = explicit or binding
            continue
        bound[binding["name"]] = binding
        if _has_implicit_output(binding["type"]) and implicit is None:
            implicit = binding

    requires_context = "context" in params and "context" not in bound
    if requires_context:
        params.pop("context")
        anno = annotations.get("context")
        if "context" in annotations and (not isinstance(anno, type) or anno.__name__ != "Context"):
            raise FunctionLoadError(
                name,
                f'the "context" parameter is expected to be of type azure.functions.Context, got "{anno!r}"',
            )
    if set(params) - set(bound):
        missing = set(params) - set(bound)
        raise FunctionLoadError(
            name,
            "the following parameters are declared in Python but not in the function definition "
            f"(function.json or function decorators):  {missing!r}",
        )
    if set(bound) - set(params):
        missing = set(bound) - set(params)
        raise FunctionLoadError(
            name,
            "Extra parameters in binding definition \u2014 the following parameters are declared as bindings "
            f"but are not present in Python: {missing!r}",
        )

    inputs: dict[str, _Param] = {}
    outputs: dict[str, _Param] = {}
    for param_name in params:
        param = _param_plan(name, param_name, bound[param_name], annotations)
        is_out = str(param.binding.get("direction", "IN")).upper() == "OUT"
        (outputs if is_out else inputs)[param_name] = param
    return _Plan(
        function=fn,
        directory=_function_directory(fn.user_function),
        is_async=inspect.iscoroutinefunction(fn.user_function),
        requires_context=requires_context,
        inputs=inputs,
        outputs=outputs,
        returns=_return_plan(name, explicit, implicit, annotations),
    )


# ---------------------------------------------------------------------------------------------
# Datum helpers (bindings/meta.py and the host's ToRpc conversions)
# ---------------------------------------------------------------------------------------------


def _decode(param: _Param, datum: Datum, metadata: dict[str, Datum]) -> Any:
    converter = _converter(param.bind_type)
    trigger_metadata = metadata if converter.has_trigger_support() else {}
    try:
        return converter.decode(datum, trigger_metadata=trigger_metadata)
    except NotImplementedError:
        raise TypeError(
            "unable to decode incoming TypedData: unsupported combination of TypedData field "
            f"{datum.type!r} and expected binding type {converter}"
        ) from None


def _encode(param: _Param, value: Any) -> Datum:
    converter = _converter(param.bind_type)
    try:
        datum = converter.encode(value, expected_type=param.pytype)
    except NotImplementedError:
        raise TypeError(
            f'unable to encode outgoing TypedData: unsupported type "{param.bind_type}" for Python type '
            f'"{type(value).__name__}"'
        ) from None
    if not isinstance(datum, Datum):
        raise TypeError(f"the {param.bind_type} converter returned {datum!r} instead of a Datum")
    return datum


def _metadata_datum(value: Any) -> Datum:
    """One trigger-metadata value as the host sends it: strings and bytes as-is, the rest as JSON."""
    if isinstance(value, Datum):
        return value
    if isinstance(value, str):
        return Datum(value, "string")
    if isinstance(value, bytes):
        return Datum(value, "bytes")
    if isinstance(value, datetime):
        # The library parses only UTC offsets ("+00:00"/"Z"), which is what the host sends.
        moment = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return Datum(json.dumps(moment.isoformat()), "json")
    return Datum(json.dumps(value), "json")


def _http_request_datum(request: HttpRequestData) -> Datum:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value

    def strings(values: Mapping[str, str]) -> dict[str, Datum]:
        return {key: Datum(value, "string") for key, value in values.items()}

    return Datum(
        {
            "method": Datum(request.method.upper(), "string"),
            "url": Datum(request.url, "string"),
            "headers": strings(headers),
            "query": strings({k: v for k, v in request.query.items() if v}),
            "params": strings(request.route_params),
            "body": Datum(bytes(request.body), "bytes"),
        },
        "http",
    )


_TEXT_PLAIN = "text/plain; charset=utf-8"


def _http_response(datum: Datum | None) -> HttpResponseData:
    """Map the HTTP output datum to a response, as the host does with ``RpcHttp``."""
    if datum is None or datum.type is None:
        return HttpResponseData(status=204, headers=(), body=b"")
    if datum.type == "string":
        return HttpResponseData(200, (("Content-Type", _TEXT_PLAIN),), str(datum.value).encode("utf-8"))
    if datum.type == "bytes":
        return HttpResponseData(200, (("Content-Type", "application/octet-stream"),), bytes(datum.value))
    if datum.type == "json":
        return HttpResponseData(200, (("Content-Type", "application/json"),), str(datum.value).encode("utf-8"))
    if datum.type != "http":
        raise TypeError(f"unsupported HTTP response datum type {datum.type!r}")
    value = datum.value
    headers = [(str(name), str(header.value)) for name, header in value.get("headers", {}).items()]
    for cookie in value.get("cookies") or []:
        if isinstance(cookie, str):
            headers.append(("Set-Cookie", cookie))
        elif isinstance(cookie, SimpleCookie):
            headers.extend(("Set-Cookie", _morsel_header(morsel)) for morsel in cookie.values())
    body_datum = value.get("body")
    body = b"" if body_datum is None or body_datum.value is None else body_datum.value
    if isinstance(body, str):
        body = body.encode("utf-8")
    return HttpResponseData(int(value["status_code"].value), tuple(headers), bytes(body))


def set_cookie_header(
    name: str,
    value: str,
    *,
    domain: str | None = None,
    path: str | None = None,
    expires: datetime | None = None,
    max_age: float | None = None,
    secure: bool = False,
    http_only: bool = False,
    same_site: str | None = None,
) -> str:
    """A ``Set-Cookie`` value as the Functions host writes one from the worker's ``RpcHttpCookie``.

    The host appends each cookie through ASP.NET Core (``SetCookieHeaderValue``): lower-case
    attribute names in this order, ``expires`` in RFC 1123 form, empty domain/path left out.
    """
    parts = [f"{name}={value}"]
    if expires is not None:
        parts.append("expires=" + expires.astimezone(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"))
    if max_age is not None:
        parts.append(f"max-age={int(max_age)}")
    if domain:
        parts.append(f"domain={domain}")
    if path:
        parts.append(f"path={path}")
    if secure:
        parts.append("secure")
    if same_site:
        parts.append(f"samesite={same_site}")
    if http_only:
        parts.append("httponly")
    return "; ".join(parts)


def _morsel_header(morsel: Any) -> str:
    """A ``SimpleCookie`` morsel read the way the worker reads it into an ``RpcHttpCookie``."""
    expires_text = morsel["expires"]
    expires = (
        datetime.strptime(expires_text, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc)
        if expires_text
        else None
    )
    max_age = morsel["max-age"]
    same_site = str(morsel["samesite"] or "").lower()
    return set_cookie_header(
        morsel.key,
        morsel.value,
        domain=morsel["domain"] or None,
        path=morsel["path"] or None,
        expires=expires,
        max_age=float(max_age) if max_age != "" else None,
        secure=bool(morsel["secure"]),
        http_only=bool(morsel["httponly"]),
        same_site=same_site if same_site in ("lax", "strict", "none") else None,
    )


def _trace_context(traceparent: str | None, tracestate: str | None) -> _TraceContext:
    # The host starts an Activity per invocation: a child of the caller's trace when there is one.
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        trace_id, flags = parts[1], parts[3]
    else:
        trace_id, flags = secrets.token_hex(16), "00"
    return _TraceContext(f"00-{trace_id}-{secrets.token_hex(8)}-{flags}", tracestate or "", {})


def _default_workers() -> int:
    default = min(32, (os.cpu_count() or 1) + 4)
    raw = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
    if raw is None:
        return default
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        logger.warning("PYTHON_THREADPOOL_THREAD_COUNT=%r is not a positive integer; using %d", raw, default)
        return default
    return count


def _format_timespan(value: timedelta) -> str:
    total = int(value.total_seconds())
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _run_sync(target: Callable[..., Any], args: dict[str, Any], invocation_id: str) -> Any:
    _INVOCATION_LOCAL.invocation_id = invocation_id
    try:
        return target(**args)
    finally:
        _INVOCATION_LOCAL.invocation_id = None


# ---------------------------------------------------------------------------------------------
# The invoker
# ---------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """A finished invocation: the implicit result, the HTTP answer and every other output."""

    result: Datum | None = None
    http: Datum | None = None
    outputs: list[tuple[dict[str, Any], Datum]] = field(default_factory=list)

    def add_return(self, binding: dict[str, Any], datum: Datum) -> None:
        """File the return value by its binding: an output binding, the HTTP answer or the result."""
        kind = str(binding["type"])
        if kind in _OUTPUT_WRITERS:
            self.outputs.append((binding, datum))
        elif kind == HTTP_OUTPUT:
            self.http = datum
        else:
            self.result = datum


_R = typing.TypeVar("_R")

_HTTP_REASON = "This function was programmatically called via the host APIs."


class Invoker:
    """Runs functions of one app with the worker's semantics.

    Args:
        functions: The indexed functions; each is checked now, like the worker's load step.
        output_sink: Receives non-HTTP outputs; required when a function has such an output.
        input_provider: Reads non-trigger inputs (``blob``); required when a function has such an input.
        client_binding_json: Gives the ``durableClient`` binding JSON for a request origin; required
            when a function has a Durable client input.
        function_timeout: ``host.json`` ``functionTimeout``; ``None`` for no limit. A timed-out sync
            function keeps its thread until it returns (threads cannot be cancelled).
        max_workers: Thread-pool size for sync functions; default ``PYTHON_THREADPOOL_THREAD_COUNT``
            or ``min(32, cpu_count + 4)``.

    Raises:
        FunctionLoadError: A function's signature does not fit its bindings (the worker's checks).
        UnsupportedBindingError: A function uses a binding type this host cannot serve.
    """

    def __init__(
        self,
        functions: Iterable[IndexedFunction],
        *,
        output_sink: OutputSink | None = None,
        input_provider: InputProvider | None = None,
        client_binding_json: ClientBindingJson | None = None,
        function_timeout: timedelta | None = None,
        max_workers: int | None = None,
    ) -> None:
        self._sink = output_sink
        self._inputs = input_provider
        self._client_binding_json = client_binding_json
        self._timeout = function_timeout
        self._plans: dict[str, _Plan] = {}
        for fn in functions:
            self._load(fn)
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers or _default_workers(), thread_name_prefix="durableagent-function"
        )

    def _load(self, fn: IndexedFunction) -> None:
        """Check ``fn`` as the worker's load step does and remember how to call it."""
        self._check_host_support(fn)
        self._plans[fn.name] = _build_plan(fn)

    def _check_host_support(self, fn: IndexedFunction) -> None:
        for binding in fn.bindings:
            _check_supported(fn.name, binding, str(binding.get("direction", "IN")).upper())
        kinds = {str(b["type"]) for b in fn.bindings if b["name"] != fn.trigger["name"]}
        outputs = {str(b["type"]) for b in fn.bindings if str(b.get("direction", "IN")).upper() == "OUT"}
        inputs = {
            str(b["type"])
            for b in fn.bindings
            if b["name"] != fn.trigger["name"] and str(b.get("direction", "IN")).upper() == "IN"
        }
        if self._sink is None and outputs & set(_OUTPUT_WRITERS):
            raise UnsupportedBindingError(fn.name, "it has output bindings but the host has no output sink")
        if self._inputs is None and inputs & set(_INPUT_READERS):
            raise UnsupportedBindingError(fn.name, "it has input bindings but the host has no input provider")
        if self._client_binding_json is None and DURABLE_CLIENT in kinds:
            raise UnsupportedBindingError(fn.name, "it has a durableClient input but the host has no Durable client")

    def _loaded(self, fn: IndexedFunction, kinds: Iterable[str]) -> None:
        if fn.trigger_type not in kinds:
            raise ValueError(f"function '{fn.name}' has a {fn.trigger_type} trigger, expected one of {sorted(kinds)}")
        if not self._is_loaded(fn.name):
            self._load(fn)

    def _is_loaded(self, name: str) -> bool:
        return name in self._plans

    def close(self) -> None:
        """Stop the thread pool (running sync functions finish in the background)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- public entry points ------------------------------------------------------------------

    async def invoke_http(
        self, fn: IndexedFunction, request: HttpRequestData, *, invocation_id: str | None = None
    ) -> HttpResponseData:
        """Run an HTTP-triggered function and return its response.

        Raises:
            FunctionInvocationError: The function (or encoding its outputs) failed.
        """
        self._loaded(fn, {HTTP_TRIGGER})
        parts = urlsplit(request.url)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
        lowered = {k.lower(): v for k, v in request.headers.items()}
        trace = _trace_context(lowered.get("traceparent"), lowered.get("tracestate"))
        return await self._invoke(
            fn,
            _http_request_datum(request),
            {},
            origin=origin,
            reason=_HTTP_REASON,
            invocation_id=invocation_id,
            trace=trace,
            finish=lambda o: _http_response(o.http),
        )

    async def invoke_durable(
        self, fn: IndexedFunction, payload: str, *, invocation_id: str | None = None, reason: str = "(null)"
    ) -> str:
        """Run an orchestrator or entity function on its context JSON; return the state/result JSON.

        Raises:
            FunctionInvocationError: The function failed (for orchestrators the message carries the
                ``$OutOfProcData$`` state).
        """
        self._loaded(fn, {ORCHESTRATION_TRIGGER, ENTITY_TRIGGER})
        return await self._invoke(
            fn,
            Datum(payload, "string"),
            {},
            origin=None,
            reason=reason,
            invocation_id=invocation_id,
            trace=_trace_context(None, None),
            finish=_json_text,
        )

    async def invoke_activity(
        self,
        fn: IndexedFunction,
        input_json: str,
        *,
        invocation_id: str | None = None,
        reason: str = "(null)",
    ) -> str:
        """Run an activity on its (``df_dumps``) input; return its ``df_dumps`` output.

        Raises:
            FunctionInvocationError: The activity failed.
        """
        self._loaded(fn, {ACTIVITY_TRIGGER})
        return await self._invoke(
            fn,
            Datum(input_json, "json"),
            {},
            origin=None,
            reason=reason,
            invocation_id=invocation_id,
            trace=_trace_context(None, None),
            finish=_json_text,
        )

    async def invoke_trigger(
        self,
        fn: IndexedFunction,
        trigger: TriggerInput,
        *,
        invocation_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Run a queue-, timer- or blob-triggered function; its outputs go to the output sink.

        Raises:
            FunctionInvocationError: The function or one of its outputs failed.
        """
        self._loaded(fn, {QUEUE_TRIGGER, TIMER_TRIGGER, BLOB_TRIGGER})
        data: str | bytes = trigger.data
        if trigger.data_type == "bytes" and isinstance(data, str):
            data = data.encode("utf-8")
        elif trigger.data_type != "bytes" and isinstance(data, bytes):
            data = data.decode("utf-8")
        metadata = {key: _metadata_datum(value) for key, value in trigger.metadata.items() if value is not None}
        reason = reason or trigger.reason
        if reason is None:
            if fn.trigger_type == QUEUE_TRIGGER:
                reason = f"New queue message detected on '{fn.trigger.get('queueName', '')}'."
            elif fn.trigger_type == BLOB_TRIGGER:
                reason = f"New blob detected: {trigger.metadata.get('BlobTrigger', '')}"
            else:
                reason = f"Timer fired at {datetime.now(timezone.utc).isoformat()}"
        await self._invoke(
            fn,
            Datum(data, trigger.data_type),
            metadata,
            origin=None,
            reason=reason,
            invocation_id=invocation_id,
            trace=_trace_context(None, None),
            finish=lambda o: None,
        )

    # -- the invocation -----------------------------------------------------------------------

    async def _invoke(
        self,
        fn: IndexedFunction,
        trigger_datum: Datum,
        metadata: dict[str, Datum],
        *,
        origin: str | None,
        reason: str,
        invocation_id: str | None,
        trace: _TraceContext,
        finish: Callable[[_Outcome], _R],
    ) -> _R:
        name = fn.name
        invocation_id = invocation_id or str(uuid.uuid4())
        announce = function_lines_enabled(name, logger)
        if announce:
            logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", name, reason, invocation_id)
        started = time.perf_counter()
        RUNNING.started(invocation_id, name)
        try:
            bound = any(str(b["type"]) in _BOUND_PER_INVOCATION for b in fn.bindings)
            binding_data = binding_data_for(fn.trigger_type, trigger_datum, metadata) if bound else BindingData()

            async def bind_and_execute() -> _Outcome:
                inputs = await self._read_inputs(fn, binding_data)
                return await self._execute(fn, trigger_datum, metadata, inputs, origin, invocation_id, trace)

            outcome = await self._with_timeout(bind_and_execute(), name, invocation_id)
            await self._deliver(outcome, binding_data)
            result = finish(outcome)
        except Exception as exc:
            error = self._describe_failure(exc, function_name=name, invocation_id=invocation_id)
            elapsed = round((time.perf_counter() - started) * 1000)
            logger.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", name, invocation_id, elapsed)
            logger.error("Exception while executing function: Functions.%s. %s", name, error.host_message())
            raise error from exc
        finally:
            RUNNING.finished(invocation_id)
        if announce:
            elapsed = round((time.perf_counter() - started) * 1000)
            logger.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", name, invocation_id, elapsed)
        return result

    def _describe_failure(self, exc: Exception, *, function_name: str, invocation_id: str) -> FunctionInvocationError:
        """The failure as the worker reports it (a worker that already described it passes it on)."""
        if isinstance(exc, FunctionInvocationError):
            return exc
        return FunctionInvocationError.from_exception(exc, function_name=function_name, invocation_id=invocation_id)

    async def _read_inputs(self, fn: IndexedFunction, binding_data: BindingData) -> dict[str, Datum]:
        """The host's part: each non-trigger input (but the Durable client) read before the invocation."""
        inputs: dict[str, Datum] = {}
        for binding in fn.bindings:
            reader = _INPUT_READERS.get(str(binding["type"]))
            if reader is None or str(binding.get("direction", "IN")).upper() != "IN":
                continue
            assert self._inputs is not None  # checked at load
            inputs[binding["name"]] = await reader(self._inputs, binding, binding_data)
        return inputs

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
        """Decode the inputs, call the function, encode its outputs (the worker's invocation step).

        ``inputs`` holds the value the host read for each non-trigger input; the worker passes trigger
        metadata to the trigger's converter only.
        """
        plan = self._plans[fn.name]
        args: dict[str, Any] = {}
        for param_name, param in plan.inputs.items():
            binding_name = param.binding["name"]
            if binding_name == fn.trigger["name"]:
                args[param_name] = _decode(param, trigger_datum, metadata)
            elif binding_name in inputs:
                args[param_name] = _decode(param, inputs[binding_name], {})
            else:
                assert self._client_binding_json is not None  # checked at load: the rest are Durable clients
                args[param_name] = _decode(param, Datum(self._client_binding_json(origin), "string"), {})
        if plan.requires_context:
            args["context"] = _Context(fn.name, plan.directory, invocation_id, trace)
        for param_name in plan.outputs:
            args[param_name] = _Out()

        result = await self._call(plan, args, invocation_id)
        if result is not None and plan.returns is None:
            # The worker passes the format and its argument separately, so Azure reports the tuple.
            raise RuntimeError("function %s without a $return bindingreturned a non-None value", repr(fn.name))

        outcome = _Outcome()
        for param_name, param in plan.outputs.items():
            value = args[param_name].get()
            if value is not None:
                outcome.outputs.append((param.binding, _encode(param, value)))
        if plan.returns is not None:
            outcome.add_return(plan.returns.binding, _encode(plan.returns, result))
        return outcome

    async def _deliver(self, outcome: _Outcome, binding_data: BindingData) -> None:
        """What the host does with the worker's outputs: HTTP answers the caller, the rest goes out."""
        for binding, datum in outcome.outputs:
            kind = binding["type"]
            if kind == HTTP_OUTPUT:
                # An Out[HttpResponse] parameter answers the request when there is no $return.
                outcome.http = outcome.http or datum
            else:
                assert self._sink is not None  # checked at load
                await _OUTPUT_WRITERS[kind](self._sink, binding, datum, binding_data)

    async def _call(self, plan: _Plan, args: dict[str, Any], invocation_id: str) -> Any:
        target = plan.function.user_function
        if plan.is_async:
            return await target(**args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(_run_sync, target, args, invocation_id))

    async def _with_timeout(self, running: Awaitable[_R], function_name: str, invocation_id: str) -> _R:
        # The host, not the worker, enforces functionTimeout.
        if self._timeout is None:
            return await running
        try:
            return await asyncio.wait_for(running, self._timeout.total_seconds())
        except asyncio.TimeoutError:  # what wait_for raises on 3.10 (TimeoutError from 3.11)
            raise FunctionTimeoutException(
                f"Timeout value of {_format_timespan(self._timeout)} exceeded by function "
                f"'Functions.{function_name}' (Id: '{invocation_id}'). Initiating cancellation."
            ) from None


def _json_text(outcome: _Outcome) -> str:
    """The implicit output of a Durable trigger: a JSON text (the SDK already returns a string)."""
    if outcome.result is None:
        return "null"
    value = outcome.result.value
    return value if isinstance(value, str) else json.dumps(value)
