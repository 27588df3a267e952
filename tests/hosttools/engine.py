"""An in-process Durable engine for tests: real SQLite task hub, real dispatcher and workers, no HTTP.

``Engine(app)`` indexes a ``DFApp`` (or any ``azure.functions.FunctionRegister``) and invokes its user
functions directly, the way the Python worker does after the Durable extension handed it a payload:

* orchestrator and entity functions (the SDK's ``Orchestrator.create``/``Entity.create`` handles) get the
  context JSON decoded by the same ``azure.functions`` converter the worker uses and return a JSON string;
* activities get their input decoded by ``ActivityTriggerConverter.decode`` (``df_loads``, falling back to
  the raw string), and their return value encoded by ``ActivityTriggerConverter.encode`` (``df_dumps``).

Sync functions run in a worker thread, coroutine functions on the loop, as in the worker. The client-side
calls (``start``, ``raise_event``, ``signal_entity``) encode their payloads as the SDK's
``DurableOrchestrationClient`` does and as the management HTTP API re-serializes them (protocol notes §4).

Also here: :func:`history_from_context_builder`, which turns an SDK test ``ContextBuilder`` into our
``HistoryEvent`` list, and :func:`sdk_fixture`, which imports the SDK wheel's own test fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.utils.df_serialization import df_dumps, df_loads
from azure.functions import meta
from azure.functions.durable_functions import (
    ActivityTriggerConverter,
    EnitityTriggerConverter,
    OrchestrationTriggerConverter,
)

from durableagent.devhost._activities import ActivityWorker
from durableagent.devhost._dispatcher import Concurrency, Dispatcher
from durableagent.devhost._entities import EntityWorker
from durableagent.devhost._history import EventType, HistoryEvent, RuntimeStatus
from durableagent.devhost._management import ManagementService
from durableagent.devhost._orchestrations import OrchestrationWorker, UnknownFunctionError
from durableagent.devhost._store import InstanceRecord, TaskHubStore
from durableagent.devhost._versioning import Versioning

__all__ = [
    "Engine",
    "EngineTimeout",
    "history_from_context_builder",
    "index_durable_functions",
    "last_orchestrator_started",
    "sdk_fixture",
]

ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"


class EngineTimeout(AssertionError):
    """An instance did not reach the awaited state in time (carries its status and history)."""


# Indexing ---------------------------------------------------------------------------------------------


class _Indexed:
    """The Durable functions of one app, by kind and lower-cased Durable name."""

    def __init__(self) -> None:
        # kind -> lower name -> (durable name, trigger binding name, user callable)
        self.functions: dict[str, dict[str, tuple[str, str, Callable[..., Any]]]] = {
            ORCHESTRATION_TRIGGER: {},
            ACTIVITY_TRIGGER: {},
            ENTITY_TRIGGER: {},
        }

    def names(self, kind: str) -> list[str]:
        return [entry[0] for entry in self.functions[kind].values()]

    def get(self, kind: str, name: str) -> tuple[str, str, Callable[..., Any]]:
        entry = self.functions[kind].get(name.lower())
        if entry is None:
            raise UnknownFunctionError(f"The function '{name}' doesn't exist or is not a {kind} function.")
        return entry


_INDEX_ATTRIBUTE = "_hosttools_durable_index"


def index_durable_functions(app: func.FunctionRegister) -> _Indexed:
    """Index ``app`` once (``get_functions()`` may only be called once per app, as in the worker)."""
    cached = getattr(app, _INDEX_ATTRIBUTE, None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    indexed = _Indexed()
    for function in app.get_functions():
        bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
        triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
        if len(triggers) != 1 or triggers[0]["type"] not in indexed.functions:
            continue
        trigger = triggers[0]
        name = function.get_function_name() or function.get_user_function().__name__
        for key in ("orchestration", "activity", "entityName"):
            if trigger.get(key):
                name = str(trigger[key])
        entry = (name, str(trigger["name"]), function.get_user_function())
        indexed.functions[trigger["type"]][name.lower()] = entry
    setattr(app, _INDEX_ATTRIBUTE, indexed)
    return indexed


# The engine -------------------------------------------------------------------------------------------


class Engine:
    """Store + workers + dispatcher + management service for one app; use as ``async with Engine(app)``.

    Args:
        app: The ``DFApp`` (or ``FunctionApp``) whose Durable functions to run.
        path: Directory for the SQLite task hub; a fresh temporary one (removed on exit) by default.
        clock: The host clock (seconds since the epoch).
        concurrency: Dispatcher limits.
        versioning: host.json ``defaultVersion`` and strategies (none: versions are not checked).
        http: The built-in HTTP activity (``context.call_http``), if the test needs one.
    """

    def __init__(
        self,
        app: func.FunctionRegister,
        *,
        path: Path | None = None,
        clock: Callable[[], float] = time.time,
        concurrency: Concurrency | None = None,
        versioning: Versioning | None = None,
        http: Callable[[str], Any] | None = None,
    ) -> None:
        self._versioning = versioning
        self._http = http
        self.index = index_durable_functions(app)
        # Per-engine overrides, so a test can swap an orchestrator between episodes.
        self._orchestrators: dict[str, tuple[str, str, Callable[..., Any]]] = dict(
            self.index.functions[ORCHESTRATION_TRIGGER]
        )
        self._own_dir = path is None
        self._dir = Path(tempfile.mkdtemp(prefix="durable-engine-")) if path is None else Path(path)
        self.clock = clock
        self._concurrency = concurrency or Concurrency()
        self._changed: asyncio.Event | None = None
        self.store: TaskHubStore
        self.dispatcher: Dispatcher
        self.management: ManagementService
        # Every invocation, in order: (kind, name, payload) — handy for assertions on delivery.
        self.invocations: list[tuple[str, str, Any]] = []
        # Committed task-hub transactions so far (each wakes the dispatcher).
        self.commits = 0

    # Lifecycle --------------------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        self._changed = asyncio.Event()
        dispatcher: Dispatcher | None = None

        def on_commit() -> None:
            self.commits += 1
            if dispatcher is not None:
                dispatcher.notify()
            assert self._changed is not None
            self._changed.set()

        self.store = TaskHubStore(self._dir / "taskhub.sqlite", on_commit=on_commit)
        dispatcher = Dispatcher(
            self.store,
            OrchestrationWorker(self.store, self._invoke_orchestrator, self.clock, versioning=self._versioning),
            ActivityWorker(self.store, self._invoke_activity, self.clock, http=self._http),
            EntityWorker(self.store, self._invoke_entity, self.clock),
            self.clock,
            self._concurrency,
        )
        self.dispatcher = dispatcher
        self.management = ManagementService(
            self.store,
            self.clock,
            lambda: [entry[0] for entry in self._orchestrators.values()],
            lambda: self.index.names(ENTITY_TRIGGER),
            default_version=self._versioning.default_version if self._versioning else None,
        )
        dispatcher.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.dispatcher.stop(grace_seconds=5.0)
        finally:
            self.store.close()
            if self._own_dir:
                shutil.rmtree(self._dir, ignore_errors=True)

    # Invocation, as the worker does it ----------------------------------------------------------------

    async def _invoke_orchestrator(self, name: str, context_json: str) -> str:
        entry = self._orchestrators.get(name.lower())
        if entry is None:
            raise UnknownFunctionError(f"The function '{name}' doesn't exist or is not an orchestrator function.")
        self.invocations.append(("orchestration", name, context_json))
        datum = meta.Datum(context_json, "json")
        context = OrchestrationTriggerConverter.decode(datum, trigger_metadata=None)
        result = await self._call(entry[2], entry[1], context, positional=True)
        return str(OrchestrationTriggerConverter.encode(result, expected_type=None).value)

    async def _invoke_activity(self, name: str, input_text: str) -> str:
        _, binding, function = self.index.get(ACTIVITY_TRIGGER, name)
        self.invocations.append(("activity", name, input_text))
        value = ActivityTriggerConverter.decode(meta.Datum(input_text, "string"), trigger_metadata=None)
        result = await self._call(function, binding, value, positional=False)
        return str(ActivityTriggerConverter.encode(result, expected_type=None).value)

    async def _invoke_entity(self, name: str, batch_json: str) -> str:
        _, binding, function = self.index.get(ENTITY_TRIGGER, name)
        self.invocations.append(("entity", name, batch_json))
        context = EnitityTriggerConverter.decode(meta.Datum(batch_json, "json"), trigger_metadata=None)
        result = await self._call(function, binding, context, positional=True)
        return str(EnitityTriggerConverter.encode(result, expected_type=None).value)

    @staticmethod
    async def _call(function: Callable[..., Any], binding: str, value: Any, *, positional: bool) -> Any:
        # The worker passes the trigger by its binding name; the SDK's handles take one positional arg.
        params = inspect.signature(function).parameters
        if not positional and binding in params:
            call: Callable[[], Any] = lambda: function(**{binding: value})  # noqa: E731
        else:
            call = lambda: function(value)  # noqa: E731
        if inspect.iscoroutinefunction(function):
            return await call()
        return await asyncio.to_thread(call)

    def replace_orchestrator(self, name: str, generator_function: Callable[..., Any]) -> None:
        """Make ``name`` run ``generator_function`` from its next episode on (as a code change would)."""
        known, binding, _ = self._orchestrators[name.lower()]
        self._orchestrators[name.lower()] = (known, binding, df.Orchestrator.create(generator_function))

    # Client operations --------------------------------------------------------------------------------

    def start(self, name: str, input: Any = None, instance_id: str | None = None) -> str:
        """``client.start_new``: the SDK posts ``df_dumps(input)`` as a JSON string; the host keeps it."""
        input_json = json.dumps(df_dumps(input)) if input is not None else None
        return self.management.start(name, instance_id, input_json, None)

    def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """``client.raise_event``: the SDK posts ``json.dumps(data)`` as a JSON string.

        So the orchestrator receives ``json.dumps(data)`` (a str), whatever ``data`` is: the extension keeps
        the body's token, a string (Azure/azure-functions-durable-python#295).
        """
        self.management.raise_event(instance_id, event_name, json.dumps(json.dumps(data)))

    def raise_event_json(self, instance_id: str, event_name: str, input_json: str | None) -> None:
        """Raise an event whose stored ``Input`` is exactly ``input_json`` (what a raw HTTP body gives)."""
        self.management.raise_event(instance_id, event_name, input_json)

    def signal_entity(self, name: str, key: str, operation: str, value: Any = None) -> None:
        """``client.signal_entity``: the SDK sends ``json.dumps(value)`` as JSON; no body if it is falsy."""
        input_json = json.dumps(json.dumps(value)) if value else None
        self.management.signal_entity(name, key, operation, input_json)

    def read_entity(self, name: str, key: str) -> Any:
        """The entity's state as ``read_entity_state`` gives it (``df_loads`` of the stored JSON)."""
        return df_loads(self.management.read_entity(name, key))

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        self.management.terminate(instance_id, reason)

    def suspend(self, instance_id: str, reason: str | None = None) -> None:
        self.management.suspend(instance_id, reason)

    def resume(self, instance_id: str, reason: str | None = None) -> None:
        self.management.resume(instance_id, reason)

    # Observation --------------------------------------------------------------------------------------

    def status(self, instance_id: str) -> InstanceRecord:
        record = self.store.get_instance(instance_id)
        if record is None:
            raise KeyError(instance_id)
        return record

    def history(self, instance_id: str) -> list[HistoryEvent]:
        return self.store.get_history(instance_id)

    def output(self, instance_id: str) -> Any:
        record = self.status(instance_id)
        return json.loads(record.output) if record.output is not None else None

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Wait (without polling the clock in a busy loop) until ``predicate()`` holds after some commit."""
        assert self._changed is not None
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineTimeout(f"timed out after {timeout}s waiting for {what}")
            self._changed.clear()
            if predicate():
                return
            with contextlib.suppress(asyncio.TimeoutError):  # what wait_for raises on 3.10 (TimeoutError from 3.11)
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.05))

    async def wait(
        self, instance_id: str, timeout: float = 10.0, statuses: Iterable[RuntimeStatus] | None = None
    ) -> InstanceRecord:
        """Wait for the instance to reach one of ``statuses`` (default: any terminal status)."""
        wanted = set(statuses) if statuses is not None else {s for s in RuntimeStatus if s.is_terminal}

        def reached() -> bool:
            record = self.store.get_instance(instance_id)
            return record is not None and record.status in wanted

        try:
            names = sorted(s.name for s in wanted)
            await self.wait_until(reached, timeout, f"{instance_id} to reach {names}")
        except EngineTimeout as exc:
            record = self.store.get_instance(instance_id)
            lines = [describe(e) for e in self.store.get_history(instance_id)]
            raise EngineTimeout(
                f"{exc}; status {record.status.name if record else None}; history:\n" + "\n".join(lines)
            ) from None
        return self.status(instance_id)

    async def wait_history(
        self, instance_id: str, predicate: Callable[[list[HistoryEvent]], bool], timeout: float = 10.0
    ) -> list[HistoryEvent]:
        await self.wait_until(lambda: predicate(self.store.get_history(instance_id)), timeout, "history")
        return self.store.get_history(instance_id)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until no message is due now and no work item runs (delayed timers may remain).

        Messages a suspended instance holds in its inbox count as due, so do not use this while one is.
        """

        def quiet() -> bool:
            now = self.clock()
            pending = self.store._db.execute(  # a test probe of the hub
                "SELECT COUNT(*) FROM messages WHERE visible_at <= ?", (now,)
            ).fetchone()[0]
            return pending == 0 and self.dispatcher.idle

        await self.wait_until(quiet, timeout, "the engine to go idle")


