"""Caller-supplied JSON, parsed once with explicit bounds, for every library entry point.

Agent runs (HTTP bodies and queue messages), workflow starts, answers and terminations all read their
JSON through ``parse_json``, which checks, in this order:

1. size: at most the route's byte limit (413 ``message_too_large``);
2. encoding: strict UTF-8 (a leading byte-order mark is ignored);
3. nesting: at most ``MAX_JSON_DEPTH`` (64) arrays/objects deep, counted by a linear scan of the bytes
   *before* ``json.loads`` recurses (it would need ~1,000 levels of Python stack otherwise, and raise
   ``RecursionError`` for deeper input);
4. syntax: standard JSON only (``NaN``/``Infinity`` refused: entity state and blobs must stay JSON);
5. text: no unpaired UTF-16 surrogate escape (``"\\ud800"``): ``json`` accepts one, but the string
   cannot be encoded as UTF-8, so every blob write, entity state and model request downstream would fail.

Every refusal is a ``RequestError`` with code ``invalid_json`` (400), or ``message_too_large`` (413).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

from ._errors import INVALID_JSON, MESSAGE_TOO_LARGE, RequestError

MAX_JSON_DEPTH = 64

_ESCAPE_PAIR = re.compile(rb"\\.", re.DOTALL)
_PLAIN_STRING = re.compile(rb'"[^"]*"')
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
# Opening brackets become +1, closing ones -1 (0xFF read as a signed byte).
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_BOM = b"\xef\xbb\xbf"


def json_depth(raw: bytes) -> int:
    """The deepest array/object nesting in JSON text ``raw`` (linear time, no recursion).

    Exact for valid JSON; for invalid JSON it is at least the depth ``json.loads`` reaches before it
    finds the error, so checking it first is safe either way.
    """
    # Escapes first (so an escaped quote ends nothing), then whole strings: what is left are brackets,
    # punctuation, numbers and literals. Both patterns are fixed-width or single-class: no backtracking.
    without_strings = _PLAIN_STRING.sub(b"", _ESCAPE_PAIR.sub(b"", raw))
    brackets = without_strings.translate(None, _NOT_BRACKETS)
    if len(brackets) <= 1:
        return len(brackets)
    steps = memoryview(brackets.translate(_DEPTH_STEP)).cast("b")
    return max(itertools.accumulate(steps))


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 overflows to inf: not representable in JSON either
        raise ValueError(text)
    return value


def parse_json(raw: bytes, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH, what: str = "The body") -> Any:
    """Parse caller-supplied JSON within the bounds in the module docstring.

    Raises:
        RequestError: ``message_too_large`` over ``max_bytes``, ``invalid_json`` for anything else refused.
    """
    if len(raw) > max_bytes:
        raise RequestError(MESSAGE_TOO_LARGE, f"{what} is larger than {max_bytes} bytes.", limit=max_bytes)
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(INVALID_JSON, f"{what} is not UTF-8 text.") from None
    if json_depth(raw) > max_depth:
        raise RequestError(INVALID_JSON, f"{what} nests arrays and objects deeper than {max_depth} levels.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        # json's own words and a position: no Python names in them.
        raise RequestError(
            INVALID_JSON, f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except (ValueError, RecursionError):
        # parse_constant (NaN, Infinity) or an integer longer than Python converts.
        raise RequestError(INVALID_JSON, f"{what} is not valid JSON: a number is not a finite JSON number.") from None
    if b"\\u" in raw and not _is_utf8_text(value):
        raise RequestError(
            INVALID_JSON, f"{what} contains an unpaired UTF-16 surrogate escape (\\ud800-\\udfff), which is not text."
        )
    return value


def parse_json_object(raw: bytes, *, max_bytes: int, what: str = "The body") -> dict[str, Any]:
    """``parse_json`` for bodies that must be a JSON object."""
    value = parse_json(raw, max_bytes=max_bytes, what=what)
    if not isinstance(value, dict):
        raise RequestError(INVALID_JSON, f"{what} must be a JSON object.")
    return value


def _is_utf8_text(value: Any) -> bool:
    # Only a \u escape can produce a lone surrogate (strict UTF-8 decoding never does); re-encoding
    # the parsed value in C is the cheapest complete check of every key and string.
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
