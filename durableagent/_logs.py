"""The library's loggers, and what they may carry.

The rule for every ``durableagent.*`` log line:

- It says what an operator needs to find a fault: the stable error code, the HTTP status, ids
  (agent, session, correlation, run, request, queue message), and for an exception its *type* and
  where it was raised (``file:line in function``, see ``describe_exception``).
- It never carries text that a model client, a tool, a callback or a workflow executor produced:
  no exception messages, no tracebacks, no model requests, instructions, messages or keys. An
  ``openai.APIStatusError`` message can echo the request (the instructions included), and any
  exception raised below ``agent.run`` may quote the conversation, so none is logged verbatim.
- Values a caller chose (ids, a role, an error message that quotes them) are escaped: ``SafeLogFilter``
  rewrites the formatted message so CR, LF, every other C0/C1 control character and U+2028/U+2029
  appear as ``\\n``, ``\\x1b``, ``\\u2028``..., and a value cannot start a forged log line.

Why a filter on each logger rather than escaping at every call site: one place cannot be forgotten by
the next call site. Logger filters do not apply to records that propagate up from child loggers, so
``get_logger`` attaches the filter to every logger the library creates. As a backstop for the second
point, the filter also replaces a record's ``exc_info`` (``_log.exception``) by the exception's type
and location, so a traceback with its message never reaches a handler from a library logger.
"""

from __future__ import annotations

import logging
import os
import re
import traceback

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators (some log viewers break lines there).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with control characters and U+2028/U+2029 written as escapes (one line, same words)."""
    return _CONTROL.sub(_escape_char, text)


def describe_exception(exc: BaseException) -> str:
    """``Type at file.py:12 in function``: the exception's type and where it was raised, never its message."""
    name = type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    if not frames:
        return name
    last = frames[-1]
    return f"{name} at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"


class SafeLogFilter(logging.Filter):
    """Escapes control characters in the formatted message and drops exception text (see module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed format: log what there is rather than lose the record
            message = f"{record.msg!s} {record.args!r}"
        exc_info = record.exc_info
        if exc_info and exc_info[1] is not None:
            message = f"{message} [{describe_exception(exc_info[1])}]"
        record.msg = escape_controls(message)
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with ``SafeLogFilter`` attached (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, SafeLogFilter) for f in logger.filters):
        logger.addFilter(SafeLogFilter())
    return logger
