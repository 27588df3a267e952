"""host.json and local.settings.json, read the way the Functions host and func start read them."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from durableagent.devhost._host import storage_connection_resolves
from durableagent.devhost._settings import (
    HostConfigError,
    HostSettings,
    disabled_functions,
    load_host_settings,
    load_local_settings,
    parse_timespan,
)


def write_json(path: Path, document: object) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# TimeSpan
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:30", timedelta(seconds=30)),
        ("00:05:00", timedelta(minutes=5)),
        ("01:30", timedelta(hours=1, minutes=30)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("3.00:00:00", timedelta(days=3)),
        ("00:00:01.5", timedelta(seconds=1, milliseconds=500)),
        ("00:00:00.1234567", timedelta(microseconds=123456)),
        ("6", timedelta(days=6)),
        ("-1", timedelta(days=-1)),
        ("-00:00:10", timedelta(seconds=-10)),
        (" 00:01:00 ", timedelta(minutes=1)),
    ],
)
def test_parse_timespan(text: str, expected: timedelta) -> None:
    assert parse_timespan(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "24:00:00", "00:60:00", "00:00:60", "1:2:3:4", "00:00:00.12345678"])
def test_parse_timespan_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timespan(text)


# ---------------------------------------------------------------------------------------------
# host.json
# ---------------------------------------------------------------------------------------------


def test_missing_host_json_gives_defaults(tmp_path: Path) -> None:
    settings = load_host_settings(tmp_path, env={})
    assert settings == HostSettings()
    assert settings.http.route_prefix == "api"
    assert settings.durable_task.hub_name == "TestHubName"
    assert settings.durable_task.max_concurrent_activity_functions == 10
    assert settings.durable_task.max_concurrent_orchestrator_functions == 10
    assert settings.durable_task.max_entity_operation_batch_size == 50
    assert settings.queues.max_dequeue_count == 5
    assert settings.queues.visibility_timeout == timedelta(0)
    assert settings.queues.batch_size == 16
    assert settings.queues.new_batch_threshold == 8
    assert settings.queues.max_polling_interval == timedelta(minutes=1)
    assert settings.queues.message_encoding == "base64"
    assert settings.function_timeout is None


def test_minimal_host_json(tmp_path: Path) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0"})
    settings = load_host_settings(tmp_path, env={})
    assert settings.path == tmp_path / "host.json"
    assert settings.version == "2.0"
    assert settings.http.route_prefix == "api"


def test_full_host_json(tmp_path: Path) -> None:
    write_json(
        tmp_path / "host.json",
        {
            "version": "2.0",
            "functionTimeout": "00:10:00",
            "extensions": {
                "http": {"routePrefix": "/v1/"},
                "durableTask": {
                    "hubName": "%HUB%Hub",
                    "maxConcurrentActivityFunctions": 3,
                    "maxConcurrentOrchestratorFunctions": "4",
                    "maxEntityOperationBatchSize": 7,
                    "storageProvider": {"maxQueuePollingInterval": "00:00:02"},
                },
                "queues": {
                    "maxDequeueCount": 2,
                    "visibilityTimeout": "00:00:05",
                    "batchSize": 4,
                    "newBatchThreshold": 1,
                    "maxPollingInterval": "00:00:02",
                    "messageEncoding": "None",
                },
            },
        },
    )
    settings = load_host_settings(tmp_path, env={"HUB": "Orders"})
    assert settings.function_timeout == timedelta(minutes=10)
    assert settings.http.route_prefix == "v1"
    durable = settings.durable_task
    assert durable.hub_name == "OrdersHub"
    assert durable.max_concurrent_activity_functions == 3
    assert durable.max_concurrent_orchestrator_functions == 4
    assert durable.max_entity_operation_batch_size == 7
    assert durable.max_queue_polling_interval == timedelta(seconds=2)
    queues = settings.queues
    assert queues.max_dequeue_count == 2
    assert queues.visibility_timeout == timedelta(seconds=5)
    assert queues.batch_size == 4
    assert queues.new_batch_threshold == 1
    assert queues.max_polling_interval == timedelta(seconds=2)
    assert queues.message_encoding == "none"


def test_empty_route_prefix_means_no_prefix(tmp_path: Path) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}})
    assert load_host_settings(tmp_path, env={}).http.route_prefix == ""


def test_blob_options_default_to_the_extensions_and_read_extensions_blobs(tmp_path: Path) -> None:
    defaults = load_host_settings(tmp_path, env={}).blobs
    # BlobsOptions: 8 invocations per processor, poison after 5 attempts.
    assert defaults.max_degree_of_parallelism == 8 * (os.cpu_count() or 1)
    assert defaults.poison_blob_threshold == 5
    write_json(
        tmp_path / "host.json",
        {"version": "2.0", "extensions": {"blobs": {"maxDegreeOfParallelism": 4, "poisonBlobThreshold": 1}}},
    )
    blobs = load_host_settings(tmp_path, env={}).blobs
    assert (blobs.max_degree_of_parallelism, blobs.poison_blob_threshold) == (4, 1)


def test_new_batch_threshold_defaults_to_half_the_batch(tmp_path: Path) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0", "extensions": {"queues": {"batchSize": 10}}})
    assert load_host_settings(tmp_path, env={}).queues.new_batch_threshold == 5


def test_keys_are_case_insensitive(tmp_path: Path) -> None:
    write_json(
        tmp_path / "host.json",
        {"Version": "2.0", "Extensions": {"HTTP": {"RoutePrefix": "x"}, "DurableTask": {"HubName": "MyHub"}}},
    )
    settings = load_host_settings(tmp_path, env={})
    assert settings.http.route_prefix == "x"
    assert settings.durable_task.hub_name == "MyHub"


def test_comments_and_trailing_commas_are_tolerated(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(
        '{\n  // the version\n  "version": "2.0", /* block */\n'
        '  "extensions": {"http": {"routePrefix": "a//b",},},\n}\n',
        encoding="utf-8",
    )
    assert load_host_settings(tmp_path, env={}).http.route_prefix == "a//b"


@pytest.mark.parametrize(("value", "expected"), [("-1", None), ("01:00:00", timedelta(hours=1))])
def test_function_timeout(tmp_path: Path, value: str, expected: timedelta | None) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0", "functionTimeout": value})
    assert load_host_settings(tmp_path, env={}).function_timeout == expected


def test_malformed_host_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text('{"version": "2.0",, }', encoding="utf-8")
    with pytest.raises(HostConfigError, match=r"host\.json: malformed JSON"):
        load_host_settings(tmp_path, env={})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": "1.0"}, "version"),
        ({"version": "2.0", "functionTimeout": 300}, "functionTimeout"),
        ({"version": "2.0", "functionTimeout": "5 minutes"}, "functionTimeout"),
        ({"version": "2.0", "extensions": {"durableTask": {"hubName": "%MISSING%"}}}, "MISSING"),
        ({"version": "2.0", "extensions": {"durableTask": {"hubName": "bad-name"}}}, "hubName"),
        (
            {"version": "2.0", "extensions": {"durableTask": {"maxConcurrentActivityFunctions": 0}}},
            "at least 1",
        ),
        ({"version": "2.0", "extensions": {"queues": {"batchSize": 64}}}, "at most 32"),
        ({"version": "2.0", "extensions": {"queues": {"messageEncoding": "utf8"}}}, "messageEncoding"),
        ({"version": "2.0", "extensions": {"queues": {"visibilityTimeout": 30}}}, "visibilityTimeout"),
        ({"version": "2.0", "extensions": {"blobs": {"poisonBlobThreshold": 0}}}, "poisonBlobThreshold"),
        ({"version": "2.0", "extensions": {"http": []}}, "extensions.http"),
        ([], "object"),
    ],
)
def test_invalid_host_json(tmp_path: Path, document: object, message: str) -> None:
    write_json(tmp_path / "host.json", document)
    with pytest.raises(HostConfigError, match=message) as info:
        load_host_settings(tmp_path, env={})
    assert "host.json" in str(info.value)


# ---------------------------------------------------------------------------------------------
# local.settings.json
# ---------------------------------------------------------------------------------------------


def test_values_are_applied_without_overriding(tmp_path: Path) -> None:
    write_json(
        tmp_path / "local.settings.json",
        {
            "IsEncrypted": False,
            "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", "ALREADY": "from-file", "FLAG": True, "N": 3},
            "Host": {"LocalHttpPort": 7072},
        },
    )
    environ = {"ALREADY": "from-env"}
    local = load_local_settings(tmp_path, environ)
    assert environ == {"ALREADY": "from-env", "FUNCTIONS_WORKER_RUNTIME": "python", "FLAG": "true", "N": "3"}
    assert local.path == tmp_path / "local.settings.json"
    assert set(local.applied) == {"FUNCTIONS_WORKER_RUNTIME", "FLAG", "N"}
    assert local.values["ALREADY"] == "from-file"
    assert local.notice is None
    assert local.local_http_port == 7072


def test_falls_back_to_the_sample_with_a_notice(tmp_path: Path) -> None:
    write_json(tmp_path / "local.settings.sample.json", {"Values": {"A": "1"}})
    environ: dict[str, str] = {}
    local = load_local_settings(tmp_path, environ)
    assert environ == {"A": "1"}
    assert local.path == tmp_path / "local.settings.sample.json"
    assert local.notice is not None and "local.settings.sample.json" in local.notice


def test_missing_settings_files_are_tolerated(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    local = load_local_settings(tmp_path, environ)
    assert environ == {}
    assert local.path is None
    assert local.applied == ()
    assert local.notice is not None


def test_host_json_sees_local_settings(tmp_path: Path) -> None:
    write_json(tmp_path / "local.settings.json", {"Values": {"HUB_NAME": "FromSettings"}})
    write_json(tmp_path / "host.json", {"version": "2.0", "extensions": {"durableTask": {"hubName": "%HUB_NAME%"}}})
    environ: dict[str, str] = {}
    load_local_settings(tmp_path, environ)
    assert load_host_settings(tmp_path, env=environ).durable_task.hub_name == "FromSettings"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"Values": {"A": "1",,}}', "malformed JSON"),
        ('{"IsEncrypted": true, "Values": {}}', "IsEncrypted"),
        ('{"Values": {"A": {"nested": 1}}}', "Values.A"),
        ('{"Values": []}', "Values must be an object"),
    ],
)
def test_invalid_local_settings(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "local.settings.json").write_text(text, encoding="utf-8")
    with pytest.raises(HostConfigError, match=message) as info:
        load_local_settings(tmp_path, {})
    assert "local.settings.json" in str(info.value)


# ---------------------------------------------------------------------------------------------
# The Durable extension's storage connection
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "resolves"),
    [
        ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, True),
        ({"AZUREWEBJOBSSTORAGE": "UseDevelopmentStorage=true"}, True),  # setting names ignore case
        ({"Storage": "DefaultEndpointsProtocol=https;AccountName=a"}, True),
        ({"AzureWebJobsStorage__accountName": "myaccount"}, True),  # identity-based connection
        ({"AzureWebJobsStorage": ""}, False),
        ({"AzureWebJobsStorage": "   "}, False),
        ({"AzureWebJobsStorage__accountName": ""}, False),
        ({}, False),
    ],
)
def test_storage_connection_resolution(environ: dict[str, str], resolves: bool) -> None:
    assert storage_connection_resolves("Storage", environ) is resolves


def test_a_named_storage_connection(tmp_path: Path) -> None:
    write_json(
        tmp_path / "host.json",
        {"version": "2.0", "extensions": {"durableTask": {"storageProvider": {"connectionName": "HubStorage"}}}},
    )
    durable = load_host_settings(tmp_path, env={}).durable_task
    assert (durable.storage_connection_name, durable.uses_azure_storage) == ("HubStorage", True)
    assert storage_connection_resolves("HubStorage", {"AzureWebJobsHubStorage": "x"})
    assert not storage_connection_resolves("HubStorage", {"AzureWebJobsStorage": "x"})


@pytest.mark.parametrize(
    ("environ", "disabled"),
    [
        ({"AzureWebJobs.agent-joker-run.Disabled": "true"}, {"agent-joker-run"}),
        ({"azurewebjobs.AGENT-JOKER-RUN.disabled": "TRUE"}, {"agent-joker-run"}),  # names and values: any case
        ({"AzureWebJobs_agent-joker-run_Disabled": "1"}, {"agent-joker-run"}),  # the form without dots
        (
            {"AzureWebJobs.agent-joker-run.Disabled": "false", "AzureWebJobs_agent-joker-run_Disabled": "1"},
            {"agent-joker-run"},
        ),
        ({"AzureWebJobs.agent-joker-run.Disabled": "yes"}, set()),
        ({"AzureWebJobs.agent-joker-run.Disabled": " true"}, set()),
        ({"AzureWebJobs.agent-joker-run.Disabled": "0"}, set()),
        ({"AzureWebJobs.agent-joker.Disabled": "true"}, {"agent-joker"}),
    ],
)
def test_disabled_functions(environ: dict[str, str], disabled: set[str]) -> None:
    names = ["agent-joker", "agent-joker-run", "agent-digest-run"]
    assert disabled_functions(names, environ) == disabled
