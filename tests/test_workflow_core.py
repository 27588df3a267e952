"""Workflow registration, names and the pieces of a durable step that need no host."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from agent_framework import WorkflowBuilder
from zoo_loader import zoo

from durableagent import AgentFunctionApp, AgentRegistrationError


def test_generated_workflow_function_names_are_pinned() -> None:
    app = AgentFunctionApp(workflows=[zoo.sequential()])
    app.add_workflow(zoo.functional)
    names = {f.get_function_name() for f in app.get_functions()}
    assert {
        "workflow-sequential",
        "workflow-sequential-step",
        "workflow-sequential-answers",
        "workflow-functional",
        "workflow-functional-step",
        "workflow-functional-answers",
    } <= names
    assert set(app.workflows) == {"sequential", "functional"}


def test_orchestrator_and_activity_bindings() -> None:
    app = AgentFunctionApp(workflows=[zoo.sequential()])
    bindings = {f.get_function_name(): [json.loads(b) for b in f.get_raw_bindings()] for f in app.get_functions()}
    assert bindings["workflow-sequential"][0]["type"] == "orchestrationTrigger"
    assert bindings["workflow-sequential-step"][0]["type"] == "activityTrigger"
    assert bindings["workflow-sequential-answers"][0]["type"] == "activityTrigger"


def test_generated_builder_names_are_rejected_with_advice() -> None:
    unnamed = WorkflowBuilder(start_executor=zoo.Upper(id="u")).build()
    with pytest.raises(AgentRegistrationError, match=r"WorkflowBuilder\(name=\.\.\.\)"):
        AgentFunctionApp(workflows=[unnamed])


@pytest.mark.parametrize("name", ["", "1abc", "has space", "a" * 64, "slash/name"])
def test_invalid_workflow_names_are_rejected(name: str) -> None:
    wf = zoo.sequential()
    wf.name = name
    with pytest.raises(AgentRegistrationError):
        AgentFunctionApp(workflows=[wf])


def test_duplicate_names_compare_case_insensitively() -> None:
    app = AgentFunctionApp(workflows=[zoo.sequential()])
    other = zoo.sequential()
    other.name = "SEQUENTIAL"
    with pytest.raises(AgentRegistrationError, match="already registered"):
        app.add_workflow(other)


def test_options_are_validated() -> None:
    app = AgentFunctionApp()
    with pytest.raises(AgentRegistrationError, match="supersteps_per_execution"):
        app.add_workflow(zoo.sequential(), supersteps_per_execution=0)
    with pytest.raises(AgentRegistrationError, match="request_timeout"):
        app.add_workflow(zoo.sequential(), request_timeout=timedelta(0))
    with pytest.raises(AgentRegistrationError, match="timeout_response must be JSON"):
        app.add_workflow(zoo.sequential(), request_timeout=timedelta(seconds=5), timeout_response=zoo.Draft("x"))
    with pytest.raises(AgentRegistrationError, match="Expected an Agent Framework workflow"):
        app.add_workflow("not a workflow")  # type: ignore[arg-type]
    assert app.workflows == {}


def test_unknown_workflow_in_python_api() -> None:
    app = AgentFunctionApp()
    with pytest.raises(AgentRegistrationError, match="No workflow named"):
        app.run_checkpoints("nope", "run")
