"""Latency and throughput of the local durable host, measured on this machine.

Run from the repository root:

    .venv/bin/python benchmarks/devhost_bench.py

It starts Azurite (in memory, free ports) and ``python -m durableagent.devhost`` as a subprocess on
a copy of ``benchmarks/apps/devhost_bench`` in a temporary directory, then measures:

(a) entity signal -> state visible: POST a signal to the entity webhook, then poll the entity's
    state over one keep-alive connection, with no sleep, until the new value shows;
(b) a 10-activity chain: N instances started concurrently; instances/s, and each instance's
    latency from its start request to its completion (the task hub's own completion timestamp);
(c) fan-out: one orchestration fanning out N activities (1,000 by default; ``--fan-out 100,300,1000,3000``
    runs one instance per width, one after the other on the same host), wall time from the start request
    to completion, and the number of orchestrator episodes it took. With several widths it also prints
    the fitted exponent k of wall ~ N^k between the smallest and the largest width.

It prints a table, the command, and as the last line of stdout the results as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _benchkit import command_line, machine_info, widths

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from durableagent.devhost._azurite import AzuritePorts, AzuriteProcess  # noqa: E402

APP = REPO / "benchmarks" / "apps" / "devhost_bench"
HUB = "BenchHub"
WEBHOOK = "/runtime/webhooks/durabletask"
COMPLETED = 1  # RuntimeStatus.Completed in the task hub's instances table


def free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Host:
    """The host subprocess, and plain HTTP to it."""

    def __init__(self, app_dir: Path, port: int, env: dict[str, str]) -> None:
        self.app_dir = app_dir
        self.port = port
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = app_dir / "host.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "durableagent.devhost", "--app-dir", str(self.app_dir),
                 "--port", str(self.port), "--no-azurite"],
                cwd=str(REPO), env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"host exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.request("GET", f"{WEBHOOK}/instances/?top=1")[0] == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"host did not start within {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(
        self, method: str, path: str, body: Any = None, conn: http.client.HTTPConnection | None = None
    ) -> tuple[int, bytes]:
        own = conn is None
        conn = conn or self.connect()
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            if own:
                conn.close()

    def start_instance(self, name: str, instance_id: str, payload: Any) -> None:
        code, body = self.request("POST", f"{WEBHOOK}/orchestrators/{name}/{instance_id}", payload)
        if code != 202:
            raise RuntimeError(f"start {name}/{instance_id}: {code} {body[:200]!r}")


class TaskHub:
    """Read-only view of the host's SQLite task hub (precise timestamps, cheap polling)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def close(self) -> None:
        self._db.close()

    def completed(self, prefix: str) -> dict[str, tuple[float, str]]:
        rows = self._db.execute(
            "SELECT instance_id, updated_at, output FROM instances WHERE status = ? AND instance_id LIKE ?",
            (COMPLETED, prefix + "%"),
        ).fetchall()
        return {row[0]: (float(row[1]), row[2]) for row in rows}

    def wait_completed(self, prefix: str, count: int, timeout: float) -> dict[str, tuple[float, str]]:
        deadline = time.monotonic() + timeout
        while True:
            done = self.completed(prefix)
            if len(done) >= count:
                return done
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(done)}/{count} '{prefix}*' instances completed after {timeout}s")
            time.sleep(0.002)


def bench_entity_latency(host: Host, samples: int) -> dict[str, float]:
    path = f"{WEBHOOK}/entities/counter/latency"
    conn = host.connect()
    try:
        latencies: list[float] = []
        for value in range(samples):
            began = time.perf_counter()
            # The body is the JSON string "1": what the Python SDK's client sends for signal_entity(..., 1).
            code, _ = host.request("POST", f"{path}?op=add", "1", conn)
            if code != 202:
                raise RuntimeError(f"signal answered {code}")
            while True:
                code, body = host.request("GET", path, None, conn)
                if code == 200 and json.loads(body) == value + 1:
                    break
                if code not in (200, 404):
                    raise RuntimeError(f"read_entity answered {code}")
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        conn.close()
    return {
        "samples": samples,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        "max_ms": max(latencies),
    }


def bench_chain(host: Host, hub: TaskHub, count: int) -> dict[str, float]:
    ids = [f"chain-{i:04d}" for i in range(count)]
    sent: dict[str, float] = {}

    def start(index: int) -> None:
        sent[ids[index]] = time.time()
        host.start_instance("chain10", ids[index], {"start": index})

    began = time.time()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(start, range(count)))
    done = hub.wait_completed("chain-", count, timeout=300)
    finished = time.time()
    wrong = [i for i, (_, output) in done.items() if json.loads(output) != int(i.split("-")[1]) + 10]
    if wrong:
        raise RuntimeError(f"wrong chain outputs: {wrong[:5]}")
    latencies = [(done[i][0] - sent[i]) * 1000 for i in ids]
    last = max(completed_at for completed_at, _ in done.values())
    return {
        "instances": count,
        "activities_per_instance": 10,
        "wall_s": last - began,
        "instances_per_s": count / (last - began),
        "activities_per_s": count * 10 / (last - began),
        "mean_latency_ms": statistics.fmean(latencies),
        "p50_latency_ms": percentile(latencies, 50),
        "p99_latency_ms": percentile(latencies, 99),
        "observed_wall_s": finished - began,
    }


def count_executions(log_path: Path, function: str) -> int:
    """How many times the host has started ``function`` so far (its "Executing" log lines)."""
    needle = f"Executing 'Functions.{function}'".encode()
    with open(log_path, "rb") as log:
        return log.read().count(needle)