def describe(event: HistoryEvent) -> str:
    """One line per event, for failure messages."""
    keys = ("Name", "TaskScheduledId", "TimerId", "InstanceId", "Result", "Reason", "Input")
    extra = {k: event.get(k) for k in keys if event.get(k) is not None}
    return f"{event.type.name} {event.event_id} {extra}"


# SDK fixtures -----------------------------------------------------------------------------------------


def history_from_context_builder(context_builder: Any) -> list[HistoryEvent]:
    """The SDK test ``ContextBuilder``'s history, via its wire JSON, as our ``HistoryEvent`` list."""
    return [HistoryEvent.from_wire(wire) for wire in context_builder.to_json()["history"]]


def last_orchestrator_started(history: list[HistoryEvent]) -> int:
    """Index of the last OrchestratorStarted event: where the current episode's new events begin."""
    for index in range(len(history) - 1, -1, -1):
        if history[index].type == EventType.ORCHESTRATOR_STARTED:
            return index
    raise ValueError("history has no OrchestratorStarted event")


def _sdk_tests_dir() -> Path:
    spec = importlib.util.find_spec("azure.durable_functions")
    assert spec is not None and spec.origin is not None
    # site-packages/azure/durable_functions/__init__.py -> site-packages/tests
    return Path(spec.origin).resolve().parents[2] / "tests"


