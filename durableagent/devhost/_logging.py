"""host.json ``logging.logLevel`` applied to what the local host prints, by Functions host categories.

The Functions host logs through Microsoft.Extensions.Logging: every line has a category and the
``logLevel`` section maps category prefixes to minimum levels; the longest matching prefix wins
(case-insensitive, one ``*`` wildcard allowed), and ``default`` covers the rest (``LoggerRuleSelector``
in dotnet/runtime; the Functions docs' "Configure categories and log levels"). The categories the host
uses, and which of our loggers stand for them:

* ``Function.<name>`` — ``Executing 'Functions.<name>' ...`` / ``Executed ...`` lines;
* ``Function.<name>.User`` — what the function itself logs;
* ``Host.Triggers.DurableTask`` — the Durable extension (``DurableTaskExtension.LoggerCategoryName``);
* ``Host.Triggers.Queue`` / ``Host.Triggers.Timer`` — the queue and timer listeners;
* ``Host.Startup`` — start-up notes such as ``Function 'NAME' is disabled``;
* ``Host.General`` — the rest of the host.

What ``func start`` itself prints (the functions listing, "Host started") is not a log and stays.

On the console one record is one line: :class:`ConsoleFormatter` escapes line breaks and other control
characters in the message (queue messages, entity ids and function errors carry caller text into log
messages, and a newline there would forge a host line); a traceback still follows on its own lines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ._settings import HostConfigError

__all__ = [
    "RUNNING",
    "CategoryFilter",
    "ConsoleFormatter",
    "LogLevels",
    "apply_log_levels",
    "escape_control",
    "function_lines_enabled",
    "record_category",
]

# Microsoft.Extensions.Logging.LogLevel names, on Python's scale ("None" silences the category).
_LEVELS = {
    "trace": 5,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 100,
}
_FUNCTIONS_LOGGER = "durableagent.devhost.functions"
_HOST_CATEGORIES = (
    ("durableagent.devhost.orchestrations", "Host.Triggers.DurableTask"),
    ("durableagent.devhost.activities", "Host.Triggers.DurableTask"),
    ("durableagent.devhost.entities", "Host.Triggers.DurableTask"),
    ("durableagent.devhost.dispatcher", "Host.Triggers.DurableTask"),
    ("durableagent.devhost.queue", "Host.Triggers.Queue"),
    ("durableagent.devhost.timer", "Host.Triggers.Timer"),
    ("durableagent.devhost.startup", "Host.Startup"),
    ("durableagent.devhost", "Host.General"),
    ("aiohttp", "Host.General"),
    ("asyncio", "Host.General"),
)
_EXECUTING = re.compile(r"^Executing 'Functions\.(?P<name>[^']+)' \(Reason='.*', Id=(?P<id>[^)]+)\)$", re.S)
_EXECUTED = re.compile(r"^Executed 'Functions\.(?P<name>[^']+)' \(\w+, Id=(?P<id>[^,)]+)")
_EXCEPTION = re.compile(r"^Exception while executing function: Functions\.(?P<name>[^.\s]+)\.")


def _escape_table() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})
    return table


# C0, DEL, C1 (NEL included) and the Unicode line and paragraph separators: what can end or rewrite a line.
_ESCAPES = _escape_table()


def escape_control(text: str) -> str:
    """``text`` with control characters and line separators escaped (a newline becomes ``\\n``)."""
    return text.translate(_ESCAPES)


class ConsoleFormatter(logging.Formatter):
    """The console's formatter: the formatted message part is always one line (control characters
    escaped); exception and stack text, appended by ``logging.Formatter.format``, keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_control(super().formatMessage(record))


