"""Every benchmark of issue 13 in one run, and one table of the ratios it asks for.

Run from the repository root through ``./dev bench`` (it creates ``.venv-bench`` with our package and
upstream's, and ``.venv-dbos`` with DBOS Transact), or directly:

    .venv-bench/bin/python benchmarks/bench_all.py [--quick] [--only ours]

It runs, one after the other so that none disturbs another:

1. ``agents_bench.py``: agent turns, ours and upstream's, with the turn's floor, CPU per turn, the
   per-turn cost at 10 and 1,000 prior turns, and many sessions at once;
2. ``devhost_bench.py``: one orchestration fanning out 100, 300, 1,000 and 3,000 activities on the
   local host;
3. ``dbos_bench.py`` in ``.venv-dbos``: the same fan-out in DBOS Transact on SQLite (WAL);
4. ``workflows_bench.py``: a workflow's supersteps, in process with ``FileCheckpointStorage`` and
   durably through the local host, and how soon a waiting start answers after the run settles;
5. ``blob_transport_bench.py``: client CPU per blob call, the SDK's default transport against
   ``StdlibTransport`` and ``BlobRest``;
6. ``split_hosts_bench.py``: many sessions on one host, then on two independent hosts sharing the
   load (an upper bound on what splitting the host over two processes could give on this machine);
7. ``agents_bench.py --only ours`` once more, right after the first, on the code as it was before
   issue 13 (``--before``, a git revision checked out into a temporary worktree, with today's
   benchmark scripts copied in): the many-sessions throughput the 3x row divides by.

Each prints its own table; their outputs are kept under ``--out`` (default a new temporary
directory). Then the table below, each ratio against its budget. The last line is all results as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _benchkit import command_line, machine_info

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
DBOS_PYTHON = REPO / ".venv-dbos" / "bin" / "python"
WIDTHS = (100, 300, 1000, 3000)
QUICK_WIDTHS = (100, 300, 1000)
# main just before issue 13's first change (1ed46b7): the code whose many-sessions throughput it triples.
BEFORE_ISSUE_13 = "25180b7"


@dataclass(frozen=True)
class Step:
    name: str
    argv: list[str]
    tree: Path = REPO  # where it runs, and the package it imports


@contextlib.contextmanager
def tree_at(revision: str, work: Path) -> Iterator[Path | None]:
    """``revision`` checked out in a temporary worktree with today's benchmarks, or None (no git, no such commit)."""
    tree = work / f"tree-{revision}"
    added = subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(tree), revision],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if added.returncode != 0:
        print(f"note: no worktree at {revision}: {added.stderr.decode(errors='replace').strip()}", file=sys.stderr)
        yield None
        return
    try:
        # Today's scripts measure the old package: the same measurement on both sides.
        shutil.rmtree(tree / "benchmarks", ignore_errors=True)
        shutil.copytree(BENCH, tree / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
        if (REPO / "node_modules").exists() and not (tree / "node_modules").exists():
            (tree / "node_modules").symlink_to(REPO / "node_modules")  # the same Azurite
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True, check=False)


def run_step(step: Step, out: Path) -> dict[str, Any]:
    """Run one benchmark, keep its output, and return its JSON last line (or the failure)."""
    log = out / f"{step.name}.txt"
    print(f"== {step.name}: {' '.join(step.argv)}", file=sys.stderr, flush=True)
    began = time.monotonic()
    env = None
    if step.tree != REPO:  # that tree's package, ahead of the venv's editable install of this one
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(step.tree), os.environ.get("PYTHONPATH")])),
        }
    with open(log, "wb") as sink:
        completed = subprocess.run(step.argv, cwd=step.tree, env=env, stdout=subprocess.PIPE, stderr=sink, check=False)
        sink.write(b"\n--- stdout ---\n" + completed.stdout)
    text = completed.stdout.decode("utf-8", "replace").strip()
    seconds = time.monotonic() - began
    if completed.returncode != 0 or not text:
        return {"error": f"exit code {completed.returncode} after {seconds:.0f} s (log: {log})"}
    try:
        result = json.loads(text.splitlines()[-1])
    except json.JSONDecodeError:
        return {"error": f"no JSON last line (log: {log})"}
    result["_seconds"] = seconds
    result["_log"] = str(log)
    return result if isinstance(result, dict) else {"error": f"unexpected JSON (log: {log})"}


