"""Agent turns on the local host: durableagent against upstream agent-framework-azurefunctions.

Run from the repository root (``./dev bench`` creates ``.venv-bench`` with both packages):

    .venv-bench/bin/python benchmarks/agents_bench.py

Both apps (``benchmarks/apps/agents_ours`` and ``benchmarks/apps/agents_upstream``) host one agent,
``bench``, on a zero-latency in-process model that echoes the last user message, so every number is
framework and host cost. Each app runs in its own ``python -m durableagent.devhost`` subprocess
(one after the other, never at the same time) against one in-memory Azurite on free ports. Measured:

(a) import time of each ``function_app.py`` and of each package alone: a fresh interpreter per
    sample, median of 5 after one warm-up, and the number of modules in ``sys.modules`` afterwards;
(b) per-turn overhead: ``POST /api/agents/bench/run`` waiting for the answer, until the 200, over
    the first N turns of a fresh session (p50, p99);
(c) per-turn cost at 10 and at 1,000 prior turns: M sessions are driven to 10 turns and one to
    1,000 (fire-and-forget requests, 202); then M waiting turns at each level are measured in
    alternation (one on each small session, one on the large session), so both levels see the same
    load. Each measured turn gives the POST->200 time and the entity commit time (POST sent ->
    the host commits the entity's new state; the commit timestamp is read from the task hub), which
    leaves out how the HTTP function waits (upstream sleeps 1 s before each read of the state).
    The entity state is read through the durable webhook
    ``GET /runtime/webhooks/durabletask/entities/<entity>/<key>`` and its size reported;
(d) the physical floor of a turn (ours only, DESIGN §7): one 1 KB blob PUT to the same Azurite plus
    one loopback HTTP hop (``GET /api/bench/ping``, a trivial function on the same host), one sample
    of each after every fresh-session turn so that both see the same load; floor = p50 PUT + p50 hop,
    and the table shows turn p50 / floor.

(e) CPU per turn: host and Azurite CPU time (every thread of each process tree, from
    ``/proc/<pid>/task/*/schedstat``) over K waiting turns of a fresh session, nothing else running;
(f) many sessions: S sessions x T waiting turns from C client threads at once (turns/s, p50, CPU
    per turn).

If driving a session to 1,000 turns would overrun the time budget, that side is measured at the
turn count it reached, and the table says so. Failures (a non-200 answer, a crash) are reported in
the table, not raised. The last line of stdout is the results as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from _benchkit import command_line, machine_info
from devhost_bench import REPO, WEBHOOK, Host, free_ports, percentile

from durableagent.devhost._azurite import AzuritePorts, AzuriteProcess

APPS = REPO / "benchmarks" / "apps"
AGENT = "bench"
RUN_PATH = f"/api/agents/{AGENT}/run"
PING_PATH = "/api/bench/ping"  # the trivial HTTP function of apps/agents_ours: the floor's loopback hop
FLOOR_BLOB_BYTES = 1024
HTTP_TIMEOUT = 120.0  # upstream waits up to 30 x (1 s + a read): above http.client's usual 30 s
IMPORT_RUNS = 5
IDLE_SECONDS = 5.0  # the host's and Azurite's CPU at rest, measured before the CPU turns

_IMPORT_PROBE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
began = time.perf_counter()
for name in sys.argv[2:]:
    __import__(name)
print(json.dumps({"seconds": time.perf_counter() - began, "modules": len(sys.modules)}))
"""


# The two sides ------------------------------------------------------------------------------------


def _ours_turns(state: Any) -> int:
    return int(state.get("turns", 0)) if isinstance(state, dict) else 0


def _upstream_turns(state: Any) -> int:
    if not isinstance(state, dict):
        return 0
    history = (state.get("data") or {}).get("conversationHistory") or []
    return sum(1 for entry in history if isinstance(entry, dict) and entry.get("$type") == "response")


@dataclass(frozen=True)
class Side:
    """One package under test: its app, its request shape and how to read its entity state."""

    key: str
    label: str
    app: Path
    package: str  # the module ``import`` times alone
    entity: str  # entity name as the webhook and the task hub know it
    session_field: str
    turns: Callable[[Any], int]

    def body(self, message: str, session: str, wait: bool) -> dict[str, Any]:
        return {"message": message, self.session_field: session, "wait_for_response": wait}


