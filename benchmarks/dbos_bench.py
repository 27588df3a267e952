"""DBOS Transact on a SQLite system database (WAL), measured on this machine: the reference for the
local durable host's fan-out and chain numbers (``devhost_bench.py``).

Run from the repository root, in the venv ``./dev bench`` creates from ``benchmarks/requirements-dbos.txt``:

    .venv-dbos/bin/python benchmarks/dbos_bench.py --fan-out 100,300,1000,3000

DBOS does not switch its SQLite system database to WAL (it sets only ``busy_timeout`` and foreign keys
on each connection), so this script creates the file with ``PRAGMA journal_mode=WAL`` before DBOS
opens it; the mode is stored in the file, so every DBOS connection uses it (the JSON reports the mode
read back after the run). The workloads are what ``devhost_bench.py`` runs on the local host:

(c) fan-out: one async workflow starts N async steps (``value + 1``) with ``asyncio.create_task`` in
    a fixed order and awaits them with ``asyncio.gather``, DBOS's documented way to run steps in
    parallel; wall time from starting the workflow to its result. One workflow per width, in turn;
    with several widths, the fitted exponent k of wall ~ N^k between the smallest and the largest.
(b) 10-step chain: N workflows (100 by default) started at once, each running 10 steps one after the
    other; workflows/s and steps/s, and each workflow's latency from its start to its result.

It prints a table, the command, and as the last line of stdout the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _benchkit import command_line, machine_info, widths
from dbos import DBOS, DBOSConfig

CHAIN_LENGTH = 10


@DBOS.step()
async def inc(value: int) -> int:
    return value + 1


@DBOS.workflow()
async def fan_out(width: int) -> int:
    # Started in a fixed order (DBOS numbers steps as they start), then gathered.
    tasks = [asyncio.create_task(inc(i)) for i in range(width)]
    return sum(await asyncio.gather(*tasks))


@DBOS.workflow()
async def chain10(start: int) -> int:
    acc = start
    for _ in range(CHAIN_LENGTH):
        acc = await inc(acc)
    return acc


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def create_wal_database(path: Path) -> str:
    """Create the system database file in WAL mode (persistent in the file); return the mode set."""
    with sqlite3.connect(path) as db:
        mode = str(db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
    return mode


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])


async def bench_fan_out(width: int) -> dict[str, float]:
    began = time.perf_counter()
    handle = await DBOS.start_workflow_async(fan_out, width)
    result = await handle.get_result()
    wall = time.perf_counter() - began
    if result != width * (width + 1) // 2:
        raise RuntimeError(f"wrong fan-out result: {result}")
    return {"activities": width, "wall_s": wall, "activities_per_s": width / wall}


async def bench_chain(count: int) -> dict[str, float]:
    async def one(index: int) -> float:
        began = time.perf_counter()
        handle = await DBOS.start_workflow_async(chain10, index)
        result = await handle.get_result()
        if result != index + CHAIN_LENGTH:
            raise RuntimeError(f"wrong chain result: {result}")
        return (time.perf_counter() - began) * 1000

    began = time.perf_counter()
    latencies = await asyncio.gather(*(one(i) for i in range(count)))
    wall = time.perf_counter() - began
    return {
        "instances": count,
        "steps_per_instance": CHAIN_LENGTH,
        "wall_s": wall,
        "instances_per_s": count / wall,
        "steps_per_s": count * CHAIN_LENGTH / wall,
        "mean_latency_ms": statistics.fmean(latencies),
        "p50_latency_ms": percentile(latencies, 50),
        "p99_latency_ms": percentile(latencies, 99),
    }


def fitted_exponent(runs: list[dict[str, float]]) -> float | None:
    """k in wall ~ N^k between the smallest and the largest width (None with one width)."""
    if len(runs) < 2:
        return None
    small = min(runs, key=lambda r: r["activities"])
    large = max(runs, key=lambda r: r["activities"])
    return math.log(large["wall_s"] / small["wall_s"]) / math.log(large["activities"] / small["activities"])


async def run(args: argparse.Namespace, database: Path) -> dict[str, Any]:
    config: DBOSConfig = {"name": "dbos-bench", "system_database_url": f"sqlite:///{database}", "log_level": "WARNING"}
    DBOS(config=config)
    DBOS.launch()
    try:
        # First runs import and warm up code paths; keep that out of the numbers.
        await bench_fan_out(10)
        await bench_chain(2)
        chain = await bench_chain(args.chains) if args.chains > 0 else None
        fan = [await bench_fan_out(width) for width in args.fan_out]
    finally:
        DBOS.destroy()
    return {"chain": chain, "fan_out": fan}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=100, help="concurrent 10-step chains (default 100; 0 skips)")
    parser.add_argument(
        "--fan-out", type=widths, default=[1000], help="fan-out width(s), e.g. 1000 or 100,300,1000,3000 (default 1000)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the system database)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dbos-bench-"))
    database = work / "dbos.sqlite"
    try:
        create_wal_database(database)
        results = asyncio.run(run(args, database))
        mode = journal_mode(database)
    finally:
        if args.keep:
            print(f"work directory (kept): {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    machine = machine_info()
    chain, fan = results["chain"], results["fan_out"]
    exponent = fitted_exponent(fan)
    rows: list[tuple[str, str, str]] = []
    if chain is not None:
        rows.append(
            ("(b) 10-step chain", f"{chain['instances']} concurrent",
             f"{chain['instances_per_s']:.1f} workflows/s ({chain['steps_per_s']:.0f} steps/s); "
             f"latency mean {chain['mean_latency_ms']:.0f} ms, p99 {chain['p99_latency_ms']:.0f} ms")
        )  # fmt: skip
    for run_ in fan:
        rows.append(
            ("(c) fan-out", f"{run_['activities']} steps",
             f"{run_['wall_s']:.2f} s start -> result ({run_['activities_per_s']:.0f} steps/s)")
        )  # fmt: skip
    if exponent is not None:
        rows.append(("(c) fan-out growth", f"{min(args.fan_out)} -> {max(args.fan_out)}", f"wall ~ N^{exponent:.2f}"))
    columns = [max(len(r[i]) for r in rows) for i in range(2)]
    print(
        f"DBOS Transact {version('dbos')} on {machine['platform']}, {machine['cpus']} CPUs, "
        f"Python {machine['python']}; SQLite system database, journal_mode={mode}"
    )
    print(f"command: {command_line(Path(__file__).resolve().parents[1])}")
    print()
    print(f"{'measure'.ljust(columns[0])}  {'load'.ljust(columns[1])}  result")
    print(f"{'-' * columns[0]}  {'-' * columns[1]}  {'-' * 40}")
    for name, load, result in rows:
        print(f"{name.ljust(columns[0])}  {load.ljust(columns[1])}  {result}")
    print()
    print(
        json.dumps(
            {
                "machine": machine,
                "dbos": version("dbos"),
                "journal_mode": mode,
                "chain": chain,
                "fan_out": fan,
                "fan_out_exponent": exponent,
            },
            separators=(",", ":"),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
