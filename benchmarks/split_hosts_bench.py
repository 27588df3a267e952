"""Many sessions on one host, then on two independent hosts side by side: what splitting could buy.

Run from the repository root (``./dev bench`` runs it; ``.venv-bench`` has our package):

    .venv-bench/bin/python benchmarks/split_hosts_bench.py

The local host runs the worker in the host's own process (DESIGN §5), so under many sessions it
runs on one GIL. This measures the most a host split over two processes could give on this machine:
two whole hosts of ``apps/agents_ours``, each with its own task hub, on one in-memory Azurite,
share the same load (S sessions x T waiting turns from C client threads, the clients split evenly).
Two hosts that share nothing but Azurite pay no cost of coordinating, so their throughput is an
upper bound for any split of one host; their CPU per turn, against the machine's CPUs, shows what
bounds it. One and two hosts are run in alternation, ``--rounds`` times each: each time new hosts,
one unmeasured round of the load to warm them, then the measured round, on fresh sessions.

The last line of stdout is the results as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _benchkit import command_line, machine_info
from agents_bench import OURS, Runner, many_sessions, progress, running
from devhost_bench import free_ports

from durableagent.devhost._azurite import AzuritePorts, AzuriteProcess


@contextlib.contextmanager
def hosts(count: int, work: Path, azurite: AzuriteProcess) -> Iterator[list[Runner]]:
    """``count`` hosts of the benchmark app, each with its own copy of the app and its own task hub."""
    with contextlib.ExitStack() as stack:
        runners = [stack.enter_context(running(OURS, work, azurite, 100, f"ours{count}x{i}")) for i in range(count)]
        for runner in runners:
            runner.measure("warmup", 3, 1)  # first invocations import and index code
        yield runners


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="sessions per round (default 200)")
    parser.add_argument("--turns", type=int, default=5, help="waiting turns per session (default 5)")
    parser.add_argument("--clients", type=int, default=16, help="client threads, split over the hosts (default 16)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each, in alternation (default 2)")
    args = parser.parse_args()

    results: dict[str, list[dict[str, Any]]] = {"1": [], "2": []}
    work = Path(tempfile.mkdtemp(prefix="split-bench-"))
    try:
        azurite = AzuriteProcess(work / "azurite", ports=AzuritePorts(*free_ports(3)), in_memory=True)
        azurite.start()
        try:
            for round_number in range(args.rounds):
                for count in (1, 2):
                    progress(f"round {round_number + 1}: {count} host(s)")
                    with hosts(count, work / f"r{round_number}", azurite) as runners:
                        # A host's first load runs slower (lazy imports, first blobs of a container):
                        # one round unmeasured, then the measured one on fresh sessions.
                        for prefix in (f"warm{round_number}-", f"split{round_number}-"):
                            run = many_sessions(runners, args.sessions, args.turns, args.clients, azurite.pid, prefix)
                        results[str(count)].append(run)
        finally:
            azurite.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary: dict[str, Any] = {}
    for count, runs in results.items():
        rates = [r["turns_per_second"] for r in runs if r["turns_per_second"]]
        busy = [r["cores_busy"] for r in runs if r["cores_busy"] is not None]
        summary[count] = {
            "turns_per_second": statistics.median(rates) if rates else None,
            "cores_busy": statistics.median(busy) if busy else None,
            "failed": sum(r["failed"] for r in runs),
        }
    one, two = summary["1"]["turns_per_second"], summary["2"]["turns_per_second"]
    summary["two_over_one"] = two / one if one and two else None

    machine = machine_info()
    print(f"split hosts benchmark on {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print(f"command: {command_line(Path(__file__).resolve().parents[1])}")
    print(f"{args.sessions} sessions x {args.turns} waiting turns from {args.clients} clients; in-memory Azurite")
    print()
    print("| hosts | round | turns/s | p50 ms | host CPU ms/turn | Azurite | load generator | cores busy | failed |")
    print("|-------|-------|---------|--------|------------------|---------|----------------|------------|--------|")
    for count, runs in results.items():
        for number, run in enumerate(runs, 1):
            cells = [run["turns_per_second"], run["post_p50_ms"], run["host_cpu_ms"], run["azurite_cpu_ms"],
                     run["client_cpu_ms"], run["cores_busy"]]  # fmt: skip
            shown = ["n/a" if c is None else f"{c:.2f}" for c in cells]
            print(f"| {count} | {number} | " + " | ".join(shown) + f" | {run['failed']} |")
    print()
    ratio = summary["two_over_one"]
    print(f"two hosts / one (median turns/s): {'n/a' if ratio is None else f'{ratio:.2f}'}")
    print(json.dumps({"machine": machine, "runs": results, "summary": summary}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
