"""The local host: settings, storage, the app, the durable engine, HTTP, queues, timers and blobs, wired."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from azure.functions.meta import Datum

from ._activities import ActivityWorker
from ._app_loader import AppLoadError, LoadedApp, load_function_app
from ._azurite import AzuriteProcess, start_azurite_if_needed
from ._binding_expressions import BindingData
from ._blob_bindings import BlobBindings
from ._blob_store import host_id
from ._blob_trigger import POLLING_INTERVAL, BlobTriggerListener
from ._dispatcher import Concurrency, Dispatcher
from ._entities import EntityWorker
from ._function_errors import FunctionError, partition_functions
from ._functions import (
    ACTIVITY_TRIGGER,
    BLOB_TRIGGER,
    DURABLE_CLIENT,
    DURABLE_TRIGGERS,
    ENTITY_TRIGGER,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
    QUEUE_TRIGGER,
    IndexedFunction,
)
from ._http_activity import DurableHttpActivity
from ._http_errors import install_json_protocol_errors
from ._http_front import FunctionKeys, build_http_app, load_or_create_keys, presented_key, unauthorized
from ._invoker import FunctionLoadError, Invoker, check_worker_load
from ._logging import LogLevels, apply_log_levels
from ._management import ManagementService
from ._management_http import ManagementApi
from ._orchestrations import OrchestrationWorker, UnknownFunctionError
from ._queue_trigger import QueueListener, resolve_connection_string, send_queue_messages
from ._runtime_worker import RuntimeInvoker, load_with_runtime, runtime_available, runtime_version
from ._settings import HostSettings, LocalSettings, disabled_functions, load_host_settings, load_local_settings
from ._store import TaskHubStore
from ._timer_trigger import TimerScheduler
from ._trigger_input import TriggerInput, resolve_setting_references
from ._versioning import Versioning

_log = logging.getLogger("durableagent.devhost")
_startup_log = logging.getLogger("durableagent.devhost.startup")

RPC_PREFIX = "/durabletask"
WEBHOOK_PREFIX = "/runtime/webhooks/durabletask"
STATE_DIR = ".durableagent"
STORAGE_SETTING = "AzureWebJobsStorage"
# Seconds between blob-trigger scans; Azure scans every 10 s. A local knob (the tests use 0.5 s).
BLOB_POLLING_SETTING = "DURABLEAGENT_BLOB_POLLING_SECONDS"
# How long a received queue message stays leased (Azure: 10 minutes, renewed while the function runs).
# A local knob: crash tests shorten it so a message leased by a killed host comes back within seconds.
QUEUE_LEASE_SETTING = "DURABLEAGENT_QUEUE_LEASE_SECONDS"


RUNTIME_WORKER = "runtime"
BUILTIN_WORKER = "builtin"
AUTO_WORKER = "auto"
WORKER_CHOICES = (AUTO_WORKER, RUNTIME_WORKER, BUILTIN_WORKER)


def choose_worker(requested: str) -> str:
    """``runtime`` or ``builtin`` for a requested worker (``auto`` prefers the worker library).

    Raises:
        HostStartError: ``runtime`` was asked for where the library cannot run.
    """
    if requested == BUILTIN_WORKER:
        return BUILTIN_WORKER
    if runtime_available():
        return RUNTIME_WORKER
    if requested == RUNTIME_WORKER:
        raise HostStartError(
            "--worker runtime needs Python 3.13+ with azure-functions-runtime installed "
            "(pip install 'azure-functions-runtime>=1.3'); use --worker builtin on older Pythons."
        )
    return BUILTIN_WORKER


class HostStartError(Exception):
    """The host cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class HostOptions:
    """How to run the host.

    Attributes:
        app_dir: The function app's root (where ``function_app.py`` and ``host.json`` are).
        port: The HTTP port (``func start`` uses 7071).
        bind: The address to listen on.
        enforce_keys: Require function keys for non-anonymous routes (``func start`` does not).
        start_azurite: Start Azurite when the app uses development storage and none is running.
        worker: ``runtime`` (the Python worker library, ``azure-functions-runtime``, Python 3.13+),
            ``builtin`` (our own invoker) or ``auto`` (runtime where it is installed).
        verbose: Print everything at debug level, whatever host.json ``logging.logLevel`` says.
    """

    app_dir: Path
    port: int = 7071
    bind: str = "127.0.0.1"
    enforce_keys: bool = False
    start_azurite: bool = True
    worker: str = AUTO_WORKER
    verbose: bool = False