OURS = Side("ours", "durableagent", APPS / "agents_ours", "durableagent", f"agent-{AGENT}", "sessionId", _ours_turns)
UPSTREAM = Side(
    "upstream",
    "agent-framework-azurefunctions",
    APPS / "agents_upstream",
    "agent_framework_azurefunctions",
    f"dafx-{AGENT}",
    "session_id",
    _upstream_turns,
)


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


# (a) import time ----------------------------------------------------------------------------------


def _probe(app_dir: Path, modules: list[str]) -> dict[str, Any]:
    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true", "PYTHONDONTWRITEBYTECODE": ""}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, str(app_dir), *modules],
        cwd=str(app_dir), env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"importing {modules} failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def import_times(probes: dict[str, tuple[Path, list[str]]], runs: int = IMPORT_RUNS) -> dict[str, Any]:
    """Per probe: median wall time of its imports in a fresh interpreter, and the module count.

    Byte-code caching is on (as in Azure); one uncounted run per probe writes the caches. The
    probes take turns, round by round, so that drift in the machine's load hits all of them alike.
    """
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in probes}
    failed: dict[str, str] = {}
    for index in range(runs + 1):
        for name, (app_dir, modules) in probes.items():
            if name in failed:
                continue
            try:
                sample = _probe(app_dir, modules)
            except Exception as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            if index:
                samples[name].append(sample)
    results: dict[str, Any] = {name: {"error": error} for name, error in failed.items()}
    for name, taken in samples.items():
        if name not in failed:
            results[name] = {
                "seconds": statistics.median(s["seconds"] for s in taken),
                "modules": int(statistics.median(s["modules"] for s in taken)),
                "runs": runs,
            }
    return results


# (b), (c) turns over HTTP ---------------------------------------------------------------------------


class BenchHost(Host):
    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


@dataclass
class Turn:
    status: int
    post_ms: float
    commit_ms: float | None
    error: str | None = None


@dataclass
class Level:
    """Turns measured on a session that already had ``prior`` turns."""

    prior: int
    state_bytes: int
    turns: list[Turn] = field(default_factory=list)

    def ok(self) -> list[Turn]:
        return [t for t in self.turns if t.status == 200]

    def summary(self) -> dict[str, Any]:
        ok = self.ok()
        post = [t.post_ms for t in ok]
        commit = [t.commit_ms for t in ok if t.commit_ms is not None]
        return {
            "prior_turns": self.prior,
            "state_bytes": self.state_bytes,
            "measured": len(self.turns),
            "failed": len(self.turns) - len(ok),
            "errors": sorted({t.error for t in self.turns if t.error}),
            "post_p50_ms": percentile(post, 50) if post else None,
            "post_p99_ms": percentile(post, 99) if post else None,
            "post_mean_ms": statistics.fmean(post) if post else None,
            "commit_p50_ms": percentile(commit, 50) if commit else None,
            "commit_p99_ms": percentile(commit, 99) if commit else None,
        }