def sdk_fixture(module: str) -> ModuleType:
    """Import ``tests.orchestrator.<module>`` (or any ``tests.<...>`` module) from the SDK wheel.

    The wheel installs its tests as a top-level namespace package ``tests``. Our own ``tests`` directory has
    no ``__init__.py``; outside pytest ``import tests.orchestrator`` then resolves into the wheel. Under
    ``--import-mode=importlib`` pytest registers our directory as the package ``tests`` (a namespace package
    whose path is only our directory) before importing a test module, which hides the wheel's fixtures. So
    the wheel's ``tests`` directory is appended to that package's path: the fixtures import each other as
    ``tests.orchestrator...``/``tests.test_utils...``, and our directory has neither sub-package.
    """
    root = _sdk_tests_dir()
    qualified = module if module.startswith("tests.") else f"tests.orchestrator.{module}"
    package = sys.modules.get("tests")
    if package is not None:
        path = getattr(package, "__path__", None)
        if path is None:
            raise ImportError(f"a non-package module 'tests' ({package!r}) hides the SDK's test fixtures")
        if str(root) not in list(path):
            path.append(str(root))
            importlib.invalidate_caches()
    loaded = importlib.import_module(qualified)
    origin = Path(str(loaded.__file__)).resolve()
    if not origin.is_relative_to(root):
        raise ImportError(f"{qualified} resolved to {origin}, not to the SDK's fixtures under {root}")
    return loaded
