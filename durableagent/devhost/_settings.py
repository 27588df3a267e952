"""Read ``host.json`` and ``local.settings.json`` the way the Functions host and ``func start`` do.

``local.settings.json`` is applied first (its ``Values`` become environment variables without
overriding what is already set), then ``host.json`` is read, because ``host.json`` may refer to app
settings as ``%NAME%``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "AZURE_STORAGE_PROVIDER",
    "BlobOptions",
    "DurableTaskOptions",
    "HostConfigError",
    "HostSettings",
    "HttpOptions",
    "LocalSettings",
    "QueueOptions",
    "disabled_functions",
    "load_host_settings",
    "load_local_settings",
    "parse_timespan",
]

logger = logging.getLogger("durableagent.devhost")

HOST_JSON = "host.json"
LOCAL_SETTINGS_JSON = "local.settings.json"
LOCAL_SETTINGS_SAMPLE_JSON = "local.settings.sample.json"


class HostConfigError(Exception):
    """``host.json`` or ``local.settings.json`` cannot be used as written."""


@dataclass(frozen=True)
class HttpOptions:
    """``extensions.http``.

    Attributes:
        route_prefix: Prefix of every HTTP-trigger route, without slashes; ``""`` means none.
    """

    route_prefix: str = "api"


# The extension's storage provider names (DurableTaskExtension.GetDurabilityProviderFactory matches
# storageProvider.type against them case-insensitively); the local host keeps SQLite for all of them.
AZURE_STORAGE_PROVIDER = "AzureStorage"
STORAGE_PROVIDERS = (AZURE_STORAGE_PROVIDER, "mssql", "Netherite", "azureManaged")
# DTFx VersioningSettings.VersionMatchStrategy / VersionFailureStrategy, by name and by number.
VERSION_MATCH_STRATEGIES = ("None", "Strict", "CurrentOrOlder")
VERSION_FAILURE_STRATEGIES = ("Reject", "Fail")


@dataclass(frozen=True)
class DurableTaskOptions:
    """``extensions.durableTask`` (defaults as the local host applies them).

    Attributes:
        default_version: ``defaultVersion``: the version of orchestrations (and sub-orchestrations)
            started without one, and the version ``version_match_strategy`` compares against.
        version_match_strategy: ``None``, ``Strict`` or ``CurrentOrOlder`` (the extension's default).
        version_failure_strategy: ``Reject`` (leave the work for another host, the default) or ``Fail``.
        storage_provider: ``storageProvider.type`` as the extension names it (``AzureStorage`` when unset).
        storage_connection_name: The Azure Storage provider's ``connectionName`` (``Storage``, that is
            ``AzureWebJobsStorage``, when unset).
        default_async_request_sleep: ``httpSettings.defaultAsyncRequestSleepTimeMilliseconds``: the wait
            between polls of a durable HTTP 202 answer without ``Retry-After``.
        max_orchestration_actions: ``maxOrchestrationActions``: actions one orchestration may schedule.
    """

    hub_name: str = "TestHubName"
    max_concurrent_activity_functions: int = 10
    max_concurrent_orchestrator_functions: int = 10
    max_entity_operation_batch_size: int = 50
    # DTFx's Azure Storage provider polls its queues at most this far apart when idle.
    max_queue_polling_interval: timedelta = timedelta(seconds=30)
    default_version: str | None = None
    version_match_strategy: str = "CurrentOrOlder"
    version_failure_strategy: str = "Reject"
    storage_provider: str = AZURE_STORAGE_PROVIDER
    storage_connection_name: str = "Storage"
    default_async_request_sleep: timedelta = timedelta(milliseconds=30000)
    max_orchestration_actions: int = 100_000

    @property
    def uses_azure_storage(self) -> bool:
        return self.storage_provider.lower() == AZURE_STORAGE_PROVIDER.lower()


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues``, with the Storage Queues extension's defaults."""

    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)
    batch_size: int = 16
    # The extension's default is batchSize / 2 (times the vCPU count in Azure; one core locally).
    new_batch_threshold: int = 8
    max_polling_interval: timedelta = timedelta(minutes=1)
    message_encoding: Literal["base64", "none"] = "base64"


def _default_blob_parallelism() -> int:
    # BlobsOptions: 8 * the processor count.
    return 8 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class BlobOptions:
    """``extensions.blobs`` (Storage Blobs extension 5.x, ``BlobsOptions``).

    Attributes:
        max_degree_of_parallelism: Blob-triggered invocations running at once, app-wide.
        poison_blob_threshold: Attempts before a blob's trigger message goes to the poison queue.
    """

    max_degree_of_parallelism: int = field(default_factory=_default_blob_parallelism)
    poison_blob_threshold: int = 5