def get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def fan_out_walls(result: dict[str, Any]) -> dict[int, float]:
    """Width -> wall seconds, from a ``fan_out`` result that is one run, a list of runs, or a map."""
    found: dict[int, float] = {}
    runs = result.get("fan_out")
    if isinstance(runs, dict) and "activities" in runs:
        runs = [runs]
    if isinstance(runs, dict):
        runs = [{"activities": int(k), **v} if isinstance(v, dict) else {"activities": int(k), "wall_s": v}
                for k, v in runs.items() if str(k).isdigit()]  # fmt: skip
    for run in runs or []:
        if isinstance(run, dict) and isinstance(run.get("activities"), int) and isinstance(run.get("wall_s"), float):
            found[run["activities"]] = run["wall_s"]
    return found


def exponent(walls: dict[int, float]) -> float | None:
    """The growth exponent k in wall ~ n^k between the smallest and the largest width measured."""
    if len(walls) < 2:
        return None
    low, high = min(walls), max(walls)
    if walls[low] <= 0 or walls[high] <= 0:
        return None
    return math.log(walls[high] / walls[low]) / math.log(high / low)


@dataclass(frozen=True)
class Row:
    target: str
    measured: str
    value: float | None
    budget: str
    met: Callable[[float], bool]

    def cells(self) -> tuple[str, str, str, str, str]:
        shown = "n/a" if self.value is None else f"{self.value:.2f}"
        verdict = "n/a" if self.value is None else ("yes" if self.met(self.value) else "no")
        return self.target, self.measured, shown, self.budget, verdict


def _ms(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value:.1f} ms"


def _div(a: Any, b: Any) -> float | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or b == 0:
        return None
    return a / b