def storage_connection_resolves(name: str, environ: Mapping[str, str]) -> bool:
    """Whether the extension could resolve the storage connection ``name`` (``IConnectionInfoResolver``):
    a non-empty ``AzureWebJobs<name>`` or ``<name>`` setting, or an identity-based section of either
    (``AzureWebJobsStorage__accountName``, ``__queueServiceUri``, ...). Setting names ignore case."""
    settings = {key.lower(): value for key, value in environ.items()}
    for setting in (f"azurewebjobs{name.lower()}", name.lower()):
        if settings.get(setting, "").strip():
            return True
        if any(key.startswith(setting + "__") and value.strip() for key, value in settings.items()):
            return True
    return False


def _close_sdk_session() -> Awaitable[None] | None:
    """The Durable SDK's shared aiohttp session, closed on the loop that made it (otherwise Python
    reports an "Unclosed client session" when the host exits); SDKs without one return ``None``."""
    http_utils = sys.modules.get("azure.durable_functions.models.utils.http_utils")
    close = getattr(http_utils, "_close_session", None)
    if close is None or getattr(http_utils, "_client_session", None) is None:
        return None
    result: Awaitable[None] = close()
    return result


class _OutputSink:
    """Queue and blob output bindings: each goes to the storage account named by its binding."""

    def __init__(self, encoding: str, blobs: BlobBindings) -> None:
        self._encoding = encoding
        self._blobs = blobs

    async def blob(self, binding: dict[str, Any], datum: Datum, binding_data: BindingData) -> None:
        await self._blobs.write(binding, datum, binding_data)

    async def queue(self, binding: dict[str, Any], datum: Datum) -> None:
        # Resolved as the queue trigger resolves its binding: same settings, same %SETTING% rules.
        owner = f"queue output '{binding.get('name')}'"
        connection = resolve_connection_string(binding.get("connection"), function_name=owner)
        name = resolve_setting_references(str(binding["queueName"]), function_name=owner, what="queueName").lower()
        value = datum.value
        if datum.type == "json" and isinstance(value, str):
            parsed = json.loads(value)
            items = parsed if isinstance(parsed, list) else [parsed]
            messages: list[str | bytes] = [i if isinstance(i, str) else json.dumps(i) for i in items]
        elif isinstance(value, bytes | str):
            messages = [value]
        else:
            messages = [json.dumps(value)]
        await send_queue_messages(connection, name, messages, "none" if self._encoding == "none" else "base64")


class _InputProvider:
    """Blob input bindings, read when the function is invoked."""

    def __init__(self, blobs: BlobBindings) -> None:
        self._blobs = blobs

    async def blob(self, binding: dict[str, Any], binding_data: BindingData) -> Datum:
        return await self._blobs.read(binding, binding_data)


