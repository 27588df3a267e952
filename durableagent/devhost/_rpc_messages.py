"""The Functions RPC messages the Python worker library reads and builds, as plain Python objects.

``azure_functions_runtime`` (the worker Azure runs for Python 3.13+) takes its message classes from
its caller (``request.properties["protos"]``) instead of importing generated protobuf code. In
process nothing crosses a wire, so these small classes are enough: keyword construction, attribute
access, defaults for unset fields, ``WhichOneof`` for the two oneofs it inspects, and the enum
values it compares against (``BindingInfo.out``, ``StatusResult.Success`` ...), numbered as in the
host's ``FunctionRpc.proto``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

__all__ = ["PROTOS", "TYPED_DATA_FIELDS", "Message", "TypedData", "WorkerRequest"]


class Message:
    """A message: fields given as keywords, unset fields read as their default."""

    _defaults: ClassVar[Mapping[str, Any]] = {}
    _oneofs: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(self, **fields: Any) -> None:
        unknown = set(fields) - set(self._defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        self._set = {name for name, value in fields.items() if value is not None}
        for name, default in self._defaults.items():
            value = fields.get(name)
            # Like protobuf: a None field reads as its default (a fresh copy for containers).
            setattr(self, name, _fresh(default) if value is None else value)

    def WhichOneof(self, group: str) -> str | None:
        for name in self._oneofs.get(group, ()):
            if name in self._set:
                return name
        return None

    def HasField(self, name: str) -> bool:
        return name in self._set

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in sorted(self._set))
        return f"{type(self).__name__}({shown})"


def _fresh(default: Any) -> Any:
    if isinstance(default, dict):
        return {}
    if isinstance(default, list):
        return []
    return default


def _message(name: str, *fields: str, oneofs: Mapping[str, tuple[str, ...]] | None = None, **defaults: Any) -> type:
    """A message class whose fields default to ``None`` unless given a default."""
    all_defaults: dict[str, Any] = dict.fromkeys(fields)
    all_defaults.update(defaults)
    return type(name, (Message,), {"_defaults": all_defaults, "_oneofs": dict(oneofs or {})})


TYPED_DATA_FIELDS = (
    "string",
    "json",
    "bytes",
    "stream",
    "http",
    "int",
    "double",
    "collection_bytes",
    "collection_string",
    "collection_double",
    "collection_sint64",
    "model_binding_data",
    "collection_model_binding_data",
)

TypedData = _message("TypedData", *TYPED_DATA_FIELDS, oneofs={"data": TYPED_DATA_FIELDS})
ParameterBinding = _message(
    "ParameterBinding", "name", "data", "rpc_shared_memory", oneofs={"rpc_data": ("data", "rpc_shared_memory")}
)
RpcHttp = _message(
    "RpcHttp",
    "method",
    "url",
    "body",
    "rawBody",
    "status_code",
    "enable_content_negotiation",
    "identities",
    headers={},
    params={},
    query={},
    cookies=[],
    nullable_headers={},
    nullable_params={},
    nullable_query={},
)
RpcHttpCookie = _message(
    "RpcHttpCookie", "name", "value", "domain", "path", "expires", "secure", "http_only", "same_site", "max_age"
)
RpcHttpCookie.SameSite = SimpleNamespace(**{"None": 0, "Lax": 1, "Strict": 2, "ExplicitNone": 3})  # type: ignore[attr-defined]
NullableString = _message("NullableString", "value")
NullableBool = _message("NullableBool", "value")
NullableDouble = _message("NullableDouble", "value")
NullableTimestamp = _message("NullableTimestamp", "value")
Timestamp = _message("Timestamp", "nanos", seconds=0)
RpcException = _message("RpcException", "source", "stack_trace", "message", "is_user_exception", "type")
StatusResult = _message("StatusResult", "exception", "logs", status=0)
StatusResult.Failure, StatusResult.Success, StatusResult.Cancelled = 0, 1, 2  # type: ignore[attr-defined]
BindingInfo = _message("BindingInfo", "type", direction=0, data_type=0, properties={})
# Direction: in/out/inout; DataType: undefined/string/binary/stream ("in" is a Python keyword).
for _name, _value in (
    ("in", 0),
    ("out", 1),
    ("inout", 2),
    ("undefined", 0),
    ("string", 1),
    ("binary", 2),
    ("stream", 3),
):
    setattr(BindingInfo, _name, _value)
RpcRetryOptions = _message(
    "RpcRetryOptions", "max_retry_count", "delay_interval", "minimum_interval", "maximum_interval", "retry_strategy"
)
RpcFunctionMetadata = _message(
    "RpcFunctionMetadata",
    "name",
    "directory",
    "script_file",
    "entry_point",
    "is_proxy",
    "load_request_failure",
    "managed_dependency_enabled",
    "function_id",
    "retry_options",
    "language",
    bindings={},
    raw_bindings=[],
    properties={},
)
WorkerMetadata = _message(
    "WorkerMetadata", "runtime_name", "runtime_version", "worker_version", "worker_bitness", custom_properties={}
)
WorkerInitResponse = _message("WorkerInitResponse", "worker_version", "result", "worker_metadata", capabilities={})
FunctionMetadataResponse = _message(
    "FunctionMetadataResponse", "result", "use_default_metadata_indexing", function_metadata_results=[]
)
FunctionLoadResponse = _message("FunctionLoadResponse", "function_id", "result", "is_dependency_downloaded")
FunctionEnvironmentReloadResponse = _message(
    "FunctionEnvironmentReloadResponse", "worker_metadata", "result", capabilities={}
)
InvocationResponse = _message("InvocationResponse", "invocation_id", "return_value", "result", output_data=[])

# What the worker library reads off the host's requests.
WorkerInitRequest = _message(
    "WorkerInitRequest", "host_version", "log_categories", "worker_directory", "function_app_directory", capabilities={}
)
FunctionsMetadataRequest = _message("FunctionsMetadataRequest", "function_app_directory")
FunctionLoadRequest = _message("FunctionLoadRequest", "function_id", "metadata", "managed_dependency_enabled")
RpcTraceContext = _message("RpcTraceContext", trace_parent="", trace_state="", attributes={})
RetryContext = _message("RetryContext", "exception", retry_count=0, max_retry_count=0)
InvocationRequest = _message(
    "InvocationRequest",
    "invocation_id",
    "function_id",
    "trace_context",
    "retry_context",
    input_data=[],
    trigger_metadata={},
)
StreamingMessage = _message(
    "StreamingMessage",
    "request_id",
    "worker_init_request",
    "functions_metadata_request",
    "function_load_request",
    "invocation_request",
    oneofs={
        "content": ("worker_init_request", "functions_metadata_request", "function_load_request", "invocation_request")
    },
)


class WorkerRequest:
    """What the worker's dispatcher hands the library: a message, its name and properties."""

    def __init__(self, name: str, request: Any, properties: dict[str, Any] | None = None) -> None:
        self.name = name
        self.request = request
        self.properties = properties or {}


PROTOS = SimpleNamespace(
    **{
        cls.__name__: cls
        for cls in (
            TypedData,
            ParameterBinding,
            RpcHttp,
            RpcHttpCookie,
            NullableString,
            NullableBool,
            NullableDouble,
            NullableTimestamp,
            Timestamp,
            RpcException,
            StatusResult,
            BindingInfo,
            RpcRetryOptions,
            RpcFunctionMetadata,
            WorkerMetadata,
            WorkerInitResponse,
            FunctionMetadataResponse,
            FunctionLoadResponse,
            FunctionEnvironmentReloadResponse,
            InvocationResponse,
            WorkerInitRequest,
            FunctionsMetadataRequest,
            FunctionLoadRequest,
            RpcTraceContext,
            RetryContext,
            InvocationRequest,
            StreamingMessage,
        )
    }
)
"""The ``protos`` namespace the library is given (``protos.TypedData(...)``, ``protos.StatusResult.Success``)."""