@dataclass(frozen=True)
class HostSettings:
    """What the local host reads from ``host.json``.

    Attributes:
        path: The file read, or ``None`` when the app has no ``host.json``.
        version: The schema version (``"2.0"``), ``None`` when absent.
        function_timeout: Per-invocation limit; ``None`` means unlimited (absent or ``-1``).
        log_levels: ``logging.logLevel``: category (``default``, ``Function``, ``Host.Results``, ...)
            to level name, as written.
    """

    path: Path | None = None
    version: str | None = None
    http: HttpOptions = field(default_factory=HttpOptions)
    durable_task: DurableTaskOptions = field(default_factory=DurableTaskOptions)
    queues: QueueOptions = field(default_factory=QueueOptions)
    blobs: BlobOptions = field(default_factory=BlobOptions)
    function_timeout: timedelta | None = None
    log_levels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalSettings:
    """The outcome of applying ``local.settings.json``.

    Attributes:
        path: The file read, or ``None`` when neither it nor the sample exists.
        values: Every entry of ``Values``, as strings.
        applied: Names actually written to the environment (those not already set).
        notice: A message for the user (fallback to the sample, or no settings file), else ``None``.
        local_http_port: ``Host.LocalHttpPort`` when given.
    """

    path: Path | None
    values: Mapping[str, str]
    applied: tuple[str, ...]
    notice: str | None = None
    local_http_port: int | None = None


# ---------------------------------------------------------------------------------------------
# .NET TimeSpan
# ---------------------------------------------------------------------------------------------

# TimeSpan.Parse's invariant format: [-]d | [-][d.]hh:mm[:ss[.fffffff]]
_TIMESPAN = re.compile(
    r"^\s*(?P<sign>-)?(?:(?P<days_only>\d+)|(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})"
    r"(?::(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?)?)\s*$"
)


def parse_timespan(text: str) -> timedelta:
    """Parse a .NET ``TimeSpan`` string: ``"hh:mm:ss"``, ``"d.hh:mm:ss.fffffff"``, ``"hh:mm"`` or ``"d"``.

    Raises:
        ValueError: Not a TimeSpan, or hours/minutes/seconds out of range (as .NET rejects them).
    """
    match = _TIMESPAN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a TimeSpan (expected [d.]hh:mm:ss[.fffffff])")
    if match["days_only"] is not None:
        value = timedelta(days=int(match["days_only"]))
    else:
        hours, minutes = int(match["h"]), int(match["m"])
        seconds = int(match["s"] or 0)
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ValueError(f"{text!r} is not a TimeSpan: a component is out of range")
        fraction = match["f"] or ""
        # Seven digits are .NET ticks (100 ns); Python keeps microseconds, so drop the last digit.
        micros = int((fraction + "000000")[:6]) if fraction else 0
        value = timedelta(
            days=int(match["days"] or 0), hours=hours, minutes=minutes, seconds=seconds, microseconds=micros
        )
    return -value if match["sign"] else value


# ---------------------------------------------------------------------------------------------
# JSON as the host reads it
# ---------------------------------------------------------------------------------------------


