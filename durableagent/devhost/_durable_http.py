"""Durable HTTP (``context.call_http``): the request and response as the Durable extension shapes them.

Pure wire helpers shared by the shim replay (which schedules the built-in activity and, when asked,
polls a 202 answer) and the activity that sends the request (:mod:`._http_activity`).

Sources (Azure/azure-functions-durable-extension, ``src/WebJobs.Extensions.DurableTask/``):
``DurableHttpRequest.cs`` (JSON names, the token source converter), ``DurableHttpResponse.cs`` and
``HttpHeadersConverter.cs`` (``{"statusCode": int, "headers": {name: str | [str]}, "content": str}``),
``Options/HttpOptions.cs`` (the activity's reserved name ``BuiltIn::HttpActivity``),
``ManagedIdentityTokenSource.cs`` (resource normalization) and
``ContextImplementations/DurableOrchestrationContext.cs`` (``CallHttpAsync``: the 202 polling loop and
``CreateLocationPollRequest``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "HTTP_ACTIVITY",
    "header_value",
    "normalize_request",
    "poll_request",
    "request_json",
]

HTTP_ACTIVITY = "BuiltIn::HttpActivity"

_MANAGED_IDENTITY = "AzureManagedIdentity"
# ManagedIdentityTokenSource turns these two bare resources into scopes.
_RESOURCE_SCOPES = {
    "https://management.core.windows.net": "https://management.core.windows.net/.default",
    "https://management.core.windows.net/": "https://management.core.windows.net/.default",
    "https://graph.microsoft.com": "https://graph.microsoft.com/.default",
    "https://graph.microsoft.com/": "https://graph.microsoft.com/.default",
}


def _headers(raw: Any) -> dict[str, list[str]]:
    """``HttpHeadersConverter.ReadJson``: each value a string or an array of strings; names case-blind."""
    headers: dict[str, list[str]] = {}
    if not isinstance(raw, dict):
        return headers
    by_lower: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            values = [value]
        elif isinstance(value, list):
            values = [str(v) for v in value if v is not None]
        else:
            continue
        key = by_lower.setdefault(str(name).lower(), str(name))
        headers[key] = values
    return headers


def _token_source(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    source = dict(raw)
    resource = source.get("resource")
    if source.get("kind") == _MANAGED_IDENTITY and isinstance(resource, str):
        source["resource"] = _RESOURCE_SCOPES.get(resource, resource)
    return source


def normalize_request(wire: Any) -> dict[str, Any]:
    """The SDK's ``httpRequest`` as the extension deserializes it into ``DurableHttpRequest``.

    ``asynchronousPatternEnabled`` is false unless the payload says true: Newtonsoft passes a missing
    constructor argument as ``default(bool)``, which is why an out-of-proc SDK must send the flag to get
    polling (Azure/azure-functions-durable-js#284). The Python SDK 1.x never sends it.
    """
    data = wire if isinstance(wire, dict) else {}
    method = data.get("method")
    timeout = data.get("timeout")
    return {
        "method": method if isinstance(method, str) and method else "GET",
        "uri": data.get("uri") if isinstance(data.get("uri"), str) else None,
        "headers": _headers(data.get("headers")),
        "content": data.get("content") if isinstance(data.get("content"), str) else None,
        "tokenSource": _token_source(data.get("tokenSource")),
        "asynchronousPatternEnabled": data.get("asynchronousPatternEnabled") is True,
        "retryOptions": None,
        "timeout": timeout if isinstance(timeout, str) else None,
    }


def request_json(request: dict[str, Any]) -> str:
    """The request as the activity's input (single-valued headers as strings, as the converter writes)."""
    headers = {name: values[0] if len(values) == 1 else values for name, values in request["headers"].items()}
    return json.dumps({**request, "headers": headers}, separators=(",", ":"))


def header_value(headers: Any, name: str) -> str | None:
    """A response header by name, ignoring case; several values joined by commas (``StringValues``)."""
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if str(key).lower() == name.lower():
            if isinstance(value, list):
                return ",".join(str(v) for v in value)
            return None if value is None else str(value)
    return None


def poll_request(original: dict[str, Any], location: str) -> dict[str, Any]:
    """``CreateLocationPollRequest``: a GET of ``Location`` with the original headers, token source and
    timeout, minus ``x-functions-key`` (the status endpoint usually wants another key)."""
    headers = {k: v for k, v in original["headers"].items() if k.lower() != "x-functions-key"}
    return {
        "method": "GET",
        "uri": location,
        "headers": headers,
        "content": None,
        "tokenSource": original["tokenSource"],
        # Built in C#, where the constructor's default (true) applies.
        "asynchronousPatternEnabled": True,
        "retryOptions": None,
        "timeout": original["timeout"],
    }