class Runner:
    """Drives one side's host: sends turns, reads the entity state and the task hub's commit times."""

    def __init__(self, side: Side, host: BenchHost, hub: Path, message_chars: int) -> None:
        self.side = side
        self.host = host
        self._hub_path = hub
        self._hub: sqlite3.Connection | None = None
        self._conn = host.connect()
        self._message_chars = message_chars

    def close(self) -> None:
        self._conn.close()
        if self._hub is not None:
            self._hub.close()

    def message(self, session: str, number: int) -> str:
        head = f"{session} turn {number:05d}: "
        return head + ("lorem ipsum dolor sit amet " * 40)[: max(0, self._message_chars - len(head))]

    def post(self, session: str, number: int, wait: bool) -> tuple[int, bytes]:
        body = json.dumps(self.side.body(self.message(session, number), session, wait)).encode()
        try:
            self._conn.request("POST", RUN_PATH, body=body, headers={"Content-Type": "application/json"})
            response = self._conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = self.host.connect()
            raise

    def entity_state(self, session: str) -> tuple[Any, int]:
        """The entity state (parsed) and its size in bytes, through the durable webhook."""
        code, raw = self.host.request("GET", f"{WEBHOOK}/entities/{self.side.entity}/{session}")
        if code == 404:
            return None, 0
        if code != 200:
            raise RuntimeError(f"reading entity state answered {code}: {raw[:200]!r}")
        state = json.loads(raw)
        if isinstance(state, str):  # a state stored as a JSON string of JSON
            state = json.loads(state)
        return state, len(raw)

    def turn_count(self, session: str) -> int:
        return self.side.turns(self.entity_state(session)[0])

    def committed_at(self, session: str) -> float | None:
        """When the host last committed this session's entity (the task hub's own timestamp)."""
        if self._hub is None:
            self._hub = sqlite3.connect(f"file:{self._hub_path}?mode=ro", uri=True)
        row = self._hub.execute(
            "SELECT last_modified FROM entities WHERE entity_id = ?", (f"@{self.side.entity}@{session}",)
        ).fetchone()
        return float(row[0]) if row else None

    def waiting_turn(self, session: str, number: int) -> Turn:
        sent = time.time()
        began = time.perf_counter()
        try:
            code, raw = self.post(session, number, wait=True)
        except (OSError, http.client.HTTPException) as exc:
            return Turn(0, (time.perf_counter() - began) * 1000, None, f"{type(exc).__name__}: {exc}")
        post_ms = (time.perf_counter() - began) * 1000
        if code != 200:
            return Turn(code, post_ms, None, f"HTTP {code}: {_short(raw)}")
        committed = self.committed_at(session)
        commit_ms = (committed - sent) * 1000 if committed is not None and committed >= sent else None
        return Turn(code, post_ms, commit_ms)

    def measure(
        self, session: str, count: int, first_number: int, between: Callable[[], None] | None = None
    ) -> list[Turn]:
        turns = []
        for i in range(count):
            turns.append(self.waiting_turn(session, first_number + i))
            if between is not None:
                between()
        return turns

    def drive(self, session: str, target: int, deadline: float, chunk: int = 50) -> int:
        """Add turns with fire-and-forget requests until ``target`` or ``deadline``; the turns reached."""
        reached = self.turn_count(session)
        while reached < target and time.monotonic() < deadline:
            batch = min(chunk, target - reached)
            for i in range(batch):
                code, raw = self.post(session, reached + i + 1, wait=False)
                if code != 202:
                    raise RuntimeError(f"fire-and-forget run answered {code}: {_short(raw)}")
            goal = reached + batch
            settle = time.monotonic() + 300
            while True:
                reached = self.turn_count(session)
                if reached >= goal:
                    break
                if time.monotonic() > settle:
                    raise RuntimeError(f"{goal - reached} fire-and-forget turns not done after 300 s")
                time.sleep(0.2)
        return reached


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the host may run its worker in a child process)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                queue.extend(int(child) for child in (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int | None) -> float:
    """CPU time used so far by every thread of ``pid``'s process tree (ns precision where the kernel has it)."""
    if pid is None:
        return 0.0
    total = 0
    for member in _tree(pid):
        for task in Path(f"/proc/{member}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


class CpuMeter:
    """Host and Azurite CPU over a stretch of turns (the hosts' summed when there are several)."""

    def __init__(self, host_pid: int | list[int | None] | None, azurite_pid: int | None) -> None:
        self._hosts = host_pid if isinstance(host_pid, list) else [host_pid]
        self._azurite = azurite_pid
        self._start = self._now()

    def _now(self) -> tuple[float, float]:
        return sum(cpu_seconds(p) for p in self._hosts), cpu_seconds(self._azurite)

    def per_turn_ms(self, turns: int) -> dict[str, float | None]:
        host, azurite = (now - start for now, start in zip(self._now(), self._start, strict=True))
        if turns <= 0:
            return {"host_cpu_ms": None, "azurite_cpu_ms": None, "cpu_ms": None}
        return {
            "host_cpu_ms": host * 1000 / turns,
            "azurite_cpu_ms": azurite * 1000 / turns,
            "cpu_ms": (host + azurite) * 1000 / turns,
        }


def many_sessions(
    runner: Runner | list[Runner],
    sessions: int,
    turns: int,
    clients: int,
    azurite_pid: int | None,
    prefix: str = "many",
) -> dict[str, Any]:
    """``sessions`` x ``turns`` waiting turns from ``clients`` threads, each on its own connection.

    With several runners (hosts), client ``i`` sends to host ``i`` modulo their number.
    """
    runners = runner if isinstance(runner, list) else [runner]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        mine = runners[index % len(runners)]
        conn = mine.host.connect()
        try:
            for session in range(index, sessions, clients):
                name = f"{prefix}{session}"
                for number in range(1, turns + 1):
                    body = json.dumps(mine.side.body(mine.message(name, number), name, True))
                    began = time.perf_counter()
                    try:
                        conn.request("POST", RUN_PATH, body=body.encode(), headers={"Content-Type": "application/json"})
                        response = conn.getresponse()
                        raw = response.read()
                    except (OSError, http.client.HTTPException) as exc:
                        conn.close()
                        conn = mine.host.connect()
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    with lock:
                        if response.status == 200:
                            latencies.append((time.perf_counter() - began) * 1000)
                        else:
                            errors.append(f"HTTP {response.status}: {_short(raw)}")
        finally:
            conn.close()

    meter = CpuMeter([r.host.pid for r in runners], azurite_pid)
    # This process's own CPU (not its children): the load generator's share of the machine.
    client_began = time.process_time()
    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    client_cpu = time.process_time() - client_began
    cpu = meter.per_turn_ms(len(latencies))
    client_ms = client_cpu * 1000 / len(latencies) if latencies else None
    busy = None
    if wall > 0 and cpu["cpu_ms"] is not None and client_ms is not None:
        # Every process of the run (host(s), Azurite, this load generator): CPUs kept busy on average.
        busy = (cpu["cpu_ms"] + client_ms) * len(latencies) / 1000 / wall
    return {
        "hosts": len(runners),
        "sessions": sessions,
        "turns_per_session": turns,
        "clients": clients,
        "ok": len(latencies),
        "failed": len(errors),
        "errors": sorted(set(errors))[:5],
        "seconds": wall,
        "turns_per_second": len(latencies) / wall if wall > 0 else None,
        "post_p50_ms": percentile(latencies, 50) if latencies else None,
        "post_p99_ms": percentile(latencies, 99) if latencies else None,
        **cpu,
        "client_cpu_ms": client_ms,
        "cores_busy": busy,
        "cpus": os.cpu_count(),
    }


class Floor:
    """A turn's physical floor, sampled beside the turns: one 1 KB blob PUT + one loopback HTTP hop."""

    def __init__(self, runner: Runner, connection_string: str) -> None:
        from azure.storage.blob import BlobServiceClient

        self._runner = runner
        self._conn = runner.host.connect()  # kept alive, as the client's turn connection is
        self._container = BlobServiceClient.from_connection_string(connection_string).get_container_client(
            "bench-floor"
        )
        with contextlib.suppress(Exception):
            self._container.create_container()
        self._data = os.urandom(FLOOR_BLOB_BYTES // 2).hex().encode()
        self.puts: list[float] = []
        self.hops: list[float] = []
        self.errors: list[str] = []

    def close(self) -> None:
        self._conn.close()
        self._container.close()

    def sample(self) -> None:
        try:
            began = time.perf_counter()
            self._container.upload_blob(f"floor/{len(self.puts) % 10}.json", self._data, overwrite=True)
            self.puts.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            self._conn.request("GET", PING_PATH)
            response = self._conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{PING_PATH} answered {response.status}")
            self.hops.append((time.perf_counter() - began) * 1000)
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self._conn.close()
            self._conn = self._runner.host.connect()

    def summary(self) -> dict[str, Any]:
        if not self.puts or not self.hops:
            return {"errors": sorted(set(self.errors)) or ["no samples"]}
        put, hop = percentile(self.puts, 50), percentile(self.hops, 50)
        return {
            "samples": min(len(self.puts), len(self.hops)),
            "put_p50_ms": put,
            "hop_p50_ms": hop,
            "floor_ms": put + hop,
            "errors": sorted(set(self.errors)),
        }


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _short(raw: bytes, limit: int = 160) -> str:
    text = raw.decode("utf-8", "replace").replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


@contextlib.contextmanager
def running(
    side: Side, work: Path, azurite: AzuriteProcess, message_chars: int, name: str | None = None
) -> Iterator[Runner]:
    """A host of ``side``'s app, copied to ``work / name`` (default: the side's key), with a task hub of its own."""
    name = name or side.key  # letters and digits: it names the task hub too
    app_dir = Path(shutil.copytree(side.app, work / name, ignore=shutil.ignore_patterns(".durableagent")))
    hub = f"AgentsBench{name.capitalize()}"
    env = {"AzureWebJobsStorage": azurite.connection_string, "TASKHUB_NAME": hub}
    host = BenchHost(app_dir, free_ports(1)[0], env)
    host.start(timeout=120)
    runner = Runner(side, host, app_dir / ".durableagent" / f"taskhub-{hub}.sqlite", message_chars)
    try:
        yield runner
    finally:
        runner.close()
        host.stop()


def bench_side(side: Side, args: argparse.Namespace, work: Path, azurite: AzuriteProcess) -> dict[str, Any]:
    result: dict[str, Any] = {"label": side.label}
    began = time.monotonic()
    try:
        with running(side, work, azurite, args.message_chars) as runner:
            result["host_log"] = str(runner.host.log_path)
            warm = runner.measure("warmup", 2, 1)  # first invocations import and index code
            result["warmup_failed"] = sum(1 for t in warm if t.status != 200)

            progress(f"{side.label}: {args.overhead_turns} turns of a fresh session")
            floor = Floor(runner, azurite.connection_string) if side is OURS else None
            try:
                fresh = Level(0, 0, runner.measure("overhead", args.overhead_turns, 1, floor and floor.sample))
            finally:
                if floor is not None:
                    floor.close()
            result["overhead"] = fresh.summary()

            progress(f"{side.label}: idle CPU over {IDLE_SECONDS:.0f} s, then CPU over {args.cpu_turns} turns")
            idle = CpuMeter(runner.host.pid, azurite.pid)
            time.sleep(IDLE_SECONDS)
            idle_ms_per_s = idle.per_turn_ms(1)["cpu_ms"] / IDLE_SECONDS  # type: ignore[operator]
            meter = CpuMeter(runner.host.pid, azurite.pid)
            cpu_level = Level(0, 0, runner.measure("cpu", args.cpu_turns, 1))
            cpu = {**cpu_level.summary(), **meter.per_turn_ms(len(cpu_level.ok()))}
            # What the host and Azurite burn anyway (polling queues, the dispatcher), over a turn's wall
            # time: upstream's 1 s sleep per turn would otherwise count a second of idle work per turn.
            cpu["idle_cpu_ms_per_s"] = idle_ms_per_s
            if cpu["cpu_ms"] is not None and cpu["post_mean_ms"] is not None:
                cpu["cpu_ms_net"] = cpu["cpu_ms"] - idle_ms_per_s * cpu["post_mean_ms"] / 1000
            result["cpu"] = cpu
            if floor is not None:
                result["floor"] = floor.summary()
                if result["floor"].get("floor_ms") and result["overhead"]["post_p50_ms"] is not None:
                    result["floor"]["turn_over_floor"] = result["overhead"]["post_p50_ms"] / result["floor"]["floor_ms"]

            # The two levels are measured turn by turn in alternation, so that both see the same load:
            # each turn "at 10" goes to its own session with exactly that many prior turns.
            progress(f"{side.label}: {args.measure} sessions driven to {args.small} turns")
            smalls = [f"small{i}" for i in range(args.measure)]
            small_deadline = time.monotonic() + args.drive_budget
            reached = [runner.drive(name, args.small, small_deadline) for name in smalls]
            level_small = Level(min(reached), runner.entity_state(smalls[0])[1])

            target = args.large
            progress(f"{side.label}: driving the session to {target} turns (at most {args.drive_budget:.0f} s)")
            driving = time.monotonic()
            large = runner.drive("growth", target, driving + args.drive_budget)
            result["drive_seconds"] = time.monotonic() - driving
            result["large_target"] = target
            result["large_cut_short"] = large < target
            level_large = Level(large, runner.entity_state("growth")[1])
            progress(f"{side.label}: {args.measure} turns at {min(reached)} and at {large} prior turns, alternating")
            for index, name in enumerate(smalls):
                level_small.turns.append(runner.waiting_turn(name, reached[index] + 1))
                level_large.turns.append(runner.waiting_turn("growth", large + 1 + index))
            result["small"] = level_small.summary()
            result["large"] = level_large.summary()

            progress(f"{side.label}: {args.sessions} sessions x {args.session_turns} turns from {args.clients} clients")
            result["many"] = many_sessions(runner, args.sessions, args.session_turns, args.clients, azurite.pid)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    result["seconds"] = time.monotonic() - began
    return result


# The table ----------------------------------------------------------------------------------------


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


def _ratio(upstream: float | None, ours: float | None) -> str:
    if upstream is None or ours is None or ours == 0:
        return "n/a"
    return f"{upstream / ours:.2f}x"


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value * 1000:.0f} ms"
    if unit == "B":
        return f"{value:,} B"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,}" if isinstance(value, int) else f"{value:.1f}"


def _growth(side: dict[str, Any], key: str) -> float | None:
    small, large = _get(side, "small", key), _get(side, "large", key)
    return large / small if small and large is not None else None


def _per_turn_bytes(side: dict[str, Any]) -> float | None:
    small, large = side.get("small"), side.get("large")
    if not small or not large or large["prior_turns"] == small["prior_turns"]:
        return None
    return (large["state_bytes"] - small["state_bytes"]) / (large["prior_turns"] - small["prior_turns"])


def build_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    ours, upstream = results["ours"], results["upstream"]
    rows: list[tuple[str, str, str, str]] = []

    def row(metric: str, values: tuple[Any, Any], unit: str) -> None:
        a, b = values
        ratio = _ratio(b, a) if isinstance(a, int | float) and isinstance(b, int | float) else "n/a"
        rows.append((metric, _fmt(a, unit), _fmt(b, unit), ratio))

    def imports(kind: str, key: str) -> tuple[Any, Any]:
        return _get(results["imports"], "ours", kind, key), _get(results["imports"], "upstream", kind, key)

    def turns(level: str, key: str) -> tuple[Any, Any]:
        return _get(ours, level, key), _get(upstream, level, key)

    def at(level: str) -> str:
        mine, theirs = turns(level, "prior_turns")
        if mine is None or theirs is None or mine == theirs:
            return str(mine if mine is not None else theirs)
        return f"{mine} (upstream {theirs})"

    row("import function_app.py (median of 5)", imports("app", "seconds"), "s")
    row("  modules loaded by it", imports("app", "modules"), "n")
    row("import the package alone (median of 5)", imports("package", "seconds"), "s")
    row("  modules loaded by it", imports("package", "modules"), "n")

    fresh = _get(ours, "overhead", "measured") or _get(upstream, "overhead", "measured")
    row(f"turn POST->200, fresh session, {fresh} turns: p50", turns("overhead", "post_p50_ms"), "ms")
    row("  p99", turns("overhead", "post_p99_ms"), "ms")
    row("  entity commit (POST sent -> state committed) p50", turns("overhead", "commit_p50_ms"), "ms")
    row("  entity commit p99", turns("overhead", "commit_p99_ms"), "ms")
    floor = ours.get("floor") or {}
    rows.append(("  floor: 1 KB blob PUT p50 (ours' run)", _fmt(floor.get("put_p50_ms"), "ms"), "", ""))
    rows.append(("  floor: loopback HTTP hop p50 (ours' run)", _fmt(floor.get("hop_p50_ms"), "ms"), "", ""))
    rows.append(("  turn p50 / floor (PUT + hop)", _fmt(floor.get("turn_over_floor"), "x"), "", ""))

    measured = _get(ours, "small", "measured") or _get(upstream, "small", "measured")
    for level in ("small", "large"):
        row(f"turn POST->200 at {at(level)} prior turns ({measured} turns): p50", turns(level, "post_p50_ms"), "ms")
        row("  p99", turns(level, "post_p99_ms"), "ms")
        row("  entity commit p50", turns(level, "commit_p50_ms"), "ms")
        row("  entity commit p99", turns(level, "commit_p99_ms"), "ms")
        row(f"entity state at {at(level)} turns", turns(level, "state_bytes"), "B")
    span = f"{at('large')} / {at('small')}"
    row(f"per-turn cost {span}: POST->200 p50", (_growth(ours, "post_p50_ms"), _growth(upstream, "post_p50_ms")), "x")
    row(
        f"per-turn cost {span}: entity commit p50",
        (_growth(ours, "commit_p50_ms"), _growth(upstream, "commit_p50_ms")),
        "x",
    )
    row(f"entity state growth per turn, B ({at('small')} -> {at('large')})",
        (_per_turn_bytes(ours), _per_turn_bytes(upstream)), "n")  # fmt: skip
    cpu_turns = _get(ours, "cpu", "measured") or _get(upstream, "cpu", "measured")
    row(f"host CPU per turn ({cpu_turns} turns, one session)", turns("cpu", "host_cpu_ms"), "ms")
    row("  Azurite CPU per turn", turns("cpu", "azurite_cpu_ms"), "ms")
    row("  host + Azurite CPU per turn", turns("cpu", "cpu_ms"), "ms")
    row("  host + Azurite CPU at rest, per second", turns("cpu", "idle_cpu_ms_per_s"), "ms")
    row("  host + Azurite CPU per turn, rest subtracted", turns("cpu", "cpu_ms_net"), "ms")
    many = ours.get("many") or upstream.get("many") or {}
    shape = f"{many.get('sessions')} sessions x {many.get('turns_per_session')} turns, {many.get('clients')} clients"
    row(f"many sessions ({shape}): turns/s", turns("many", "turns_per_second"), "n")
    row("  POST->200 p50", turns("many", "post_p50_ms"), "ms")
    row("  host + Azurite CPU per turn", turns("many", "cpu_ms"), "ms")
    failed = [
        sum(_get(side, level, "failed") or 0 for level in ("overhead", "small", "large", "cpu", "many"))
        for side in (ours, upstream)
    ]
    rows.append(("failed measured turns (not 200)", str(failed[0]), str(failed[1]), ""))
    return rows


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    headers = ("metric", "ours", "upstream", "ratio (upstream/ours)")
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        cells = [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))]
        print("  ".join(cells).rstrip())


