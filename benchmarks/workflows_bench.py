"""A durable workflow superstep against Agent Framework's in-process run, measured on this machine.

Run from the repository root:

    .venv/bin/python benchmarks/workflows_bench.py

The workflow (``benchmarks/apps/workflows_bench/chain.py``) is a line of S trivial executors
(S = 20 by default): each superstep passes a short string on, the last one yields it. It measures:

(i)   in process: ``await workflow.run(...)`` with ``FileCheckpointStorage`` in a temporary
      directory (a checkpoint per superstep, as a durable run makes), R times; wall time / S;
(ii)  durable, not waited for: ``POST /api/workflows/Chain/runs`` (202), then the task hub is read
      until the run completed; (completion timestamp - POST sent) / S;
(iii) durable, waited for: ``POST /api/workflows/Chain/runs?wait=true``; POST -> 200, and the lag
      between the task hub committing the run's completion and the response arriving;
(iv)  the step activity's body alone: ``run_step`` called in a loop in this process against the
      same Azurite, without the host: the library's share of (ii).

It starts Azurite (in memory, free ports) and ``python -m durableagent.devhost`` as a subprocess
on a copy of ``benchmarks/apps/workflows_bench``. It prints a table, the command, and as the last
line of stdout the results as JSON (keys in ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _benchkit import command_line, machine_info

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "benchmarks" / "apps" / "workflows_bench"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(APP))
sys.path.insert(0, str(REPO / "benchmarks"))

from chain import NAME, build  # noqa: E402
from devhost_bench import Host, host_with_azurite  # noqa: E402

from durableagent.devhost._azurite import AzuriteProcess  # noqa: E402

HUB = "WorkflowsBench"
COMPLETED = 1  # RuntimeStatus.Completed in the task hub's instances table


def in_process(supersteps: int, runs: int) -> dict[str, Any]:
    """Per-superstep wall time of ``workflow.run()`` with a file checkpoint per superstep."""
    from agent_framework import FileCheckpointStorage

    workflow = build(supersteps)
    expected = "x" + "." * (supersteps - 1)

    async def measure() -> list[float]:
        with tempfile.TemporaryDirectory(prefix="wf-bench-ckpt-") as directory:
            storage = FileCheckpointStorage(directory)
            totals = []
            for i in range(runs + 1):
                began = time.perf_counter()
                result = await workflow.run("x", checkpoint_storage=storage)
                elapsed = time.perf_counter() - began
                if result.get_outputs() != [expected]:
                    raise RuntimeError(f"in-process run produced {result.get_outputs()!r}")
                if i:  # the first run imports and warms caches
                    totals.append(elapsed)
            checkpoints = len(os.listdir(directory))
        if checkpoints < (runs + 1) * supersteps:
            raise RuntimeError(f"only {checkpoints} checkpoints for {runs + 1} runs of {supersteps} supersteps")
        return totals

    totals = asyncio.run(measure())
    per_step = [t * 1000 / supersteps for t in totals]
    return {"runs": runs, "per_superstep_ms_p50": statistics.median(per_step), "per_superstep_ms_all": per_step}


def steps_alone(connection_string: str, supersteps: int, runs: int) -> dict[str, Any]:
    """The durable step activity's body (``run_step``) called in a loop in this process: the library's
    share of a durable superstep, without the host (no orchestration, no activity dispatch)."""
    from azure.storage.blob import BlobServiceClient

    from durableagent._blob_transport import StdlibTransport
    from durableagent._workflow_step import WorkflowSpec, pack, run_step
    from durableagent._workflow_store import BlobCheckpointStorage

    # The transport the product's own blob clients use (``_blobs.service_from_environment``).
    service = BlobServiceClient.from_connection_string(connection_string, transport=StdlibTransport())
    container = service.get_container_client("bench-steps")
    storage = BlobCheckpointStorage(container)
    spec = WorkflowSpec(name=NAME, workflow=build(supersteps))

    async def one_run(run_id: str) -> float:
        began = time.perf_counter()
        request: dict[str, Any] = {"runId": run_id, "step": 0, "checkpointId": None, "answers": None}
        request["input"] = pack("x", storage, spec.name, run_id, "input")
        steps = 0
        while True:
            result = await run_step(spec, storage, request)
            steps += 1
            if result["error"] or not result["hasMessages"]:
                break
            request = {"runId": run_id, "step": steps, "checkpointId": result["checkpointId"], "answers": None}
        if steps != supersteps or result["error"]:
            raise RuntimeError(f"run_step loop took {steps} steps, error {result['error']}")
        return (time.perf_counter() - began) * 1000 / supersteps

    async def measure() -> list[float]:
        await one_run("warmup")
        return [await one_run(f"alone-{i}") for i in range(runs)]

    per_step = asyncio.run(measure())
    return {"runs": runs, "per_superstep_ms_p50": statistics.median(per_step), "per_superstep_ms_all": per_step}


class Hub:
    """Read-only view of the host's SQLite task hub (the host's own timestamps)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def close(self) -> None:
        self._db.close()

    def completed_at(self, instance_id: str) -> float | None:
        row = self._db.execute(
            "SELECT updated_at FROM instances WHERE status = ? AND instance_id = ?", (COMPLETED, instance_id)
        ).fetchone()
        return float(row[0]) if row else None

    def wait_completed(self, instance_id: str, timeout: float = 120.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            done = self.completed_at(instance_id)
            if done is not None:
                return done
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {instance_id} did not complete within {timeout}s")
            time.sleep(0.002)


def start(host: Host, conn: Any, run_id: str, wait: bool) -> tuple[int, dict[str, Any]]:
    path = f"/api/workflows/{NAME}/runs" + ("?wait=true" if wait else "")
    code, body = host.request("POST", path, {"input": "x", "runId": run_id}, conn)
    return code, json.loads(body)


def durable(host: Host, hub: Hub, supersteps: int, runs: int) -> dict[str, Any]:
    """Not-waited and waited runs, alternating, one at a time."""
    expected = "x" + "." * (supersteps - 1)
    conn = host.connect()
    polled: list[float] = []
    waited: list[float] = []
    post_to_response: list[float] = []
    lags: list[float] = []
    try:
        for i in range(runs):
            run_id = f"nowait-{i}-{uuid.uuid4().hex[:8]}"
            sent = time.time()
            code, _ = start(host, conn, run_id, wait=False)
            if code != 202:
                raise RuntimeError(f"start answered {code}")
            done = hub.wait_completed(run_id)
            polled.append((done - sent) * 1000 / supersteps)

            run_id = f"wait-{i}-{uuid.uuid4().hex[:8]}"
            sent = time.time()
            code, body = start(host, conn, run_id, wait=True)
            answered = time.time()
            if code != 200 or body.get("outputs") != [expected]:
                raise RuntimeError(f"waited start answered {code}: {str(body)[:300]}")
            done = hub.completed_at(run_id)
            if done is None:
                raise RuntimeError(f"run {run_id} answered 200 but is not completed in the task hub")
            waited.append((done - sent) * 1000 / supersteps)
            post_to_response.append((answered - sent) * 1000)
            lags.append((answered - done) * 1000)
    finally:
        conn.close()
    return {
        "runs": runs,
        "per_superstep_ms_p50": statistics.median(polled + waited),
        "per_superstep_ms_nowait_p50": statistics.median(polled),
        "per_superstep_ms_wait_p50": statistics.median(waited),
        "post_to_response_ms_p50": statistics.median(post_to_response),
        "wait_lag_ms_p50": statistics.median(lags),
        "wait_lag_ms_max": max(lags),
        "wait_lag_ms_all": lags,
    }


@contextlib.contextmanager
def running_host(work: Path, supersteps: int) -> Iterator[tuple[Host, Hub, AzuriteProcess]]:
    env = {
        "TASKHUB_NAME": HUB,
        "BENCH_SUPERSTEPS": str(supersteps),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with host_with_azurite(work, APP, env) as (host, azurite):
        hub = Hub(host.app_dir / ".durableagent" / f"taskhub-{HUB}.sqlite")
        try:
            yield host, hub, azurite
        finally:
            hub.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supersteps", type=int, default=20, help="supersteps of the workflow (default 20)")
    parser.add_argument("--runs", type=int, default=20, help="in-process runs (default 20)")
    parser.add_argument("--durable-runs", type=int, default=8, help="durable runs of each kind (default 8)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (host log, task hub)")
    args = parser.parse_args()
    if args.supersteps < 1:
        parser.error("--supersteps must be at least 1")

    local = in_process(args.supersteps, args.runs)
    work = Path(tempfile.mkdtemp(prefix="workflows-bench-"))
    try:
        with running_host(work, args.supersteps) as (host, hub, azurite):
            alone = steps_alone(azurite.connection_string, args.supersteps, args.durable_runs)
            warm = host.connect()
            try:  # the first run imports and indexes code: keep it out of the numbers
                start(host, warm, f"warmup-{uuid.uuid4().hex[:8]}", wait=True)
            finally:
                warm.close()
            remote = durable(host, hub, args.supersteps, args.durable_runs)
    finally:
        if args.keep:
            print(f"work directory (kept): {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    ratio = remote["per_superstep_ms_p50"] / local["per_superstep_ms_p50"]
    machine = machine_info()
    rows = [
        ("per superstep, in process (FileCheckpointStorage)", f"{args.runs} runs",
         f"p50 {local['per_superstep_ms_p50']:.2f} ms"),
        ("per superstep, durable (start -> completed)", f"{2 * args.durable_runs} runs",
         f"p50 {remote['per_superstep_ms_p50']:.2f} ms (not waited {remote['per_superstep_ms_nowait_p50']:.2f}, "
         f"waited {remote['per_superstep_ms_wait_p50']:.2f})"),
        ("ratio durable / in process", "", f"{ratio:.1f}x"),
        ("per superstep, step activity body alone (no host)", f"{args.durable_runs} runs",
         f"p50 {alone['per_superstep_ms_p50']:.2f} ms"),
        ("?wait=true POST -> 200", f"{args.durable_runs} runs", f"p50 {remote['post_to_response_ms_p50']:.0f} ms"),
        ("?wait=true lag after completion", f"{args.durable_runs} runs",
         f"p50 {remote['wait_lag_ms_p50']:.1f} ms, max {remote['wait_lag_ms_max']:.1f} ms"),
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    print(f"workflows benchmark on {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print(f"workflow: {args.supersteps} supersteps of trivial executors")
    print(f"command: {command_line(REPO)}")
    print()
    print(f"{'measure'.ljust(widths[0])}  {'load'.ljust(widths[1])}  result")
    print(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 40}")
    for name, load, result in rows:
        print(f"{name.ljust(widths[0])}  {load.ljust(widths[1])}  {result}")
    print()
    results = {
        "machine": machine,
        "supersteps": args.supersteps,
        "in_process": local,
        "durable": remote,
        "steps_alone": alone,
        "ratio": ratio,
    }
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