@dataclass(frozen=True)
class LogLevels:
    """The ``logLevel`` rules: (category prefix, wildcard suffix, level), ``default`` as the empty prefix."""

    rules: tuple[tuple[str, str, int], ...] = ()
    # Categories already resolved: a record's category is looked up on every line.
    _resolved: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, levels: Mapping[str, str], where: str = "host.json") -> LogLevels:
        """Raises: HostConfigError: a level that is not a ``LogLevel`` name."""
        rules: list[tuple[str, str, int]] = []
        for category, level in levels.items():
            value = _LEVELS.get(level.strip().lower())
            if value is None:
                names = ", ".join(n.capitalize() for n in _LEVELS)
                raise HostConfigError(f"{where}: logging.logLevel.{category} must be one of {names}, got {level!r}")
            key = "" if category.lower() == "default" else category.lower()
            prefix, _, suffix = key.partition("*")
            rules.append((prefix, suffix, value))
        return cls(tuple(rules))

    def level_for(self, category: str) -> int:
        """The minimum level of ``category``: the most specific matching rule's, Information if none."""
        known = self._resolved.get(category)
        if known is None:
            known = self._resolved[category] = self._match(category)
        return known

    def _match(self, category: str) -> int:
        lowered = category.lower()
        best: tuple[int, int] | None = None
        for prefix, suffix, level in self.rules:
            if lowered.startswith(prefix) and lowered.endswith(suffix) and len(lowered) >= len(prefix) + len(suffix):
                specificity = len(prefix) + len(suffix)
                if best is None or specificity >= best[0]:
                    best = (specificity, level)
        return logging.INFO if best is None else best[1]

    @property
    def lowest(self) -> int:
        return min([logging.INFO, *(level for _, _, level in self.rules)])


class _Invocations:
    """Function names of running invocations by id, told by the invoker as each starts and ends.

    Told directly rather than learnt from the ``Executing`` lines, so a user log line finds its
    function even when ``logLevel`` hides those lines (and they are then never built).
    """

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def started(self, invocation_id: str, name: str) -> None:
        self._names[invocation_id] = name

    def finished(self, invocation_id: str) -> None:
        self._names.pop(invocation_id, None)

    def current(self) -> str | None:
        invocation_id = _current_invocation_id()
        return None if invocation_id is None else self._names.get(invocation_id)


RUNNING = _Invocations()
"""The invocations running in this process (one worker per host here)."""


def _current_invocation_id() -> str | None:
    """The invocation running on this thread: the worker library's context variable, or our invoker's."""
    import sys

    executor: Any = sys.modules.get("azure_functions_runtime.utils.executor")
    if executor is not None:
        value = executor.invocation_id_cv.get()
        if value:
            return str(value)
    invoker: Any = sys.modules.get("durableagent.devhost._invoker")
    local = getattr(invoker, "_INVOCATION_LOCAL", None)
    value = getattr(local, "invocation_id", None)
    return str(value) if value else None


def record_category(record: logging.LogRecord, invocations: _Invocations | None = None) -> str:
    """The Functions host category a record of ours (or of the app) belongs to."""
    if record.name == _FUNCTIONS_LOGGER:
        message = record.getMessage()
        for pattern in (_EXECUTING, _EXECUTED, _EXCEPTION):
            match = pattern.match(message)
            if match is not None:
                return f"Function.{match['name']}"
        return "Function"
    for prefix, category in _HOST_CATEGORIES:
        if record.name == prefix or record.name.startswith(prefix + "."):
            return category
    name = (invocations or RUNNING).current()
    return f"Function.{name}.User" if name else "Function"


class CategoryFilter(logging.Filter):
    """Lets a record through when its level reaches its category's ``logLevel``."""

    def __init__(self, levels: LogLevels) -> None:
        super().__init__()
        self.levels = levels

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.levels.level_for(record_category(record))


_INSTALLED: list[CategoryFilter] = []


def function_lines_enabled(name: str, logger: logging.Logger, level: int = logging.INFO) -> bool:
    """Whether ``Function.<name>`` lines at ``level`` would be printed, so hidden ones are not built.

    A host prints an invocation's ``Executing``/``Executed`` lines on every call; building a record
    only for the filter to drop it is most of their cost when ``logLevel`` hides them.
    """
    if not logger.isEnabledFor(level):
        return False
    category = f"Function.{name}"
    return not _INSTALLED or any(level >= f.levels.level_for(category) for f in _INSTALLED)


@contextmanager
def apply_log_levels(levels: LogLevels, logger: logging.Logger | None = None) -> Iterator[CategoryFilter]:
    """Filter every handler of ``logger`` (the root logger) by ``levels`` until the context ends.

    The logger's own level is lowered when a rule asks for more detail than it lets through.
    """
    target = logger or logging.getLogger()
    installed = CategoryFilter(levels)
    handlers = list(target.handlers)
    previous_level = target.level
    for handler in handlers:
        handler.addFilter(installed)
    _INSTALLED.append(installed)
    if levels.lowest < target.getEffectiveLevel():
        target.setLevel(levels.lowest)
    try:
        yield installed
    finally:
        _INSTALLED.remove(installed)
        for handler in handlers:
            handler.removeFilter(installed)
        target.setLevel(previous_level)
