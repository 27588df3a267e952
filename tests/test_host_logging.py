"""host.json ``logging.logLevel`` rules and the categories the local host's lines belong to."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from durableagent.devhost._logging import RUNNING, LogLevels, apply_log_levels, function_lines_enabled, record_category
from durableagent.devhost._settings import HostConfigError, load_host_settings


def _record(name: str, message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("category", "level"),
    [
        ("Function.hello", logging.WARNING),  # "Function"
        ("Function.loud", logging.DEBUG),  # the more specific "Function.loud" wins
        ("Function.loud.User", logging.DEBUG),
        ("function.LOUDER", logging.DEBUG),  # a plain, case-blind prefix, as LoggerRuleSelector matches
        ("Host.Results", logging.CRITICAL + 100),  # "None"
        ("Host.Triggers.DurableTask", logging.ERROR),  # "Host.*.DurableTask" (one wildcard)
        ("Host.General", logging.INFO),  # "default"
    ],
)
def test_most_specific_rule_wins(category: str, level: int) -> None:
    levels = LogLevels.parse(
        {
            "default": "Information",
            "Function": "Warning",
            "Function.loud": "debug",
            "Host.Results": "None",
            "Host.*.DurableTask": "Error",
        }
    )
    assert levels.level_for(category) == level


def test_no_rules_means_information() -> None:
    assert LogLevels.parse({}).level_for("Function.x") == logging.INFO


def test_an_unknown_level_is_a_configuration_error() -> None:
    with pytest.raises(HostConfigError, match=r"logging\.logLevel\.Function must be one of"):
        LogLevels.parse({"Function": "Verbose"})


@pytest.mark.parametrize(
    ("logger", "message", "category"),
    [
        ("durableagent.devhost.functions", "Executing 'Functions.hello' (Reason='(null)', Id=1)", "Function.hello"),
        (
            "durableagent.devhost.functions",
            "Executed 'Functions.hello' (Succeeded, Id=1, Duration=3ms)",
            "Function.hello",
        ),
        (
            "durableagent.devhost.functions",
            "Exception while executing function: Functions.hello. Result: Failure",
            "Function.hello",
        ),
        ("durableagent.devhost.orchestrations", "Dropping", "Host.Triggers.DurableTask"),
        ("durableagent.devhost.queue", "poison", "Host.Triggers.Queue"),
        ("durableagent.devhost", "Started Azurite", "Host.General"),
        ("my_app", "hello from user code", "Function"),
    ],
)
def test_categories(logger: str, message: str, category: str) -> None:
    assert record_category(_record(logger, message)) == category


def test_the_filter_applies_levels_to_the_root_handlers() -> None:
    root = logging.getLogger("test_host_logging_root")
    root.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        levels = LogLevels.parse({"Function": "Warning", "Function.loud": "Debug"})
        with apply_log_levels(levels, root):
            assert root.level == logging.DEBUG  # lowered so debug lines can reach the filter
            for message in (
                "Executing 'Functions.quiet' (Reason='x', Id=1)",
                "Executing 'Functions.loud' (Reason='x', Id=2)",
            ):
                handler.handle(_record("durableagent.devhost.functions", message))
            handler.handle(_record("durableagent.devhost.functions", "Executed 'Functions.quiet' (Failed, Id=1)", 40))
        assert root.level == logging.INFO
        assert stream.getvalue().splitlines() == [
            "Executing 'Functions.loud' (Reason='x', Id=2)",
            "Executed 'Functions.quiet' (Failed, Id=1)",
        ]
    finally:
        root.removeHandler(handler)


def test_invocation_lines_are_built_only_when_their_category_prints_them() -> None:
    logger = logging.getLogger("test_host_logging_lines")
    logger.setLevel(logging.INFO)
    root = logging.getLogger("test_host_logging_lines_root")
    # Without host.json rules only the logger's own level decides.
    assert function_lines_enabled("quiet", logger)
    assert not function_lines_enabled("quiet", logger, logging.DEBUG)
    levels = LogLevels.parse({"Function": "Warning", "Function.loud": "Information"})
    with apply_log_levels(levels, root):
        assert not function_lines_enabled("quiet", logger)
        assert function_lines_enabled("quiet", logger, logging.WARNING)
        assert function_lines_enabled("loud", logger)
    assert function_lines_enabled("quiet", logger)  # the rules leave with the host


def test_a_user_line_belongs_to_the_invocation_running_on_its_thread() -> None:
    from durableagent.devhost import _invoker

    record = _record("my_app", "hello from user code")
    _invoker._INVOCATION_LOCAL.invocation_id = "inv-1"
    try:
        assert record_category(record) == "Function"  # not started: no function to name
        RUNNING.started("inv-1", "hello")
        assert record_category(record) == "Function.hello.User"
        RUNNING.finished("inv-1")
        assert record_category(record) == "Function"
    finally:
        _invoker._INVOCATION_LOCAL.invocation_id = None


def test_host_json_log_levels_and_durable_settings(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "logging": {"logLevel": {"default": "Warning", "Function.hello": "Information"}},
                "extensions": {
                    "durableTask": {
                        "storageProvider": {"type": "AZUREMANAGED", "connectionStringName": "DTS"},
                        "httpSettings": {"defaultAsyncRequestSleepTimeMilliseconds": 250},
                        "maxOrchestrationActions": 50,
                    }
                },
            }
        )
    )
    settings = load_host_settings(tmp_path, env={})
    assert settings.log_levels == {"default": "Warning", "Function.hello": "Information"}
    durable = settings.durable_task
    assert (durable.storage_provider, durable.uses_azure_storage) == ("azureManaged", False)
    assert durable.storage_connection_name == "DTS"
    assert durable.default_async_request_sleep.total_seconds() == 0.25
    assert durable.max_orchestration_actions == 50


def test_an_unknown_storage_provider_is_refused_as_the_extension_does(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"durableTask": {"storageProvider": {"type": "redis"}}}})
    )
    with pytest.raises(HostConfigError, match=r"Storage provider type \(redis\) was not found. Available storage"):
        load_host_settings(tmp_path, env={})
