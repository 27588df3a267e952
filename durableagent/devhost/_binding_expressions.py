"""Binding expressions: ``{name}`` tokens in binding properties, and the binding data that fills them.

Ported from the WebJobs SDK (``Microsoft.Azure.WebJobs.Host.Bindings.Path``):

- ``BindingTemplateParser`` splits a template into literals and ``{parameter}`` tokens; ``{{`` and ``}}``
  are literal braces.
- ``BindingTemplateSource.BuildCapturePattern`` turns a template into ``^literal(?<name>.*)literal$``
  (greedy, case-sensitive) to read parameter values out of an actual path (the blob trigger's
  ``path``); :func:`capture` does the same.
- ``BindingTemplate.Bind`` fills each parameter from the invocation's binding data, names compared
  case-insensitively and dotted names walking into JSON objects; a missing one fails with
  ``No value for named parameter 'x'.``. ``{rand-guid}`` and ``{DateTime}`` are built in
  (MicrosoftDocs/azure-docs, articles/azure-functions/functions-bindings-expressions-patterns.md).

What the binding data holds per trigger follows the host: the trigger metadata it sends the worker,
plus, for HTTP, the request's JSON body properties, query parameters and route values and the
``Query``/``Headers`` collections (WebJobs extensions, ``HttpTriggerAttributeBindingProvider
.GetRequestBindingDataAsync``), and for a queue message its text as ``QueueTrigger``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from azure.functions.meta import Datum

from ._functions import HTTP_TRIGGER, QUEUE_TRIGGER

__all__ = [
    "BindingData",
    "BindingExpressionError",
    "TemplateFormatError",
    "bind",
    "binding_data_for",
    "capture",
    "parameter_names",
]


class TemplateFormatError(ValueError):
    """A binding template with unbalanced braces or an empty parameter."""


class BindingExpressionError(Exception):
    """A template parameter the binding data has no value for (the WebJobs SDK's message)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"No value for named parameter '{name}'.")
        self.name = name


class BindingData(Mapping[str, Any]):
    """Binding data: names compared case-insensitively, the last value given for a name winning."""

    def __init__(self, *sources: Mapping[str, Any]) -> None:
        self._values: dict[str, tuple[str, Any]] = {}
        for source in sources:
            for key, value in source.items():
                self._values[key.lower()] = (key, value)

    def __getitem__(self, key: str) -> Any:
        return self._values[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._values.values())

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"BindingData({dict(self.items())!r})"


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------


def _tokens(template: str) -> list[tuple[bool, str]]:
    """``(is_parameter, text)`` pieces of ``template``, escaped braces already unescaped."""
    pieces: list[tuple[bool, str]] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char == "{" and template.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and template.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "{":
            end = template.find("}", i + 1)
            name = template[i + 1 : end].strip() if end != -1 else ""
            if end == -1 or not name or "{" in name:
                raise TemplateFormatError(
                    f"Invalid template '{template}'. Missing closing bracket or empty parameter at position {i}."
                )
            if literal:
                pieces.append((False, "".join(literal)))
                literal = []
            pieces.append((True, name))
            i = end + 1
        elif char == "}":
            raise TemplateFormatError(f"Invalid template '{template}'. Missing opening bracket at position {i}.")
        else:
            literal.append(char)
            i += 1
    if literal:
        pieces.append((False, "".join(literal)))
    return pieces


def parameter_names(template: str) -> list[str]:
    """The ``{parameter}`` names of ``template``, in order.

    Raises:
        TemplateFormatError: Unbalanced braces.
    """
    return [text for is_parameter, text in _tokens(template) if is_parameter]


def capture(template: str, actual: str) -> dict[str, str] | None:
    """Parameter values read out of ``actual`` if it matches ``template``, else ``None``.

    Like ``BindingTemplateSource``: each parameter captures greedily (``.*``), literals match exactly
    and case-sensitively, and the whole string must match.

    Raises:
        TemplateFormatError: Unbalanced braces.
    """
    pieces = _tokens(template)
    pattern = "".join("(.*)" if is_parameter else re.escape(text) for is_parameter, text in pieces)
    match = re.fullmatch(pattern, actual)
    if match is None:
        return None
    names = [text for is_parameter, text in pieces if is_parameter]
    return dict(zip(names, match.groups(), strict=True))


def bind(template: str, data: Mapping[str, Any], *, now: datetime | None = None) -> str:
    """Fill the ``{parameters}`` of ``template`` from binding data.

    Raises:
        TemplateFormatError: Unbalanced braces.
        BindingExpressionError: A parameter has no value.
    """
    out: list[str] = []
    for is_parameter, text in _tokens(template):
        out.append(_resolve(text, data, now) if is_parameter else text)
    return "".join(out)


def _resolve(expression: str, data: Mapping[str, Any], now: datetime | None) -> str:
    name, _, format_spec = expression.partition(":")
    lowered = name.strip().lower()
    if lowered == "rand-guid":
        # A .NET Guid format specifier: "N" is 32 digits, the default "D" is hyphenated.
        value = uuid.uuid4()
        return value.hex if format_spec.strip().upper() == "N" else str(value)
    if lowered == "datetime":
        moment = now or datetime.now(timezone.utc)
        return _dotnet_datetime(moment, format_spec.strip() or "yyyy-MM-ddTHH-mm-ssZ")
    value = _lookup(name.strip(), data)
    if value is None:
        raise BindingExpressionError(name.strip())
    return _as_text(value)


def _lookup(path: str, data: Mapping[str, Any]) -> Any:
    """``a.b.c`` walks into nested objects; every name compared case-insensitively."""
    current: Any = data
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        key = part.lower()
        current = next((value for name, value in current.items() if str(name).lower() == key), None)
        if current is None:
            return None
    return current


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"  # .NET's Boolean.ToString()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


_DOTNET_DATE_PARTS = (
    ("yyyy", "%Y"),
    ("fff", "%f"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
)


def _dotnet_datetime(moment: datetime, spec: str) -> str:
    """The common .NET custom date format parts (``yyyy MM dd HH mm ss fff``); other text is literal."""
    out: list[str] = []
    i = 0
    while i < len(spec):
        for token, directive in _DOTNET_DATE_PARTS:
            if spec.startswith(token, i):
                text = moment.strftime(directive)
                out.append(text[:3] if token == "fff" else text)
                i += len(token)
                break
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Binding data of one invocation
# ---------------------------------------------------------------------------------------------


def _plain(datum: Datum) -> Any:
    """A trigger-metadata datum as the plain value a binding expression sees."""
    if datum.type == "json" and isinstance(datum.value, str):
        try:
            return json.loads(datum.value)
        except ValueError:
            return datum.value
    return datum.value


def _json_properties(text: str) -> dict[str, Any]:
    """Top-level properties of a JSON object body: objects kept, arrays skipped, the rest as strings.

    The host's ``Utility.ApplyBindingData``/``HttpTrigger`` body handling: a body that is not a JSON
    object adds nothing.
    """
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return {}
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    properties: dict[str, Any] = {}
    for key, value in parsed.items():
        if value is None or isinstance(value, list):
            continue
        properties[key] = value if isinstance(value, dict) else _as_text(value)
    return properties


def _http_binding_data(request: Mapping[str, Datum]) -> BindingData:
    def values(field: str) -> dict[str, str]:
        items = request.get(field)
        return {} if not isinstance(items, Mapping) else {key: str(item.value) for key, item in items.items()}

    body_datum = request.get("body")
    body = body_datum.value if isinstance(body_datum, Datum) else None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    query = values("query")
    return BindingData(
        _json_properties(text) if text else {},
        # "code" is the function key, never bound.
        {key: value for key, value in query.items() if key.lower() != "code"},
        values("params"),
        {"Query": query, "Headers": values("headers")},
    )


def binding_data_for(trigger_type: str, trigger: Datum, metadata: Mapping[str, Datum]) -> BindingData:
    """The binding data of one invocation: what ``{expressions}`` in its other bindings can use."""
    if trigger_type == HTTP_TRIGGER and trigger.type == "http" and isinstance(trigger.value, Mapping):
        return _http_binding_data(trigger.value)
    extra: dict[str, Any] = {}
    if trigger_type == QUEUE_TRIGGER and isinstance(trigger.value, bytes | str):
        body = trigger.value
        extra["QueueTrigger"] = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return BindingData({key: _plain(value) for key, value in metadata.items()}, extra)