def build_rows(results: dict[str, Any], before_label: str) -> list[Row]:
    agents = results.get("agents", {})
    ours, upstream = agents.get("ours", {}), agents.get("upstream", {})
    rows = []
    turn, floor = get(ours, "overhead", "post_p50_ms"), get(ours, "floor", "floor_ms")
    rows.append(Row("1. turn POST->200 p50 / floor", f"{_ms(turn)} / {_ms(floor)}", _div(turn, floor),
                    "<= 2.5", lambda v: v <= 2.5))  # fmt: skip
    cpu_ours, cpu_up = get(ours, "cpu", "cpu_ms_net"), get(upstream, "cpu", "cpu_ms_net")
    rows.append(Row("1. host+Azurite CPU per turn (rest subtracted), ours / upstream",
                    f"{_ms(cpu_ours)} / {_ms(cpu_up)}", _div(cpu_ours, cpu_up),
                    "<= 1.0", lambda v: v <= 1.0))  # fmt: skip
    raw_ours, raw_up = get(ours, "cpu", "cpu_ms"), get(upstream, "cpu", "cpu_ms")
    rows.append(Row("   host+Azurite CPU per turn (all of it), ours / upstream", f"{_ms(raw_ours)} / {_ms(raw_up)}",
                    _div(raw_ours, raw_up), "(info)", lambda v: True))  # fmt: skip
    small, large = get(ours, "small", "post_p50_ms"), get(ours, "large", "post_p50_ms")
    at_small, at_large = get(ours, "small", "prior_turns"), get(ours, "large", "prior_turns")
    rows.append(Row(f"1. p50 at {at_large} prior turns / at {at_small}", f"{_ms(large)} / {_ms(small)}",
                    _div(large, small), "<= 1.2", lambda v: v <= 1.2))  # fmt: skip
    many, many_up = get(ours, "many", "turns_per_second"), get(upstream, "many", "turns_per_second")
    before = get(results.get("before", {}), "ours", "many", "turns_per_second")
    rows.append(Row(f"1. many sessions turns/s, ours / before issue 13 ({before_label})",
                    f"{_num(many)} / {_num(before)}", _div(many, before), ">= 3.0", lambda v: v >= 3.0))  # fmt: skip
    rows.append(Row("   many sessions turns/s, ours / upstream", f"{_num(many)} / {_num(many_up)}",
                    _div(many, many_up), "(info)", lambda v: True))  # fmt: skip
    rows.extend(capacity_rows(get(ours, "many") or {}, get(results.get("before", {}), "ours", "many") or {}))
    split = results.get("split", {})
    one, two = get(split, "summary", "1", "turns_per_second"), get(split, "summary", "2", "turns_per_second")
    busy = get(split, "summary", "2", "cores_busy")
    rows.append(Row("   many sessions, two independent hosts / one (the most splitting the host could give)",
                    f"{_num(two)} / {_num(one)}, {_num(busy)} of {os.cpu_count()} CPUs busy", _div(two, one),
                    "(info)", lambda v: True))  # fmt: skip
    walls = fan_out_walls(results.get("devhost", {}))
    k = exponent(walls)
    shown = ", ".join(f"{w}: {s:.2f} s" for w, s in sorted(walls.items())) or "n/a"
    rows.append(Row(f"2. fan-out growth exponent ({shown})", "wall ~ n^k", k, "<= 1.2", lambda v: v <= 1.2))
    dbos = fan_out_walls(results.get("dbos", {}))
    ours_1000, dbos_1000 = walls.get(1000), dbos.get(1000)
    rows.append(Row("2. fan-out of 1,000, ours / DBOS on SQLite (WAL)",
                    f"{_num(ours_1000, 's')} / {_num(dbos_1000, 's')}", _div(ours_1000, dbos_1000),
                    "<= 1.5", lambda v: v <= 1.5))  # fmt: skip
    dbos_k = exponent(dbos)
    rows.append(Row("   DBOS fan-out growth exponent", "wall ~ n^k", dbos_k, "(info)", lambda v: True))
    workflows = results.get("workflows", {})
    durable = get(workflows, "durable", "per_superstep_ms_p50")
    local = get(workflows, "in_process", "per_superstep_ms_p50")
    rows.append(Row("3. workflow superstep, durable / in-process FileCheckpointStorage",
                    f"{_ms(durable)} / {_ms(local)}", _div(durable, local), "<= 10", lambda v: v <= 10))  # fmt: skip
    lag, lag_max = get(workflows, "durable", "wait_lag_ms_p50"), get(workflows, "durable", "wait_lag_ms_max")
    rows.append(Row("3. waiting start: answer after the run settled, p50 (ms)", f"max {_ms(lag_max)}",
                    lag, "<= 20", lambda v: v <= 20))  # fmt: skip
    blobs = results.get("blob_transport", {})
    for call in ("put 1 KB", "list, nothing found"):
        default = get(blobs, call, "default_cpu_ms")
        for client, label in (("transport", "the SDK on StdlibTransport"), ("rest", "BlobRest")):
            mine = get(blobs, call, f"{client}_cpu_ms")
            rows.append(Row(f"   blob {call}: client CPU, {label} / the SDK's default",
                            f"{_num(mine, 'ms')} / {_num(default, 'ms')}", _div(mine, default), "(info)",
                            lambda v: True))  # fmt: skip
    return rows