def bench_fan_out(host: Host, hub: TaskHub, width: int) -> dict[str, float]:
    instance_id = f"fanout-{width}"
    episodes_before = count_executions(host.log_path, "fan_out")
    began = time.time()
    host.start_instance("fan_out", instance_id, {"width": width})
    done = hub.wait_completed(instance_id, 1, timeout=1800)
    finished = time.time()
    completed_at, output = done[instance_id]
    if json.loads(output) != width * (width + 1) // 2:
        raise RuntimeError(f"wrong fan-out output: {output}")
    return {
        "activities": width,
        "wall_s": completed_at - began,
        "activities_per_s": width / (completed_at - began),
        "observed_wall_s": finished - began,
        # Orchestrator invocations of this instance (each one replays the whole history in the SDK).
        "episodes": count_executions(host.log_path, "fan_out") - episodes_before,
    }


def fitted_exponent(runs: list[dict[str, float]]) -> float | None:
    """k in wall ~ N^k between the smallest and the largest width (None with one width)."""
    if len(runs) < 2:
        return None
    small = min(runs, key=lambda r: r["activities"])
    large = max(runs, key=lambda r: r["activities"])
    return math.log(large["wall_s"] / small["wall_s"]) / math.log(large["activities"] / small["activities"])


@contextlib.contextmanager
def host_with_azurite(work: Path, app: Path, env: dict[str, str]) -> Iterator[tuple[Host, AzuriteProcess]]:
    """An in-memory Azurite and the local host serving a copy of ``app`` (with ``env`` added)."""
    azurite = AzuriteProcess(work / "azurite", ports=AzuritePorts(*free_ports(3)), in_memory=True)
    azurite.start()
    try:
        ignore = shutil.ignore_patterns(".durableagent", "__pycache__")
        app_dir = Path(shutil.copytree(app, work / "app", ignore=ignore))
        host = Host(app_dir, free_ports(1)[0], {"AzureWebJobsStorage": azurite.connection_string, **env})
        host.start()
        try:
            yield host, azurite
        finally:
            host.stop()
    finally:
        azurite.stop()


@contextlib.contextmanager
def running_host(work: Path) -> Iterator[tuple[Host, TaskHub, AzuriteProcess]]:
    with host_with_azurite(work, APP, {"TASKHUB_NAME": HUB}) as (host, azurite):
        hub = TaskHub(host.app_dir / ".durableagent" / f"taskhub-{HUB}.sqlite")
        try:
            yield host, hub, azurite
        finally:
            hub.close()


def warm_up(host: Host, hub: TaskHub) -> None:
    """First invocations import and index code; keep that out of the numbers."""
    host.start_instance("chain10", "warmup-chain", {"start": 0})
    host.start_instance("fan_out", "warmup-fan", {"width": 10})
    code, _ = host.request("POST", f"{WEBHOOK}/entities/counter/warmup?op=add", "1")
    assert code == 202
    hub.wait_completed("warmup-", 2, timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="entity latency samples (default 300; 0 skips)")
    parser.add_argument("--chains", type=int, default=100, help="concurrent 10-activity chains (default 100; 0 skips)")
    parser.add_argument(
        "--fan-out", type=widths, default=[1000], help="fan-out width(s), e.g. 1000 or 100,300,1000,3000 (default 1000)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (host log, task hub)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="devhost-bench-"))
    try:
        with running_host(work) as (host, hub, _):
            warm_up(host, hub)
            entity = bench_entity_latency(host, args.samples) if args.samples > 0 else None
            chain = bench_chain(host, hub, args.chains) if args.chains > 0 else None
            fan_out = [bench_fan_out(host, hub, width) for width in args.fan_out]
    finally:
        if args.keep:
            print(f"work directory (kept): {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    machine = machine_info()
    rows: list[tuple[str, str, str]] = []
    if entity is not None:
        rows.append(
            ("(a) entity signal -> state visible", f"{entity['samples']} samples",
             f"p50 {entity['p50_ms']:.2f} ms, p99 {entity['p99_ms']:.2f} ms "
             f"(mean {entity['mean_ms']:.2f}, max {entity['max_ms']:.2f})")
        )  # fmt: skip
    if chain is not None:
        rows.append(
            ("(b) 10-activity chain", f"{chain['instances']} concurrent",
             f"{chain['instances_per_s']:.1f} instances/s ({chain['activities_per_s']:.0f} activities/s); "
             f"latency mean {chain['mean_latency_ms']:.0f} ms, p99 {chain['p99_latency_ms']:.0f} ms")
        )  # fmt: skip
    for run in fan_out:
        rows.append(
            ("(c) fan-out", f"{run['activities']} activities",
             f"{run['wall_s']:.2f} s start -> completed ({run['activities_per_s']:.0f} activities/s, "
             f"{run['episodes']} episodes)")
        )  # fmt: skip
    exponent = fitted_exponent(fan_out)
    if exponent is not None:
        first, last = min(args.fan_out), max(args.fan_out)
        rows.append(("(c) fan-out growth", f"{first} -> {last}", f"wall ~ N^{exponent:.2f}"))
    columns = [max(len(r[i]) for r in rows) for i in range(2)]
    print(f"devhost benchmark on {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print("host defaults: maxConcurrentActivityFunctions=10, maxConcurrentOrchestratorFunctions=10")
    print(f"command: {command_line(REPO)}")
    print()
    print(f"{'measure'.ljust(columns[0])}  {'load'.ljust(columns[1])}  result")
    print(f"{'-' * columns[0]}  {'-' * columns[1]}  {'-' * 40}")
    for name, load, result in rows:
        print(f"{name.ljust(columns[0])}  {load.ljust(columns[1])}  {result}")
    print()
    results = {
        "machine": machine,
        "entity_latency": entity,
        "chain": chain,
        "fan_out": fan_out,
        "fan_out_exponent": exponent,
    }
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
