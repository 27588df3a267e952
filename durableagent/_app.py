"""``AgentFunctionApp``: a ``DFApp`` where each registered agent becomes a Durable Entity with HTTP,
queue and timer entry points. Users keep adding their own functions to the same app.

Names of generated functions derive from the agent's name and are part of the contract (renaming
one would orphan the state of existing sessions or break callers); ``tests/test_agent_core.py`` pins them.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Dict  # noqa: UP035 (see _register_workflow)

import azure.durable_functions as df
import azure.functions as func
from agent_framework import SupportsAgentRun, Workflow
from agent_framework._workflows._functional import FunctionalWorkflow, FunctionalWorkflowDefinition

from . import _window
from ._background import (
    POISON_SUFFIX,
    AgentSchedule,
    default_queue_name,
    handle_queue_message,
    handle_schedule,
    purge_idle_sessions,
    queue_reply_sender,
    validate_ncrontab,
)
from ._callbacks import AgentResponseCallbackProtocol
from ._entity import AgentEntity, EntityConfig
from ._errors import AgentRegistrationError
from ._http_api import AgentHttpApi, AgentInfo, HttpSettings
from ._orchestration import DurableAgent
from ._requests import RequestLimits, is_queue_name
from ._session_id import entity_name_for
from ._state import StateLimits
from ._transcript import DEFAULT_CONTAINER, TranscriptStore
from ._workflow_http import WorkflowHttpApi, start_run
from ._workflow_orchestrator import answers_activity_name, orchestrate, orchestrator_name, step_activity_name
from ._workflow_step import FAIL_ON_TIMEOUT, WorkflowSpec, read_answers, run_step
from ._workflow_store import DEFAULT_CONTAINER as CHECKPOINT_CONTAINER
from ._workflow_store import BlobCheckpointStorage, CheckpointEntry, RunStore

_AGENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}\Z")
_GENERATED_NAME = re.compile(r"^WorkflowBuilder-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")

# Names of the shared functions (one per app). The agents-* ones answer only for names no agent has:
# each agent's own functions (below) serve its routes.
RUN_FUNCTION = "agents-run"
SESSION_FUNCTION = "agents-session"
DELETE_SESSION_FUNCTION = "agents-session-delete"
RUN_RESULT_FUNCTION = "agents-run-result"
HEALTH_FUNCTION = "health"
MAINTENANCE_FUNCTION = "agents-maintenance"
WORKFLOW_START_FUNCTION = "workflows-start"
WORKFLOW_STATUS_FUNCTION = "workflows-status"
WORKFLOW_RESPOND_FUNCTION = "workflows-respond"
WORKFLOW_TERMINATE_FUNCTION = "workflows-terminate"
WORKFLOW_EVENTS_FUNCTION = "workflows-events"

AnyWorkflow = Workflow | FunctionalWorkflow | FunctionalWorkflowDefinition


def entity_function_name(agent_name: str) -> str:
    return entity_name_for(agent_name)


def http_function_names(agent_name: str) -> dict[str, str]:
    """An agent's HTTP functions by what they do: ``run``, ``session``, ``session-delete``, ``run-result``."""
    entity = entity_name_for(agent_name)
    return {what: f"{entity}-{what}" for what in ("run", "session", "session-delete", "run-result")}


def queue_function_name(agent_name: str) -> str:
    return f"{entity_name_for(agent_name)}-queue"


def schedule_function_name(agent_name: str, index: int, schedule: AgentSchedule) -> str:
    return f"{entity_name_for(agent_name)}-schedule-{schedule.name or index}"