def _strip_json_extras(text: str) -> str:
    """Drop ``//`` and ``/* */`` comments and trailing commas outside strings.

    The host parses both files with Newtonsoft.Json, which tolerates these; Python's ``json`` does not.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i += 1
                continue
            out.append(ch)
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise HostConfigError(f"{path}: cannot be read: {exc}") from exc
    try:
        data = json.loads(_strip_json_extras(text))
    except json.JSONDecodeError as exc:
        raise HostConfigError(f"{path}: malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise HostConfigError(f"{path}: expected a JSON object at the top level")
    return data


def _get(section: Mapping[str, Any], key: str) -> Any:
    """Look a key up case-insensitively, as .NET configuration binding does."""
    if key in section:
        return section[key]
    lowered = key.lower()
    for name, value in section.items():
        if name.lower() == lowered:
            return value
    return None


def _section(parent: Mapping[str, Any], key: str, where: str, path: Path) -> Mapping[str, Any]:
    value = _get(parent, key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HostConfigError(f"{path}: {where}{key} must be an object")
    return value


class _Reader:
    """Typed reads of one host.json section, each error naming the file and the JSON path."""

    def __init__(self, path: Path, where: str, section: Mapping[str, Any]) -> None:
        self._path = path
        self._where = where
        self._section = section

    def _fail(self, key: str, problem: str) -> HostConfigError:
        return HostConfigError(f"{self._path}: {self._where}{key} {problem}")

    def integer(self, key: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
        value = _get(self._section, key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"must be an integer, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f" and at most {maximum}"
            raise self._fail(key, f"must be at least {minimum}{upper}, got {value}")
        return value

    def timespan(self, key: str, default: timedelta, *, minimum: timedelta = timedelta(0)) -> timedelta:
        value = _get(self._section, key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._fail(key, f'must be a TimeSpan string such as "00:00:30", got {value!r}')
        try:
            parsed = parse_timespan(value)
        except ValueError as exc:
            raise self._fail(key, f"is invalid: {exc}") from None
        if parsed < minimum:
            raise self._fail(key, f"must be at least {minimum}, got {value!r}")
        return parsed

    def string(self, key: str) -> str | None:
        value = _get(self._section, key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(key, f"must be a string, got {value!r}")
        return value

    def choice(self, key: str, names: tuple[str, ...], default: str) -> str:
        """An enum value as .NET configuration binds it: its name in any case, or its number."""
        value = _get(self._section, key)
        if value is None:
            return default
        text = str(value).strip()
        if text.isdigit() and int(text) < len(names):
            return names[int(text)]
        for name in names:
            if name.lower() == text.lower():
                return name
        raise self._fail(key, f"must be one of {', '.join(names)}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# host.json
# ---------------------------------------------------------------------------------------------

_SETTING_REFERENCE = re.compile(r"%([^%]+)%")
# DTFx's Azure Storage provider: 3-45 characters, letters and digits, starting with a letter.
_HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")


def _resolve_references(value: str, env: Mapping[str, str], path: Path, key: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        resolved = env.get(match.group(1))
        if resolved is None:
            raise HostConfigError(f"{path}: {key} {value!r} refers to app setting '{match.group(1)}', which is not set")
        return resolved

    return _SETTING_REFERENCE.sub(substitute, value)


def _http_options(path: Path, extensions: Mapping[str, Any]) -> HttpOptions:
    reader = _Reader(path, "extensions.http.", _section(extensions, "http", "extensions.", path))
    prefix = reader.string("routePrefix")
    # The host trims slashes, so "/api/" and "api" are the same prefix.
    return HttpOptions(route_prefix="api" if prefix is None else prefix.strip().strip("/"))


def _durable_options(path: Path, extensions: Mapping[str, Any], env: Mapping[str, str]) -> DurableTaskOptions:
    section = _section(extensions, "durableTask", "extensions.", path)
    reader = _Reader(path, "extensions.durableTask.", section)
    provider = _Reader(
        path,
        "extensions.durableTask.storageProvider.",
        _section(section, "storageProvider", "extensions.durableTask.", path),
    )
    defaults = DurableTaskOptions()
    hub_name = reader.string("hubName")
    if hub_name is None:
        hub_name = defaults.hub_name
    else:
        hub_name = _resolve_references(hub_name, env, path, "extensions.durableTask.hubName")
        if not _HUB_NAME.match(hub_name):
            raise HostConfigError(
                f"{path}: extensions.durableTask.hubName {hub_name!r} is invalid: use 3 to 45 letters "
                "and digits, starting with a letter"
            )
    default_version = reader.string("defaultVersion")
    if default_version is not None:
        default_version = _resolve_references(default_version, env, path, "extensions.durableTask.defaultVersion")
    provider_type = provider.string("type")
    storage_provider = defaults.storage_provider
    if provider_type is not None and provider_type.strip():
        matches = [name for name in STORAGE_PROVIDERS if name.lower() == provider_type.strip().lower()]
        if not matches:
            # DurableTaskExtension.GetDurabilityProviderFactory's refusal, word for word.
            raise HostConfigError(
                f"{path}: extensions.durableTask.storageProvider.type: Storage provider type ({provider_type}) "
                f"was not found. Available storage providers: {', '.join(STORAGE_PROVIDERS)}."
            )
        storage_provider = matches[0]
    # AzureStorageOptions.ConnectionName, with its older spelling connectionStringName.
    connection_name = provider.string("connectionName") or provider.string("connectionStringName")
    http_settings = _Reader(
        path, "extensions.durableTask.httpSettings.", _section(section, "httpSettings", "extensions.durableTask.", path)
    )
    return DurableTaskOptions(
        hub_name=hub_name,
        default_version=default_version,
        version_match_strategy=reader.choice(
            "versionMatchStrategy", VERSION_MATCH_STRATEGIES, defaults.version_match_strategy
        ),
        version_failure_strategy=reader.choice(
            "versionFailureStrategy", VERSION_FAILURE_STRATEGIES, defaults.version_failure_strategy
        ),
        storage_provider=storage_provider,
        storage_connection_name=connection_name or defaults.storage_connection_name,
        default_async_request_sleep=timedelta(
            milliseconds=http_settings.integer("defaultAsyncRequestSleepTimeMilliseconds", 30000, minimum=0)
        ),
        max_orchestration_actions=reader.integer("maxOrchestrationActions", defaults.max_orchestration_actions),
        max_concurrent_activity_functions=reader.integer(
            "maxConcurrentActivityFunctions", defaults.max_concurrent_activity_functions
        ),
        max_concurrent_orchestrator_functions=reader.integer(
            "maxConcurrentOrchestratorFunctions", defaults.max_concurrent_orchestrator_functions
        ),
        max_entity_operation_batch_size=reader.integer(
            "maxEntityOperationBatchSize", defaults.max_entity_operation_batch_size
        ),
        max_queue_polling_interval=provider.timespan(
            "maxQueuePollingInterval", defaults.max_queue_polling_interval, minimum=timedelta(milliseconds=1)
        ),
    )


def _queue_options(path: Path, extensions: Mapping[str, Any]) -> QueueOptions:
    reader = _Reader(path, "extensions.queues.", _section(extensions, "queues", "extensions.", path))
    batch_size = reader.integer("batchSize", QueueOptions.batch_size, maximum=32)
    encoding = reader.string("messageEncoding")
    if encoding is None:
        message_encoding: Literal["base64", "none"] = "base64"
    elif encoding.lower() in ("base64", "none"):
        message_encoding = "base64" if encoding.lower() == "base64" else "none"
    else:
        raise HostConfigError(f'{path}: extensions.queues.messageEncoding must be "base64" or "none", got {encoding!r}')
    return QueueOptions(
        max_dequeue_count=reader.integer("maxDequeueCount", QueueOptions.max_dequeue_count),
        visibility_timeout=reader.timespan("visibilityTimeout", QueueOptions.visibility_timeout),
        batch_size=batch_size,
        new_batch_threshold=reader.integer("newBatchThreshold", batch_size // 2, minimum=0),
        max_polling_interval=reader.timespan(
            "maxPollingInterval", QueueOptions.max_polling_interval, minimum=timedelta(milliseconds=100)
        ),
        message_encoding=message_encoding,
    )


def _blob_options(path: Path, extensions: Mapping[str, Any]) -> BlobOptions:
    reader = _Reader(path, "extensions.blobs.", _section(extensions, "blobs", "extensions.", path))
    return BlobOptions(
        max_degree_of_parallelism=reader.integer("maxDegreeOfParallelism", _default_blob_parallelism()),
        poison_blob_threshold=reader.integer("poisonBlobThreshold", BlobOptions.poison_blob_threshold),
    )


def _log_levels(path: Path, root: Mapping[str, Any]) -> dict[str, str]:
    logging_section = _section(root, "logging", "", path)
    levels = _section(logging_section, "logLevel", "logging.", path)
    found: dict[str, str] = {}
    for category, level in levels.items():
        if not isinstance(level, str):
            raise HostConfigError(f"{path}: logging.logLevel.{category} must be a level name, got {level!r}")
        found[str(category)] = level
    return found


def _function_timeout(path: Path, root: Mapping[str, Any]) -> timedelta | None:
    value = _get(root, "functionTimeout")
    if value is None:
        return None
    if not isinstance(value, str):
        raise HostConfigError(f'{path}: functionTimeout must be a TimeSpan string such as "00:05:00", got {value!r}')
    try:
        timeout = parse_timespan(value)
    except ValueError as exc:
        raise HostConfigError(f"{path}: functionTimeout is invalid: {exc}") from None
    # "-1" (minus one day) is the documented spelling of "no limit".
    if timeout < timedelta(0):
        return None
    if timeout == timedelta(0):
        raise HostConfigError(f"{path}: functionTimeout must be positive or -1, got {value!r}")
    return timeout


def load_host_settings(app_dir: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> HostSettings:
    """Read ``<app_dir>/host.json``; a missing file gives the defaults.

    Args:
        app_dir: The function app's root directory.
        env: App settings for ``%NAME%`` references; defaults to ``os.environ``, where
            :func:`load_local_settings` puts ``local.settings.json``.

    Raises:
        HostConfigError: Malformed JSON, a wrong type or an out-of-range value; the message names the file.
    """
    path = Path(app_dir) / HOST_JSON
    if not path.is_file():
        logger.warning("No %s in %s: using the host defaults", HOST_JSON, Path(app_dir))
        return HostSettings()
    root = _read_json_object(path)
    version = _get(root, "version")
    if version is not None:
        version = str(version)
        if version.split(".")[0] != "2":
            raise HostConfigError(f'{path}: version {version!r} is not supported; use "2.0"')
    extensions = _section(root, "extensions", "", path)
    environment = os.environ if env is None else env
    return HostSettings(
        path=path,
        version=version,
        http=_http_options(path, extensions),
        durable_task=_durable_options(path, extensions, environment),
        queues=_queue_options(path, extensions),
        blobs=_blob_options(path, extensions),
        function_timeout=_function_timeout(path, root),
        log_levels=_log_levels(path, root),
    )


# ---------------------------------------------------------------------------------------------
# local.settings.json
# ---------------------------------------------------------------------------------------------


def _setting_text(path: Path, name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        # Environment variables are strings; JSON spelling keeps true/false lower-case as users wrote them.
        return json.dumps(value)
    raise HostConfigError(f"{path}: Values.{name} must be a string, got {type(value).__name__}")


def load_local_settings(
    app_dir: str | os.PathLike[str], environ: MutableMapping[str, str] | None = None
) -> LocalSettings:
    """Apply ``Values`` of ``<app_dir>/local.settings.json`` to the environment, like ``func start``.

    Variables already set win over the file. Without ``local.settings.json`` the sample file
    (``local.settings.sample.json``) is used instead; without either, nothing is applied. Either way
    ``notice`` says so, for the caller to show (this function does not log it).

    Args:
        app_dir: The function app's root directory.
        environ: Where to apply the values; defaults to ``os.environ``.

    Raises:
        HostConfigError: Malformed JSON, ``IsEncrypted: true`` or a non-scalar value; the message
            names the file.
    """
    target = os.environ if environ is None else environ
    directory = Path(app_dir)
    path = directory / LOCAL_SETTINGS_JSON
    notice: str | None = None
    if not path.is_file():
        sample = directory / LOCAL_SETTINGS_SAMPLE_JSON
        if sample.is_file():
            notice = f"{LOCAL_SETTINGS_JSON} not found in {directory}; using {LOCAL_SETTINGS_SAMPLE_JSON}"
            path = sample
        else:
            notice = f"{LOCAL_SETTINGS_JSON} not found in {directory}; no app settings applied"
            return LocalSettings(path=None, values={}, applied=(), notice=notice)
    root = _read_json_object(path)
    if _get(root, "IsEncrypted") is True:
        raise HostConfigError(f"{path}: IsEncrypted is true; decrypt the file (func settings decrypt) first")
    values_section = _get(root, "Values")
    if values_section is None:
        values_section = {}
    if not isinstance(values_section, dict):
        raise HostConfigError(f"{path}: Values must be an object")
    values = {name: _setting_text(path, name, value) for name, value in values_section.items()}
    applied: list[str] = []
    for name, value in values.items():
        if name not in target:
            target[name] = value
            applied.append(name)
    host_section = _get(root, "Host")
    port: int | None = None
    if isinstance(host_section, dict):
        raw_port = _get(host_section, "LocalHttpPort")
        if raw_port is not None:
            try:
                port = int(raw_port)
            except (TypeError, ValueError):
                raise HostConfigError(f"{path}: Host.LocalHttpPort must be an integer, got {raw_port!r}") from None
    return LocalSettings(path=path, values=values, applied=tuple(applied), notice=notice, local_http_port=port)


def disabled_functions(names: Iterable[str], environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The functions an app setting ``AzureWebJobs.<name>.Disabled`` turns off, as the Functions host reads it.

    The WebJobs SDK decides this once, when it indexes the functions (``HostListenerFactory.IsDisabled`` in
    azure-webjobs-sdk ``src/Microsoft.Azure.WebJobs.Host/Listeners/HostListenerFactory.cs``): the setting
    ``AzureWebJobs.<name>.Disabled``, or ``AzureWebJobs_<name>_Disabled`` for platforms whose environment
    variables cannot hold dots, counts when its value is ``1`` or ``true`` in any case
    (``IConfigurationExtensions.IsSettingEnabled``). Setting names are case-insensitive, as every
    ``IConfiguration`` key is; any other value (``false``, ``0``, ``yes``) leaves the function enabled.

    Args:
        names: The app's function names.
        environ: The app settings (``local.settings.json`` Values are applied to it); ``os.environ`` by default.
    """
    settings = {key.lower(): value for key, value in (os.environ if environ is None else environ).items()}

    def enabled(setting: str) -> bool:
        return settings.get(setting.lower(), "").lower() in ("1", "true")

    return frozenset(
        name for name in names if enabled(f"AzureWebJobs.{name}.Disabled") or enabled(f"AzureWebJobs_{name}_Disabled")
    )
