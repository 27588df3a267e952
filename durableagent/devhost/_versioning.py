"""Orchestration versioning as the Durable extension configures DTFx (host.json ``defaultVersion``).

The extension (3.x, ``DurableTaskOptions``) reads ``defaultVersion``, ``versionMatchStrategy`` (default
``CurrentOrOlder``) and ``versionFailureStrategy`` (default ``Reject``) and hands them to DTFx as
``VersioningSettings``; DTFx's ``TaskOrchestrationDispatcher`` checks every orchestration work item
against them before running it (Azure/durabletask ``src/DurableTask.Core/TaskOrchestrationDispatcher.cs``,
``Settings/VersioningSettings.cs``). Pure functions only: the orchestration worker acts on the verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["VersionCheck", "Versioning", "compare_versions"]

# System.Version.TryParse: two to four non-negative 32-bit components.
_SYSTEM_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$")
_INT32_MAX = 2**31 - 1

# DTFx's failure for VersionFailureStrategy.Fail: FailureDetails("VersionMismatch", ...).
VERSION_MISMATCH_ERROR_TYPE = "VersionMismatch"
VERSION_MISMATCH_MESSAGE = "Orchestration version did not comply with Worker Versioning"


def _system_version(text: str) -> tuple[int, ...] | None:
    match = _SYSTEM_VERSION.match(text)
    if match is None:
        return None
    # An absent build or revision is -1 in System.Version, so "1.0" sorts before "1.0.0".
    parts = tuple(int(p) if p is not None else -1 for p in match.groups())
    if any(p > _INT32_MAX for p in parts):
        return None
    return parts


def compare_versions(source: str | None, other: str | None) -> int:
    """``VersioningSettings.CompareVersions``: negative, zero or positive as ``source`` is older, equal, newer.

    Empty (or blank) versions are equal to each other and older than any defined version; two
    ``System.Version`` strings compare component by component; anything else compares as text,
    ignoring case.
    """
    source_blank = source is None or not source.strip()
    other_blank = other is None or not other.strip()
    if source_blank and other_blank:
        return 0
    if source_blank:
        return -1
    if other_blank:
        return 1
    assert source is not None and other is not None
    left, right = _system_version(source), _system_version(other)
    if left is not None and right is not None:
        return (left > right) - (left < right)
    # string.Compare(..., OrdinalIgnoreCase) compares the upper-cased UTF-16 code units.
    a, b = source.upper(), other.upper()
    return (a > b) - (a < b)


@dataclass(frozen=True)
class VersionCheck:
    """Why an instance's version fails this host's versioning (for the log and the failure)."""

    instance_version: str
    worker_version: str
    match_strategy: str
    failure_strategy: str

    @property
    def fails_instance(self) -> bool:
        return self.failure_strategy == "Fail"


@dataclass(frozen=True)
class Versioning:
    """``defaultVersion`` and the two strategies, as the dispatcher applies them."""

    default_version: str | None = None
    match_strategy: str = "CurrentOrOlder"
    failure_strategy: str = "Reject"

    def check(self, instance_version: str | None) -> VersionCheck | None:
        """``None`` when an instance of ``instance_version`` may run here, else what failed."""
        worker = self.default_version or ""
        version = instance_version or ""
        if self.match_strategy == "Strict":
            # DTFx compares with !=; null and "" both mean "no version" here, so they are one value.
            failed = version != worker
        elif self.match_strategy == "CurrentOrOlder":
            failed = compare_versions(version, worker) > 0
        else:
            failed = False
        if not failed:
            return None
        return VersionCheck(version, worker, self.match_strategy, self.failure_strategy)
