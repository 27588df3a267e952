"""Orchestration versioning: host.json defaultVersion, versionMatchStrategy and versionFailureStrategy.

The rules are DTFx's (``VersioningSettings.CompareVersions``, ``TaskOrchestrationDispatcher``) as the
Durable extension configures them; the end-to-end run of the SDK's sample is ``test_e2e_versioning.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import pytest
from hosttools.engine import Engine

from durableagent.devhost._history import EventType, RuntimeStatus
from durableagent.devhost._settings import HostConfigError, load_host_settings
from durableagent.devhost._versioning import Versioning, compare_versions

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def reports_version(context: df.DurableOrchestrationContext) -> Any:
    child = yield context.call_sub_orchestrator("child_version")
    pinned = yield context.call_sub_orchestrator("child_version", version="0.5")
    return [context.version, child, pinned]


@app.orchestration_trigger(context_name="context")
def child_version(context: df.DurableOrchestrationContext) -> Any:
    return context.version
    yield  # a generator, as orchestrators are


def run(coroutine: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(coroutine(), 20))


# Comparison -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "other", "expected"),
    [
        ("", "", 0),
        (None, "", 0),
        ("  ", None, 0),
        ("", "1.0", -1),
        ("1.0", None, 1),
        ("1.0", "1.0", 0),
        ("1.0", "2.0", -1),
        ("1.10", "1.9", 1),  # numerically, not as text
        ("1.0", "1.0.0", -1),  # System.Version: an absent build is -1
        ("2.0.0.1", "2.0.0", 1),
        ("1", "2", -1),  # one component is not a System.Version: compared as text
        ("10", "9", -1),
        ("v1.0-Release", "V1.0-release", 0),  # ordinal, ignoring case
        ("2025-01-01", "2025-02-01", -1),
    ],
)
def test_compare_versions(source: str | None, other: str | None, expected: int) -> None:
    assert compare_versions(source, other) == expected


@pytest.mark.parametrize(
    ("strategy", "instance", "accepted"),
    [
        ("None", "9.0", True),
        ("Strict", "1.0", True),
        ("Strict", "0.9", False),
        ("Strict", "", False),
        ("CurrentOrOlder", "1.0", True),
        ("CurrentOrOlder", "0.9", True),
        ("CurrentOrOlder", "", True),
        ("CurrentOrOlder", "1.1", False),
    ],
)
def test_match_strategies(strategy: str, instance: str, accepted: bool) -> None:
    check = Versioning("1.0", strategy, "Reject").check(instance)
    assert (check is None) == accepted
    if check is not None:
        assert (check.instance_version, check.worker_version) == (instance, "1.0")


def test_without_a_default_version_a_versioned_instance_is_newer() -> None:
    # The extension's defaults (CurrentOrOlder) with no defaultVersion: any defined version is newer.
    assert Versioning(None).check("1.0") is not None
    assert Versioning(None).check(None) is None


# host.json ------------------------------------------------------------------------------------------


def test_host_json_versioning(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "extensions": {
                    "durableTask": {
                        "defaultVersion": "%APP_VERSION%",
                        "versionMatchStrategy": "strict",
                        "versionFailureStrategy": "1",
                    }
                },
            }
        )
    )
    durable = load_host_settings(tmp_path, env={"APP_VERSION": "2.1"}).durable_task
    assert (durable.default_version, durable.version_match_strategy, durable.version_failure_strategy) == (
        "2.1",
        "Strict",
        "Fail",
    )


def test_host_json_versioning_defaults(tmp_path: Path) -> None:
    durable = load_host_settings(tmp_path, env={}).durable_task
    assert (durable.default_version, durable.version_match_strategy, durable.version_failure_strategy) == (
        None,
        "CurrentOrOlder",
        "Reject",
    )


def test_unknown_strategy_is_refused(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"durableTask": {"versionMatchStrategy": "Newest"}}})
    )
    with pytest.raises(HostConfigError, match="versionMatchStrategy must be one of None, Strict, CurrentOrOlder"):
        load_host_settings(tmp_path, env={})


# Through the engine ---------------------------------------------------------------------------------


def test_default_version_applies_to_starts_and_sub_orchestrations() -> None:
    async def body() -> None:
        async with Engine(app, versioning=Versioning("1.0")) as engine:
            iid = engine.start("reports_version")
            record = await engine.wait(iid)
            assert record.status == RuntimeStatus.Completed, record.output
            assert record.version == "1.0"
            # The child without a version takes defaultVersion; the pinned one keeps its own.
            assert engine.output(iid) == ["1.0", "1.0", "0.5"]
            created = [e for e in engine.history(iid) if e.type == EventType.SUB_ORCHESTRATION_CREATED]
            assert [e.get("Version") for e in created] == ["1.0", "0.5"]

    run(body)


def test_explicit_version_wins_over_the_default() -> None:
    async def body() -> None:
        async with Engine(app, versioning=Versioning("1.0")) as engine:
            iid = engine.management.start("reports_version", None, None, "0.9")
            await engine.wait(iid)
            assert engine.output(iid) == ["0.9", "1.0", "0.5"]

    run(body)


def test_reject_leaves_a_newer_instance_pending_and_retries_with_back_off() -> None:
    async def body() -> None:
        async with Engine(app, versioning=Versioning("1.0")) as engine:
            iid = engine.management.start("reports_version", None, None, "2.0")

            def message() -> tuple[int, float]:
                query = "SELECT dequeue_count, visible_at FROM messages WHERE target = ?"
                row = engine.store._db.execute(query, (iid,)).fetchone()
                return int(row[0]), float(row[1])

            await engine.wait_until(lambda: message()[0] == 1, what="the start message to be abandoned once")
            # DTFx's Azure Storage back-off after the first abandon: 2^1 seconds.
            assert 1.5 < message()[1] - engine.clock() <= 2.0
            assert engine.status(iid).status == RuntimeStatus.Pending
            assert engine.history(iid) == []
            assert not [kind for kind, name, _ in engine.invocations if name == "reports_version"]

    run(body)


def test_fail_strategy_fails_the_instance_as_dtfx_does() -> None:
    async def body() -> None:
        async with Engine(app, versioning=Versioning("1.0", "Strict", "Fail")) as engine:
            iid = engine.management.start("reports_version", None, None, "0.9")
            record = await engine.wait(iid)
            assert record.status == RuntimeStatus.Failed
            assert engine.output(iid) == "VersionMismatch: Orchestration version did not comply with Worker Versioning"
            completed = next(e for e in engine.history(iid) if e.type == EventType.EXECUTION_COMPLETED)
            assert completed.get("Result") is None
            assert completed.get("FailureDetails")["ErrorType"] == "VersionMismatch"
            assert not engine.invocations

    run(body)


def test_restart_takes_the_default_version_not_the_original() -> None:
    async def body() -> None:
        async with Engine(app, versioning=Versioning("1.0")) as engine:
            iid = engine.management.start("reports_version", None, None, "0.9")
            await engine.wait(iid)
            copy = engine.management.restart(iid, new_instance_id=True)
            await engine.wait(copy)
            assert engine.output(copy)[0] == "1.0"

    run(body)