class Host:
    """One running local host for one app directory."""

    def __init__(self, options: HostOptions) -> None:
        self.options = options
        self.app_dir = options.app_dir.resolve()
        self.state_dir = self.app_dir / STATE_DIR
        self.local: LocalSettings | None = None
        self.settings: HostSettings | None = None
        self.loaded: LoadedApp | None = None
        # What the host serves: the app's functions minus those in error.
        self.functions: tuple[IndexedFunction, ...] = ()
        self.function_errors: tuple[FunctionError, ...] = ()
        # Functions an AzureWebJobs.<name>.Disabled setting turns off: indexed and loaded, never run.
        self.disabled: frozenset[str] = frozenset()
        self.keys: FunctionKeys | None = None
        self._lock_file: IO[str] | None = None
        self._azurite: AzuriteProcess | None = None
        self._store: TaskHubStore | None = None
        self._invoker: Invoker | None = None
        self._dispatcher: Dispatcher | None = None
        self._runner: web.AppRunner | None = None
        self._timers: TimerScheduler | None = None
        self._queues: list[QueueListener] = []
        self._blobs = BlobBindings()
        self._blob_listener: BlobTriggerListener | None = None
        self._by_kind: dict[str, dict[str, IndexedFunction]] = {}
        self._http_activity: DurableHttpActivity | None = None
        self._logging = contextlib.ExitStack()
        self.worker = BUILTIN_WORKER

    # Start-up -------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self.local = load_local_settings(self.app_dir)
        if self.local.notice:
            _log.warning("%s", self.local.notice)
        self.settings = load_host_settings(self.app_dir)
        levels = LogLevels.parse(self.settings.log_levels, str(self.settings.path or "host.json"))
        if levels.rules and not self.options.verbose:
            # Without rules the Functions host prints Information and up, which is what the CLI does.
            self._logging.enter_context(apply_log_levels(levels))
        durable = self.settings.durable_task
        if not durable.uses_azure_storage:
            _log.warning(
                "host.json selects the '%s' storage provider; the local host keeps the task hub in SQLite "
                "under %s whatever the provider, so that provider's connection settings are not used here.",
                durable.storage_provider,
                self.state_dir,
            )
        if self.options.start_azurite:
            storage = os.environ.get(STORAGE_SETTING, "")
            self._azurite = await asyncio.to_thread(
                start_azurite_if_needed, storage, self.app_dir, location=self.state_dir / "azurite"
            )
            if self._azurite is not None:
                _log.info("Started Azurite (pid %s), data in %s", self._azurite.pid, self._azurite.location)
        await self._load_app()
        self._require_task_hub_storage()
        self.disabled = disabled_functions(fn.name for fn in self.functions)
        for name in sorted(self.disabled):
            # What the WebJobs SDK logs for each when it creates the listeners (HostListenerFactory.CreateAsync).
            _startup_log.info("Function '%s' is disabled", name)
        # A disabled function gets no listener: no timer, queue or blob scan, and the Durable extension does
        # not know it ("doesn't exist, is disabled, or is not ..."). Its HTTP route stays (see _http_front).
        functions = tuple(fn for fn in self.functions if fn.name not in self.disabled)
        for kind in (ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER, ENTITY_TRIGGER):
            self._by_kind[kind] = {f.durable_name.lower(): f for f in functions if f.trigger_type == kind}
        self.keys = load_or_create_keys(self.app_dir)
        await self._start_durable()
        await self._start_http()
        self._timers = TimerScheduler(functions, self._invoke_trigger, self.state_dir / "timers")
        lease = _seconds_setting(QUEUE_LEASE_SETTING, 600.0, low=2.0, high=600.0)
        for fn in functions:
            if fn.trigger_type == QUEUE_TRIGGER:
                self._queues.append(QueueListener(fn, self._invoke_trigger, self.settings.queues, lease_seconds=lease))
        for listener in self._queues:
            await listener.start()
        await self._start_blob_triggers(functions)
        await self._timers.start()
        # Like the Functions host: one error line per function in error, once the host has started.
        for failed in self.function_errors:
            _log.error("%s", failed.log_line())

    async def _load_app(self) -> None:
        """Index the app and build its invoker: through the worker library, or our own invoker."""
        assert self.settings is not None
        route_prefix = self.settings.http.route_prefix
        output_sink = _OutputSink(self.settings.queues.message_encoding, self._blobs)
        input_provider = _InputProvider(self._blobs)
        self.worker = choose_worker(self.options.worker)
        if self.worker == RUNTIME_WORKER:
            # The library checks every function as it indexes: one it refuses stops the app, as in Azure.
            self.loaded, function_ids = await load_with_runtime(self.app_dir, route_prefix=route_prefix)
            self._partition()
            self._invoker = RuntimeInvoker(
                self.functions,
                function_ids,
                output_sink=output_sink,
                input_provider=input_provider,
                client_binding_json=self.client_binding_json,
                function_timeout=self.settings.function_timeout,
            )
            return
        self.loaded = load_function_app(self.app_dir, route_prefix=route_prefix)
        try:
            # The worker checks every function first, those the host will put in error included.
            for fn in self.loaded.functions:
                check_worker_load(fn)
        except FunctionLoadError as exc:
            # The worker reports a refused function as a failed indexing of the whole app.
            raise AppLoadError(f"The function app could not be indexed: FunctionLoadError: {exc}") from exc
        self._partition()
        self._invoker = Invoker(
            self.functions,
            output_sink=output_sink,
            input_provider=input_provider,
            client_binding_json=self.client_binding_json,
            function_timeout=self.settings.function_timeout,
        )

    async def _start_blob_triggers(self, functions: tuple[IndexedFunction, ...]) -> None:
        assert self.settings is not None
        if not any(fn.trigger_type == BLOB_TRIGGER for fn in functions):
            return
        polling_interval = _seconds_setting(BLOB_POLLING_SETTING, POLLING_INTERVAL, low=0.05, high=3600.0)
        self._blob_listener = BlobTriggerListener(
            functions,
            self._invoke_trigger,
            self._blobs,
            host_connection=resolve_connection_string(None, function_name="host storage"),
            host=host_id(self.app_dir, os.environ),
            options=self.settings.blobs,
            polling_interval=polling_interval,
        )
        # Blobs this host writes are examined on the next scan, as the extension's blob-written watcher does.
        self._blobs.on_written = self._blob_listener.notify_written
        await self._blob_listener.start()

    def _require_task_hub_storage(self) -> None:
        """The Azure Storage provider resolves its connection when the extension loads, which the host
        does for an app with Durable bindings: without one the host does not start
        (AzureStorageAccountProvider.GetStorageAccountDetails)."""
        assert self.settings is not None
        durable = self.settings.durable_task
        uses_durable = any(
            binding.get("type") in DURABLE_TRIGGERS or binding.get("type") == DURABLE_CLIENT
            for fn in self.functions
            for binding in fn.bindings
        )
        if not uses_durable or not durable.uses_azure_storage:
            return
        if storage_connection_resolves(durable.storage_connection_name, os.environ):
            return
        setting = f"AzureWebJobs{durable.storage_connection_name}"
        raise HostStartError(
            f"Unable to resolve the Azure Storage connection named '{durable.storage_connection_name}'. "
            f"The Durable Functions extension needs {setting} (in local.settings.json Values or the "
            'environment); "UseDevelopmentStorage=true" uses Azurite.'
        )

    def _partition(self) -> None:
        # From here on a function in error does not exist: no route, listener, timer or durable name.
        assert self.loaded is not None
        partition = partition_functions(self.loaded.functions)
        self.functions = partition.servable
        self.function_errors = partition.in_error

    def _take_lock(self) -> None:
        handle = open(self.state_dir / "host.lock", "a+")  # noqa: SIM115 - held for the host's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise HostStartError(
                f"Another durableagent host is already running for {self.app_dir} (lock {handle.name})."
            ) from exc
        self._lock_file = handle

    async def _start_durable(self) -> None:
        assert self.settings is not None
        durable = self.settings.durable_task
        hub = durable.hub_name
        self._store = TaskHubStore(self.state_dir / f"taskhub-{hub}.sqlite", on_commit=self._notify)
        clock = time.time
        self._http_activity = DurableHttpActivity()
        versioning = Versioning(
            default_version=durable.default_version,
            match_strategy=durable.version_match_strategy,
            failure_strategy=durable.version_failure_strategy,
        )
        self._dispatcher = Dispatcher(
            self._store,
            OrchestrationWorker(
                self._store,
                self._invoke_orchestrator,
                clock,
                versioning=versioning,
                http_poll_interval=durable.default_async_request_sleep,
                max_actions=durable.max_orchestration_actions,
            ),
            ActivityWorker(self._store, self._invoke_activity, clock, http=self._http_activity),
            EntityWorker(self._store, self._invoke_entity, clock, durable.max_entity_operation_batch_size),
            clock,
            Concurrency(
                orchestrations=durable.max_concurrent_orchestrator_functions,
                activities=durable.max_concurrent_activity_functions,
                entities=durable.max_concurrent_orchestrator_functions,
            ),
        )
        self._dispatcher.start()

    def _notify(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.notify()

    async def _start_http(self) -> None:
        assert self.settings is not None and self.loaded is not None and self._store is not None
        assert self._invoker is not None
        service = ManagementService(
            self._store,
            time.time,
            lambda: [f.durable_name for f in self._by_kind[ORCHESTRATION_TRIGGER].values()],
            lambda: [f.durable_name for f in self._by_kind[ENTITY_TRIGGER].values()],
            default_version=self.settings.durable_task.default_version,
        )
        api = ManagementApi(service, self._public_webhook_base, self.settings.durable_task.hub_name)
        routes = [
            *api.routes(RPC_PREFIX, authorize=self._rpc_authorized, unauthorized=unauthorized),
            *api.routes(WEBHOOK_PREFIX, authorize=self._webhook_authorized, unauthorized=unauthorized),
        ]
        if self.options.enforce_keys:
            # The SDK's client cannot send a key header and builds its URLs by appending paths to
            # rpcBaseUrl (a query string there would end up mid-path): its base carries a secret segment.
            routes += api.routes(self._rpc_secret_prefix(), authorize=_from_loopback, unauthorized=unauthorized)
        app = build_http_app(
            self.functions,
            self._invoker,
            route_prefix=self.settings.http.route_prefix,
            enforce_keys=self.options.enforce_keys,
            keys=self.keys,
            extra_routes=routes,
            disabled=self.disabled,
        )
        # auto_decompress=False: like Kestrel (which has no request decompression unless an app adds it),
        # a function gets the body as sent, Content-Encoding header included; aiohttp's own decoding
        # turned a body that is not in its encoding into a 500 or a connection left waiting.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
        await self._runner.setup()
        install_json_protocol_errors(self._runner)
        site = web.TCPSite(self._runner, self.options.bind, self.options.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise HostStartError(f"Port {self.options.port} is unavailable: {exc.strerror or exc}") from exc

    def _webhook_authorized(self, request: web.Request) -> bool:
        """The public webhook: open unless keys are enforced, then the system or the master key."""
        if not self.options.enforce_keys:
            return True
        return self.keys is not None and self.keys.allows_system(presented_key(request))

    def _rpc_authorized(self, request: web.Request) -> bool:
        """The local RPC endpoint: this machine only, and with keys enforced the webhook's keys too.

        In Azure it listens on a separate localhost-only port; here it shares the public port, so any
        local process could otherwise read and change every instance and entity."""
        return _from_loopback(request) and self._webhook_authorized(request)

    def _rpc_secret_prefix(self) -> str:
        """``/durabletask/<secret>``: the RPC routes the durableClient binding's ``rpcBaseUrl`` names when
        keys are enforced. The segment is derived from the durabletask_extension key (hex, so it is
        URL-safe whatever the keys file holds, and rotates with that key)."""
        assert self.keys is not None
        secret = hashlib.sha256(f"durableagent-rpc:{self.keys.durable_system}".encode()).hexdigest()
        return f"{RPC_PREFIX}/{secret}"

    # Durable client binding -------------------------------------------------------------------------

    def _public_webhook_base(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}{WEBHOOK_PREFIX}"

    def client_binding_json(self, origin: str | None) -> str:
        """The ``durableClient`` binding payload, as the extension builds it."""
        assert self.settings is not None
        hub = self.settings.durable_task.hub_name
        base = f"{origin or f'http://localhost:{self.options.port}'}{WEBHOOK_PREFIX}"
        code = f"&code={self.keys.durable_system}" if self.options.enforce_keys and self.keys else ""
        query = f"taskHub={hub}&connection=Storage{code}"
        instance = f"{base}/instances/INSTANCEID"
        creation = f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
        return json.dumps(
            {
                "taskHubName": hub,
                "creationUrls": {
                    "createNewInstancePostUri": f"{creation}?{query}",
                    "createAndWaitOnNewInstancePostUri": (
                        f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
                        f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{query}"
                    ),
                },
                "managementUrls": {
                    "id": "INSTANCEID",
                    "statusQueryGetUri": f"{instance}?{query}",
                    "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
                    "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
                    "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
                    "purgeHistoryDeleteUri": f"{instance}?{query}",
                    "restartPostUri": f"{instance}/restart?{query}",
                    "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
                    "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
                },
                "baseUrl": base,
                "requiredQueryStringParameters": code.lstrip("&"),
                "rpcBaseUrl": f"http://127.0.0.1:{self.options.port}{self._rpc_base_path()}/",
            }
        )

    def _rpc_base_path(self) -> str:
        return self._rpc_secret_prefix() if self.options.enforce_keys and self.keys is not None else RPC_PREFIX

    # Invocation adapters ----------------------------------------------------------------------------

    def _durable_function(self, kind: str, name: str) -> IndexedFunction:
        fn = self._by_kind.get(kind, {}).get(name.lower())
        if fn is None:
            raise UnknownFunctionError(
                f"The function '{name}' doesn't exist, is disabled, or is not a "
                f"{kind.removesuffix('Trigger')} function."
            )
        return fn

    async def _invoke_orchestrator(self, name: str, context_json: str) -> str:
        assert self._invoker is not None
        return await self._invoker.invoke_durable(self._durable_function(ORCHESTRATION_TRIGGER, name), context_json)

    async def _invoke_activity(self, name: str, input_json: str) -> str:
        assert self._invoker is not None
        return await self._invoker.invoke_activity(self._durable_function(ACTIVITY_TRIGGER, name), input_json)

    async def _invoke_entity(self, name: str, batch_json: str) -> str:
        assert self._invoker is not None
        return await self._invoker.invoke_durable(self._durable_function(ENTITY_TRIGGER, name), batch_json)

    async def _invoke_trigger(self, fn: IndexedFunction, trigger: TriggerInput) -> None:
        assert self._invoker is not None
        await self._invoker.invoke_trigger(fn, trigger)

    # Shut-down ----------------------------------------------------------------------------------------

    async def stop(self) -> None:
        if self._timers is not None:
            await self._timers.stop()
        for listener in self._queues:
            await listener.stop()
        if self._blob_listener is not None:
            await self._blob_listener.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._dispatcher is not None:
            await self._dispatcher.stop()
        if self._http_activity is not None:
            await self._http_activity.close()
        closing = _close_sdk_session()
        if closing is not None:
            try:
                await closing
            except Exception:  # a session bound to another loop: nothing more to do at exit
                _log.debug("Could not close the Durable SDK's HTTP session", exc_info=True)
        if self._invoker is not None:
            self._invoker.close()
        await self._blobs.close()
        if self._store is not None:
            self._store.close()
        if self._azurite is not None:
            await asyncio.to_thread(self._azurite.stop)
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
        self._logging.close()

    # What ``func start`` prints ------------------------------------------------------------------------

    def describe_functions(self) -> list[str]:
        """The "Functions:" listing; like ``func start`` it shows only the functions the host serves
        (the ones in error were logged at start) and nothing at all when there are none, then a line
        for each disabled function (Core Tools' ``DisplayFunctionsInfoUtilities``)."""
        assert self.loaded is not None and self.settings is not None
        worker = (
            f"azure-functions-runtime {runtime_version()} (the Python worker library, in process)"
            if self.worker == RUNTIME_WORKER
            else "the host's own invoker (--worker builtin)"
        )
        lines = ["", f"Python {sys.version.split()[0]}, functions run by {worker}"]
        enabled = [fn for fn in self.functions if fn.name not in self.disabled]
        if enabled:
            lines += ["", "Functions:", ""]
        prefix = self.settings.http.route_prefix.strip("/")
        for fn in enabled:
            if fn.trigger_type == HTTP_TRIGGER:
                methods = ",".join(m.upper() for m in (fn.trigger.get("methods") or [])) or "GET,POST,..."
                route = str(fn.trigger.get("route") or fn.name).strip("/")
                path = "/".join(p for p in (prefix, route) if p)
                lines.append(f"        {fn.name}: [{methods}] http://localhost:{self.options.port}/{path}")
            else:
                lines.append(f"        {fn.name}: {fn.trigger_type}")
            lines.append("")
        lines += [f"Function {fn.name} is disabled." for fn in self.functions if fn.name in self.disabled]
        return lines


def _from_loopback(request: web.Request) -> bool:
    # The RPC endpoint is the extension's local listener: only this machine may call it.
    remote = request.remote or ""
    return remote.startswith("127.") or remote in ("::1", "localhost")


def free_port() -> int:
    """A free TCP port on loopback (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seconds_setting(name: str, default: float, *, low: float, high: float) -> float:
    """A number of seconds from the environment variable ``name`` (``default`` when unset), within bounds."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise HostStartError(f"{name} must be a number of seconds, not {text!r}") from None
    if not low <= value <= high:
        raise HostStartError(f"{name} must be between {low:g} and {high:g} seconds, not {text}")
    return value