class AgentFunctionApp(df.DFApp):
    """A Durable Functions app that hosts Agent Framework agents durably.

    Each agent gets a Durable Entity (one instance per session, holding the serialized session),
    ``POST /api/agents/{name}/run``, session and run-result routes, a queue trigger and optional
    schedules.

    Args:
        agents: Agents to register now (each needs a ``name``).
        http_auth_level: Auth level of the generated HTTP routes.
        agent: One agent to register now (``AgentFunctionApp(agent=my_agent)``), after ``agents``.
        agent_name: The name ``agent`` is registered under (its routes, entity and queue) instead of
            ``agent.name``.
        enable_health_check: Serve ``GET /api/health``.
        default_callback: Observes every agent's runs unless the agent has its own callback.
        request_limits: Message size, session key length and allowed roles.
        state_limits: Window and receipt bounds that keep entity state small.
        wait_timeout_seconds: How long a waiting HTTP run waits before answering 202.
        run_timeout_seconds: Longest one agent run may take inside the entity.
        session_ttl: Delete sessions idle longer than this (``None``: keep them).
        maintenance_schedule: NCRONTAB of the idle-session clean-up.
        storage_setting: App setting of the storage account for transcripts, reply queues and
            workflow checkpoints.
        transcript_container: Blob container of the transcripts.
        workflows: Workflows to register now (graph ``Workflow``s or functional ``@workflow``s).
        checkpoint_container: Blob container of workflow checkpoints and run records.
    """

    def __init__(
        self,
        agents: Sequence[SupportsAgentRun] | None = None,
        http_auth_level: func.AuthLevel = func.AuthLevel.ANONYMOUS,
        enable_health_check: bool = True,
        default_callback: AgentResponseCallbackProtocol | None = None,
        *,
        agent: SupportsAgentRun | None = None,
        agent_name: str | None = None,
        request_limits: RequestLimits | None = None,
        state_limits: StateLimits | None = None,
        wait_timeout_seconds: float = 120.0,
        run_timeout_seconds: float = 600.0,
        session_ttl: timedelta | None = None,
        maintenance_schedule: str = "0 0 * * * *",
        storage_setting: str = "AzureWebJobsStorage",
        transcript_container: str = DEFAULT_CONTAINER,
        workflows: Sequence[AnyWorkflow] | None = None,
        checkpoint_container: str = CHECKPOINT_CONTAINER,
    ) -> None:
        super().__init__(http_auth_level=http_auth_level)
        self._agents: dict[str, SupportsAgentRun] = {}
        self._names: dict[str, str] = {}
        self._generated: set[str] = set()  # lower-cased names of the agents' generated functions
        self._default_callback = default_callback
        self.request_limits = request_limits or RequestLimits()
        self.state_limits = state_limits or StateLimits()
        self._run_timeout = run_timeout_seconds
        self._storage_setting = storage_setting
        self._transcript_container = transcript_container
        self._transcripts: TranscriptStore | None = None
        self._stores_lock = threading.Lock()  # guards the lazy transcript and checkpoint stores
        self._http = AgentHttpApi(
            HttpSettings(
                limits=self.request_limits,
                wait_timeout_seconds=wait_timeout_seconds,
                transcripts=self.transcripts,
                agents=self._agent_infos,
                workflows=self._workflow_infos,
            )
        )
        self._workflows: dict[str, WorkflowSpec] = {}
        self._checkpoint_container = checkpoint_container
        self._checkpoints: BlobCheckpointStorage | None = None
        self._workflow_http = WorkflowHttpApi(lambda: self._workflows, self.checkpoint_storage)
        self._register_http(enable_health_check)
        self._register_workflow_http()
        if session_ttl is not None:
            validate_ncrontab(maintenance_schedule)
            self._register_maintenance(session_ttl, maintenance_schedule)
        if agent_name is not None and agent is None:
            raise AgentRegistrationError("agent_name names the agent given as agent=...; no agent was given.")
        for each in agents or []:
            self.add_agent(each)
        if agent is not None:
            self.add_agent(agent, name=agent_name)
        for workflow in workflows or []:
            self.add_workflow(workflow)

    # Registration ---------------------------------------------------------------------------------

    @property
    def agents(self) -> dict[str, SupportsAgentRun]:
        """Registered agents by name."""
        return {self._names[k]: a for k, a in self._agents.items()}

    def add_agent(
        self,
        agent: SupportsAgentRun,
        callback: AgentResponseCallbackProtocol | None = None,
        *,
        name: str | None = None,
        queue_name: str | None = None,
        schedules: Iterable[AgentSchedule] = (),
        enable_queue_trigger: bool = True,
    ) -> None:
        """Register an agent under ``agent.name`` (or ``name``, when given).

        Raises:
            ValueError: The agent has no name, an invalid one, or one already registered (names
                compare case-insensitively, like entity names).
        """
        name = name if name is not None else getattr(agent, "name", None)
        if not name:
            raise AgentRegistrationError("An agent needs a name to be registered (set Agent(name=...)).")
        if not _AGENT_NAME.fullmatch(name):
            raise AgentRegistrationError(
                f"Agent name '{name}' is invalid: use 1-63 letters, digits, '-' or '_', starting with a letter."
            )
        if name.lower() in self._agents:
            raise AgentRegistrationError(f"An agent named '{self._names[name.lower()]}' is already registered.")
        queue = queue_name or default_queue_name(name)
        if enable_queue_trigger and not is_queue_name(queue):
            raise AgentRegistrationError(f"'{queue}' is not a valid queue name.")
        schedules = list(schedules)
        functions = [entity_function_name(name), *http_function_names(name).values()]
        functions += [queue_function_name(name)] if enable_queue_trigger else []
        functions += [schedule_function_name(name, i, schedule) for i, schedule in enumerate(schedules)]
        # Names derive from agent names, so two agents can meet ('x' runs as agent-x-run, the entity of
        # agent 'x-run'): refuse here rather than let the host refuse the whole app.
        taken = sorted({f.lower() for f in functions} & self._generated)
        if taken or len({f.lower() for f in functions}) != len(functions):
            raise AgentRegistrationError(
                f"Agent '{name}' would need function names another agent already has: {', '.join(taken)}."
            )
        _window.install(agent)
        self._agents[name.lower()] = agent
        self._names[name.lower()] = name
        self._generated.update(f.lower() for f in functions)
        config = EntityConfig(
            name=name,
            agent=agent,
            transcripts=self.transcripts,
            limits=self.state_limits,
            request_limits=self.request_limits,
            callback=callback or self._default_callback,
            run_timeout_seconds=self._run_timeout,
            reply=queue_reply_sender(self._storage_setting),
        )
        self._register_entity(name, AgentEntity(config))
        self._register_agent_http(name)
        if enable_queue_trigger:
            self._register_queue(name, queue)
        for index, schedule in enumerate(schedules):
            self._register_schedule(name, index, schedule)

    def get_agent(self, context: df.DurableOrchestrationContext, name: str) -> DurableAgent:
        """An agent to call from an orchestrator: ``response = yield agent.run("...")``.

        Raises:
            ValueError: No agent of that name is registered.
        """
        registered = self._names.get(name.lower())
        if registered is None:
            raise AgentRegistrationError(f"No agent named '{name}' is registered.")
        return DurableAgent(context, registered)

    @property
    def workflows(self) -> dict[str, AnyWorkflow]:
        """Registered workflows by name."""
        return {spec.name: spec.workflow for spec in self._workflows.values()}

    def add_workflow(
        self,
        workflow: AnyWorkflow,
        *,
        request_timeout: timedelta | None = None,
        timeout_response: Any = FAIL_ON_TIMEOUT,
        supersteps_per_execution: int = 50,
    ) -> None:
        """Register a workflow: each run becomes a durable orchestration, one checkpoint per step.

        Args:
            workflow: A ``Workflow`` from ``WorkflowBuilder(name=...)``, or a functional ``@workflow``.
            request_timeout: How long each human-in-the-loop request may wait for its answer.
            timeout_response: The answer given to a request that timed out; by default the run fails.
            supersteps_per_execution: Steps after which a running orchestration continues as new,
                which keeps its history bounded.

        Raises:
            AgentRegistrationError: The name is missing, generated, invalid or already registered.
        """
        if not isinstance(workflow, (Workflow, FunctionalWorkflow, FunctionalWorkflowDefinition)):
            raise AgentRegistrationError(f"Expected an Agent Framework workflow, got {type(workflow).__name__}.")
        name = workflow.name or ""
        if _GENERATED_NAME.match(name):
            raise AgentRegistrationError(
                f"Workflow name '{name}' was generated by WorkflowBuilder; give the workflow a stable name "
                "(WorkflowBuilder(name=...)): runs and checkpoints are keyed by it."
            )
        if not _AGENT_NAME.fullmatch(name):
            raise AgentRegistrationError(
                f"Workflow name '{name}' is invalid: use 1-63 letters, digits, '-' or '_', starting with a letter."
            )
        if name.lower() in self._workflows:
            raise AgentRegistrationError(
                f"A workflow named '{self._workflows[name.lower()].name}' is already registered."
            )
        if supersteps_per_execution < 1:
            raise AgentRegistrationError("supersteps_per_execution must be at least 1.")
        if request_timeout is not None and request_timeout <= timedelta(0):
            raise AgentRegistrationError("request_timeout must be positive.")
        if timeout_response is not FAIL_ON_TIMEOUT:
            try:
                json.dumps(timeout_response)
            except (TypeError, ValueError) as exc:
                raise AgentRegistrationError(
                    "timeout_response must be JSON, like an answer over HTTP (it is converted to the "
                    "request's response type the same way)."
                ) from exc
        spec = WorkflowSpec(
            name=name,
            workflow=workflow,
            request_timeout=request_timeout,
            timeout_response=timeout_response,
            supersteps_per_execution=supersteps_per_execution,
        )
        self._workflows[name.lower()] = spec
        self._register_workflow(spec)

    def checkpoint_storage(self) -> BlobCheckpointStorage:
        """Agent Framework ``CheckpointStorage`` holding every run's checkpoints (created on first use)."""
        if self._checkpoints is None:
            with self._stores_lock:
                if self._checkpoints is None:
                    self._checkpoints = BlobCheckpointStorage.from_environment(
                        self._storage_setting, self._checkpoint_container
                    )
        return self._checkpoints

    async def start_workflow(
        self,
        client: df.DurableOrchestrationClient,
        name: str,
        input: Any = None,
        *,
        run_id: str | None = None,
        checkpoint_id: str | None = None,
    ) -> str:
        """Start a run of a registered workflow from ``input`` or from a checkpoint; returns the run id."""
        spec = self._workflow_spec(name)
        return await start_run(
            client, spec, self.checkpoint_storage(), input, checkpoint_id=checkpoint_id, run_id=run_id
        )

    def run_checkpoints(self, name: str, run_id: str) -> list[CheckpointEntry]:
        """The checkpoints a run made, oldest first (load one with ``checkpoint_storage().load(id)``)."""
        spec = self._workflow_spec(name)
        return RunStore(self.checkpoint_storage()).checkpoints(spec.name, run_id)

    def run_events(self, name: str, run_id: str) -> list[Any]:
        """Every Agent Framework ``WorkflowEvent`` a run produced so far, in order."""
        spec = self._workflow_spec(name)
        return RunStore(self.checkpoint_storage()).read_events(spec.name, run_id)

    def _workflow_spec(self, name: str) -> WorkflowSpec:
        spec = self._workflows.get(name.lower())
        if spec is None:
            raise AgentRegistrationError(f"No workflow named '{name}' is registered.")
        return spec

    def _workflow_infos(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "type": "functional" if s.functional else "graph"} for s in self._workflows.values()]

    def transcripts(self) -> TranscriptStore:
        """The transcript store (created on first use, from the storage app setting)."""
        if self._transcripts is None:
            with self._stores_lock:
                if self._transcripts is None:
                    self._transcripts = TranscriptStore.from_environment(
                        self._storage_setting, self._transcript_container
                    )
        return self._transcripts

    def _agent_infos(self) -> dict[str, AgentInfo]:
        return {k: AgentInfo(self._names[k], type(a).__name__) for k, a in self._agents.items()}

    # Generated functions ---------------------------------------------------------------------------

    def _register_entity(self, name: str, runner: AgentEntity) -> None:
        def agent_entity(context: df.DurableEntityContext) -> None:
            runner(context)

        decorated = self.entity_trigger(context_name="context", entity_name=entity_name_for(name))(agent_entity)
        self.function_name(name=entity_function_name(name))(decorated)

    def _register_http(self, enable_health_check: bool) -> None:
        api = self._http

        async def agents_unknown(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
            return await api.unknown_agent(req)

        # A name no agent has gets a JSON 404 (agent_not_found), not the host's bare one.
        self._http_function(RUN_FUNCTION, "agents/{name}/run", "POST", agents_unknown)
        self._http_function(SESSION_FUNCTION, "agents/{name}/{sessionId}", "GET", agents_unknown)
        self._http_function(DELETE_SESSION_FUNCTION, "agents/{name}/{sessionId}", "DELETE", agents_unknown)
        self._http_function(
            RUN_RESULT_FUNCTION, "agents/{name}/{sessionId}/runs/{correlationId}", "GET", agents_unknown
        )
        if enable_health_check:

            async def health(req: func.HttpRequest) -> func.HttpResponse:
                return await api.health(req)

            decorated = self.route(route="health", methods=["GET"])(health)
            self.function_name(name=HEALTH_FUNCTION)(decorated)

    def _register_agent_http(self, name: str) -> None:
        """The agent's own functions and routes (the page: "This creates separate routes for each agent"),
        so each can have its own keys, be disabled (``AzureWebJobs.<function>.Disabled``) and be measured."""
        api = self._http
        names = http_function_names(name)
        base = f"agents/{name}"

        async def agent_run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
            return await api.run(req, client, name)

        async def agent_session(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
            return await api.get_session(req, client, name)

        async def agent_session_delete(
            req: func.HttpRequest, client: df.DurableOrchestrationClient
        ) -> func.HttpResponse:
            return await api.delete_session(req, client, name)

        async def agent_run_result(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
            return await api.run_result(req, client, name)

        self._http_function(names["run"], f"{base}/run", "POST", agent_run)
        self._http_function(names["session"], base + "/{sessionId}", "GET", agent_session)
        self._http_function(names["session-delete"], base + "/{sessionId}", "DELETE", agent_session_delete)
        self._http_function(names["run-result"], base + "/{sessionId}/runs/{correlationId}", "GET", agent_run_result)

    def _http_function(self, name: str, route: str, method: str, handler: Any) -> None:
        with_client = self.durable_client_input(client_name="client")(handler)
        routed = self.route(route=route, methods=[method])(with_client)
        self.function_name(name=name)(routed)

    def _register_workflow_http(self) -> None:
        api = self._workflow_http
        routes = [
            (WORKFLOW_START_FUNCTION, "workflows/{name}/runs", "POST", api.start),
            (WORKFLOW_STATUS_FUNCTION, "workflows/{name}/runs/{runId}", "GET", api.status),
            (WORKFLOW_RESPOND_FUNCTION, "workflows/{name}/runs/{runId}/requests/{requestId}", "POST", api.respond),
            (WORKFLOW_TERMINATE_FUNCTION, "workflows/{name}/runs/{runId}/terminate", "POST", api.terminate),
            (WORKFLOW_EVENTS_FUNCTION, "workflows/{name}/runs/{runId}/events", "GET", api.events),
        ]
        for function, route, method, handler in routes:
            self._http_function(function, route, method, _with_name(api.guarded(handler), function))

    def _register_workflow(self, spec: WorkflowSpec) -> None:
        from ._loop import run_coroutine

        def workflow_orchestrator(context: df.DurableOrchestrationContext) -> Any:
            return (yield from orchestrate(context, spec))

        orchestrator = self.orchestration_trigger(context_name="context", orchestration=orchestrator_name(spec.name))(
            workflow_orchestrator
        )
        self.function_name(name=orchestrator_name(spec.name))(orchestrator)

        # The Python worker refuses built-in generics (dict[str, Any]) on binding parameters but
        # accepts typing.Dict (azure-functions-durable-python issue 468): keep typing.Dict here.
        def workflow_step(payload: Dict[str, Any]) -> dict[str, Any]:  # noqa: UP006
            return run_coroutine(run_step(spec, self.checkpoint_storage(), payload))

        step = self.activity_trigger(input_name="payload", activity=step_activity_name(spec.name))(workflow_step)
        self.function_name(name=step_activity_name(spec.name))(step)

        def workflow_answers(payload: Dict[str, Any]) -> dict[str, Any]:  # noqa: UP006
            return read_answers(self.checkpoint_storage(), payload)

        answers = self.activity_trigger(input_name="payload", activity=answers_activity_name(spec.name))(
            workflow_answers
        )
        self.function_name(name=answers_activity_name(spec.name))(answers)

    def _register_queue(self, name: str, queue: str) -> None:
        limits = self.request_limits
        api = self._http
        wait_timeout = max(self._run_timeout, 1.0)

        async def agent_queue(
            msg: func.QueueMessage, client: df.DurableOrchestrationClient, poison: func.Out[str]
        ) -> None:
            await handle_queue_message(
                name, msg, client, limits, poison, api.wait_for_receipt, wait_timeout, api.find_receipt
            )

        with_client = self.durable_client_input(client_name="client")(agent_queue)
        with_poison = self.queue_output(
            arg_name="poison", queue_name=queue + POISON_SUFFIX, connection=self._storage_setting
        )(with_client)
        triggered = self.queue_trigger(arg_name="msg", queue_name=queue, connection=self._storage_setting)(with_poison)
        self.function_name(name=queue_function_name(name))(triggered)

    def _register_schedule(self, name: str, index: int, schedule: AgentSchedule) -> None:
        async def agent_schedule(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
            await handle_schedule(name, schedule, index, client)

        with_client = self.durable_client_input(client_name="client")(agent_schedule)
        triggered = self.timer_trigger(
            schedule=schedule.schedule, arg_name="timer", run_on_startup=schedule.run_on_startup
        )(with_client)
        self.function_name(name=schedule_function_name(name, index, schedule))(triggered)

    def _register_maintenance(self, ttl: timedelta, schedule: str) -> None:
        async def agents_maintenance(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
            await purge_idle_sessions(list(self._names.values()), ttl, client, self.transcripts())

        with_client = self.durable_client_input(client_name="client")(agents_maintenance)
        triggered = self.timer_trigger(schedule=schedule, arg_name="timer")(with_client)
        self.function_name(name=MAINTENANCE_FUNCTION)(triggered)


def _with_name(handler: Any, name: str) -> Any:
    handler.__name__ = name.replace("-", "_")
    return handler