def notes(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = []
    for name, timed in results["imports"].items():
        for kind, value in timed.items() if "error" not in timed else [("", timed)]:
            if isinstance(value, dict) and value.get("error"):
                lines.append(f"import {name} {kind}: {value['error']}".replace("  ", " "))
    for key in ("ours", "upstream"):
        side = results[key]
        label = side["label"]
        if side.get("error"):
            log = side.get("host_log")
            lines.append(f"{label} FAILED after {side['seconds']:.0f} s: {side['error']} (host log: {log})")
        if side.get("large_cut_short"):
            lines.append(
                f"{label}: driving the session to {side['large_target']} turns would overrun the "
                f"{args.drive_budget:.0f} s budget (--drive-budget); measured at {side['large']['prior_turns']} turns."
            )
        for level in ("overhead", "small", "large", "cpu", "many"):
            for error in _get(side, level, "errors") or []:
                lines.append(f"{label}, {level}: {error}")
        for error in _get(side, "floor", "errors") or []:
            lines.append(f"{label}, floor: {error}")
        if side.get("warmup_failed"):
            lines.append(f"{label}: {side['warmup_failed']} of 2 warm-up turns failed")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead-turns", type=int, default=100, help="turns of a fresh session (default 100)")
    parser.add_argument("--small", type=int, default=10, help="prior turns of the first level (default 10)")
    parser.add_argument("--large", type=int, default=1000, help="prior turns of the second level (default 1000)")
    parser.add_argument("--measure", type=int, default=40, help="turns measured at each level (default 40)")
    parser.add_argument("--message-chars", type=int, default=100, help="characters per user message (default 100)")
    parser.add_argument(
        "--drive-budget", type=float, default=240.0, help="seconds per side to drive to --large turns (default 240)"
    )
    parser.add_argument("--cpu-turns", type=int, default=50, help="turns of the CPU measurement (default 50)")
    parser.add_argument("--sessions", type=int, default=200, help="sessions of the many-sessions run (default 200)")
    parser.add_argument("--session-turns", type=int, default=5, help="turns per session there (default 5)")
    parser.add_argument("--clients", type=int, default=16, help="client threads there (default 16)")
    parser.add_argument("--only", choices=("ours", "upstream"), help="run one side only")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (host logs, task hubs)")
    args = parser.parse_args()

    began = time.monotonic()
    sides = [s for s in (OURS, UPSTREAM) if args.only in (None, s.key)]
    versions = {
        "durableagent": version_of("durableagent"),
        "agent-framework-azurefunctions": version_of("agent-framework-azurefunctions"),
        "agent-framework-durabletask": version_of("agent-framework-durabletask"),
        "agent-framework-core": version_of("agent-framework-core"),
        "azure-functions": version_of("azure-functions"),
        "azure-functions-durable": version_of("azure-functions-durable"),
        "durabletask": version_of("durabletask"),
    }
    results: dict[str, Any] = {
        "versions": versions,
        "imports": {},
        "ours": {"label": OURS.label},
        "upstream": {"label": UPSTREAM.label},
    }
    if UPSTREAM in sides and importlib.util.find_spec(UPSTREAM.package) is None:
        sides.remove(UPSTREAM)
        results["upstream"]["error"] = "not installed in this venv: run ./dev bench (it uses .venv-bench)"
        results["upstream"]["seconds"] = 0.0

    progress(f"import times (median of {IMPORT_RUNS} fresh interpreters each)")
    probes = {"baseline": (OURS.app, ["agent_framework", "azure.functions", "azure.durable_functions"])}
    for side in sides:
        probes[f"{side.key}.app"] = (side.app, ["function_app"])
        probes[f"{side.key}.package"] = (side.app, [side.package])
    timed = import_times(probes)
    results["imports"]["baseline"] = timed["baseline"]
    for side in sides:
        results["imports"][side.key] = {"app": timed[f"{side.key}.app"], "package": timed[f"{side.key}.package"]}

    work = Path(tempfile.mkdtemp(prefix="agents-bench-"))
    try:
        azurite = AzuriteProcess(work / "azurite", ports=AzuritePorts(*free_ports(3)), in_memory=True)
        azurite.start()
        try:
            for side in sides:
                progress(f"{side.label}: starting its host")
                results[side.key] = bench_side(side, args, work, azurite)
                if results[side.key].get("error"):
                    print(results[side.key]["traceback"], file=sys.stderr)
        finally:
            azurite.stop()
    finally:
        if args.keep:
            print(f"work directory (kept): {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - began

    machine = machine_info()
    results["machine"] = machine
    results["elapsed_seconds"] = elapsed
    print(f"agents benchmark on {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"model: in-process echo, zero latency; user messages of {args.message_chars} characters; "
          "both apps on python -m durableagent.devhost, one after the other, Azurite in memory")  # fmt: skip
    print(f"command: {command_line(REPO)}")
    print()
    print_table(build_rows(results))
    print()
    baseline = results["imports"]["baseline"]
    if "seconds" in baseline:
        print(
            "import baseline (agent_framework + azure.functions + azure.durable_functions): "
            f"{baseline['seconds'] * 1000:.0f} ms, {baseline['modules']} modules"
        )
    print(
        "POST->200: the waiting HTTP request, end to end. Upstream sleeps poll_interval_seconds (default 1 s) "
        "before each read of the entity state; ours reads once its entity says the run is done (in the same "
        "process), else polls from 50 ms with a back-off."
    )
    print(
        "floor (DESIGN §7): one 1 KB blob PUT to the same Azurite + one GET of a trivial HTTP function on the "
        "same host, sampled after each fresh-session turn; floor = p50 PUT + p50 hop."
    )
    print(
        "entity commit: POST sent -> the host commits the entity's new state (task hub timestamp): the "
        "agent turn itself, without how the HTTP function waits for it."
    )
    print(
        "CPU: every thread of the host's and Azurite's process trees (/proc schedstat), over the measured turns "
        "only; many sessions: higher turns/s is better, so there a ratio below 1 favours ours."
    )
    for line in notes(results, args):
        print("note: " + line)
    print(f"total time: {elapsed:.0f} s")
    print()
    for key in ("ours", "upstream"):
        results[key].pop("traceback", None)
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
