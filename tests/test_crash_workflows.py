"""``kill -9`` the host in the middle of workflow runs: each resumes from its last completed step.

Executors and ``@step`` functions log every execution (O_APPEND + fsync). After the kills every run
completes with the exact result; every step ran at least once, and only steps that were in flight at
a kill ran twice (at most one extra execution per kill), so completed steps were not repeated.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hosttools.host_process import HostProcess, copy_app

pytestmark = pytest.mark.crash

APP = Path(__file__).parent / "apps" / "workflows"
KILLS = 3


def start(host: HostProcess, workflow: str, value: Any) -> str:
    code, _, raw = host.request("POST", f"/api/workflows/{workflow}/runs", body={"input": value})
    assert code == 202, raw
    return str(json.loads(raw)["runId"])


def status(host: HostProcess, workflow: str, run_id: str) -> dict[str, Any]:
    code, _, raw = host.request("GET", f"/api/workflows/{workflow}/runs/{run_id}")
    assert code == 200, raw
    return dict(json.loads(raw))


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def wait_lines(log: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(lines(log)) < count:
        assert time.monotonic() < deadline, f"only {len(lines(log))} executions logged"
        time.sleep(0.02)


def test_runs_resume_from_the_last_completed_step_after_kills(azurite: Any, tmp_path: Path) -> None:
    app_dir = copy_app(APP, tmp_path / "app")
    log = tmp_path / "ticks.log"
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": "WorkflowCrash",
        "TICK_LOG": str(log),
        "TICK_SECONDS": "0.15",
    }
    graph_steps, functional_steps = 24, 12
    host = HostProcess(app_dir, env=env).start()
    try:
        graph_run = start(host, "ticking", graph_steps)
        functional_run = start(host, "slowsteps", functional_steps)
        for kill in range(KILLS):
            wait_lines(log, (kill + 1) * 8)
            host.kill()
            host = HostProcess(app_dir, env=env).start()
        deadline = time.monotonic() + 90
        while True:
            graph, functional = status(host, "ticking", graph_run), status(host, "slowsteps", functional_run)
            if graph["state"] in ("completed", "failed") and functional["state"] in ("completed", "failed"):
                break
            assert time.monotonic() < deadline, (graph, functional)
            time.sleep(0.1)
    finally:
        host.stop()
    assert graph["outputs"] == [graph_steps], graph.get("error")
    assert functional["outputs"] == [sum(i * i for i in range(functional_steps))], functional.get("error")
    executions = collections.Counter(lines(log))
    expected = {f"graph {n}" for n in range(1, graph_steps + 1)} | {f"step {i}" for i in range(functional_steps)}
    assert set(executions) == expected  # every step ran
    repeats = sum(count - 1 for count in executions.values())
    print(f"\n{KILLS} kills: {sum(executions.values())} executions of {len(expected)} steps, {repeats} repeated")
    assert repeats <= 2 * KILLS  # only what was in flight at a kill (one step per run per kill)
    # One checkpoint per superstep (plus the entry one): redone steps replaced their index entries.
    assert len(graph["checkpoints"]) == graph_steps + 1
    assert [c["iteration"] for c in graph["checkpoints"]] == list(range(graph_steps + 1))