def capacity_rows(many: dict[str, Any], before: dict[str, Any]) -> list[Row]:
    """What three times the old throughput asks of this machine, from the same many-sessions runs.

    One host process runs on one GIL, so its CPU per turn caps its rate; and the host, Azurite and
    the load generator share the machine's CPUs, so their CPU per turn, times the rate, is the cores
    that rate keeps busy.
    """
    host, before_host = many.get("host_cpu_ms"), before.get("host_cpu_ms")
    rows = [Row("   many sessions: host CPU per turn, ours / before issue 13",
                f"{_num(host, 'ms')} / {_num(before_host, 'ms')}", _div(host, before_host), "(info)",
                lambda v: True)]  # fmt: skip
    parts = [many.get(k) for k in ("host_cpu_ms", "azurite_cpu_ms", "client_cpu_ms")]
    numbers = [p for p in parts if isinstance(p, int | float)]
    machine = sum(numbers) if len(numbers) == len(parts) else None
    rate = before.get("turns_per_second")
    target = 3 * rate if isinstance(rate, int | float) else None
    cores = machine * target / 1000 if machine is not None and target is not None else None
    rows.append(Row("   cores 3x would keep busy: (host + Azurite + load generator CPU per turn) x 3 x before",
                    f"{_num(machine, 'ms')} x {_num(target)}/s, of {many.get('cpus', 'n/a')} CPUs", cores,
                    "(info)", lambda v: True))  # fmt: skip
    return rows


def _num(value: Any, unit: str = "") -> str:
    if not isinstance(value, int | float):
        return "n/a"
    return f"{value:.2f} {unit}".strip() if unit else f"{value:.1f}"


def print_table(rows: list[Row]) -> None:
    headers = ("target", "measured", "ratio", "budget", "met")
    cells = [r.cells() for r in rows]
    widths = [max(len(headers[i]), *(len(c[i]) for c in cells)) for i in range(5)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (fan-out to 1,000; 50 sessions)")
    parser.add_argument("--only", choices=("ours",), help="ours alone: no upstream, no DBOS")
    parser.add_argument("--out", type=Path, help="where to keep each benchmark's output")
    parser.add_argument(
        "--before",
        default=BEFORE_ISSUE_13,
        help=f"git revision of the code before issue 13, for the 3x row (default {BEFORE_ISSUE_13}; 'none' skips it)",
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-all-"))
    out.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    widths = QUICK_WIDTHS if args.quick else WIDTHS
    agents_argv = [python, str(BENCH / "agents_bench.py")]
    if args.quick:
        agents_argv += ["--large", "200", "--sessions", "50"]
    if args.only:
        agents_argv += ["--only", args.only]
    fan = ",".join(str(w) for w in widths)
    steps = [
        Step("agents", agents_argv),
        Step("devhost", [python, str(BENCH / "devhost_bench.py"), "--samples", "100", "--fan-out", fan]),
        Step("workflows", [python, str(BENCH / "workflows_bench.py")]),
        Step("blob_transport", [python, str(BENCH / "blob_transport_bench.py")]),
        Step("split", [python, str(BENCH / "split_hosts_bench.py"), *(["--sessions", "50"] if args.quick else [])]),
    ]
    if not args.only:
        if DBOS_PYTHON.exists():
            steps.append(Step("dbos", [str(DBOS_PYTHON), str(BENCH / "dbos_bench.py"), "--fan-out", fan]))
        else:
            print(f"note: {DBOS_PYTHON} missing (./dev bench creates it): no DBOS run", file=sys.stderr)

    began = time.monotonic()
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        before_tree = None if args.before == "none" else stack.enter_context(tree_at(args.before, out))
        if before_tree is not None:
            # Right after ours, so that both see the machine as it is in the same minutes.
            before_argv = [python, str(before_tree / "benchmarks" / "agents_bench.py"), *agents_argv[2:]]
            if "--only" not in before_argv:
                before_argv += ["--only", "ours"]
            steps.insert(1, Step("before", before_argv, before_tree))
        for step in steps:
            results[step.name] = run_step(step, out)
    elapsed = time.monotonic() - began

    machine = machine_info()
    print(f"bench_all on {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print(f"command: {command_line(REPO)}")
    print(f"outputs: {out}")
    print()
    for step in steps:
        error = results[step.name].get("error")
        print(f"{step.name}: {'FAILED: ' + error if error else 'ok'} ({results[step.name].get('_log', '')})")
    print()
    print_table(build_rows(results, args.before))
    print()
    print(f"total time: {elapsed:.0f} s")
    print(json.dumps({"machine": machine, **results}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
