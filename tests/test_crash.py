"""SIGKILL the host again and again under a mixed durable load; no accepted work may be lost or doubled.

Each cycle starts a batch of orchestrations (chains, fan-outs, entity users) with known ids and
signals the ``counter`` entity, waits a random 0.05-1.0 s while the host works, then kills the
whole process group with SIGKILL and restarts the host on the same app directory (a new port).
While the host works, a background thread keeps sending more requests so that some are in flight
at the moment of the kill: those whose answer was lost are "ambiguous" and may or may not have
been accepted, but nothing that was answered 202 may be lost.

After the last cycle everything must finish, and then:

* every accepted instance is Completed with exactly the output the code computes;
* the counter equals exactly the accepted signals plus the 5 adds of each entity-user instance;
* the task hub's raw history has no duplicated event (scheduled ids, completions, entity
  responses, ExecutionStarted/ExecutionCompleted) and no message is left over;
* each activity ran at least once (the app's side-effect log, written with O_APPEND + fsync);
  re-executions are allowed (at-least-once) and counted.

Set ``CRASH_SEED`` to replay a run's random waits.

``test_host_starts_after_a_kill_while_creating_its_keys_file``: a kill while the keys file is written.
"""

from __future__ import annotations

import collections
import json
import os
import random
import sqlite3
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any

import pytest
from hosttools.host_process import HostProcess, copy_app

pytestmark = pytest.mark.crash

APP = Path(__file__).parent / "apps" / "crash_load"
HUB = "CrashHub"
CYCLES = 10
CHAIN_LENGTH = 5
FAN_OUT_WIDTH = 20
# Per cycle: how many instances of each kind, and how many direct entity signals.
BATCH = {"chain": 4, "fan_out": 3, "entity_user": 3}
SIGNALS_PER_CYCLE = 10
FINAL_WAIT_SECONDS = 45.0
# Each activity sleeps this long, so that most kills interrupt running work.
ACTIVITY_SLEEP_MS = 20

# History event types (DTFx numbers).
EXECUTION_STARTED, EXECUTION_COMPLETED = 0, 1
TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED = 4, 5, 6
SUB_CREATED, SUB_COMPLETED, SUB_FAILED = 7, 8, 9
TIMER_CREATED, TIMER_FIRED = 10, 11
EVENT_SENT, EVENT_RAISED = 14, 15


def chain_output(start: int) -> int:
    acc = start
    for index in range(CHAIN_LENGTH):
        acc = acc * 2 + index
    return acc


def expected_labels(kind: str) -> list[str]:
    if kind == "chain":
        return [f"step{i}" for i in range(CHAIN_LENGTH)]
    if kind == "fan_out":
        return [f"sq{i}" for i in range(FAN_OUT_WIDTH)]
    return []


@dataclass
class Ledger:
    """What the test asked for, and what the host answered."""

    instances: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # accepted: kind, input
    ambiguous_instances: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    signals: dict[str, int] = field(default_factory=lambda: collections.Counter())  # key -> accepted
    ambiguous_signals: dict[str, int] = field(default_factory=lambda: collections.Counter())
    rejected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _outcome(send: Callable[[], int]) -> str:
    """'accepted' (202), 'refused' (never reached the host) or 'ambiguous' (answer lost)."""
    try:
        code = send()
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return "refused"
        return "ambiguous"
    except (ConnectionError, HTTPException, TimeoutError, OSError):
        return "ambiguous"
    return "accepted" if code == 202 else f"status {code}"


def start_instance(host: HostProcess, ledger: Ledger, kind: str, instance_id: str, payload: dict[str, Any]) -> str:
    path = f"/durabletask/orchestrators/{kind}/{instance_id}"
    result = _outcome(lambda: host.request("POST", path, payload, timeout=10)[0])
    with ledger.lock:
        if result == "accepted":
            ledger.instances[instance_id] = (kind, payload)
        elif result == "ambiguous":
            ledger.ambiguous_instances[instance_id] = (kind, payload)
        elif result != "refused":
            ledger.rejected.append(f"start {instance_id}: {result}")
    return result


def signal(host: HostProcess, ledger: Ledger, key: str) -> str:
    # The body is the JSON string literal "1", as the Python SDK's client sends json.dumps(input):
    # the SDK's entity context decodes the input twice, so a bare 1 fails the operation (silently).
    result = _outcome(lambda: host.request("POST", f"/durabletask/entities/counter/{key}?op=add", "1", timeout=10)[0])
    with ledger.lock:
        if result == "accepted":
            ledger.signals[key] += 1
        elif result == "ambiguous":
            ledger.ambiguous_signals[key] += 1
        elif result != "refused":
            ledger.rejected.append(f"signal {key}: {result}")
    return result


def new_payload(kind: str, rng: random.Random) -> dict[str, Any]:
    return {"start": rng.randrange(1000)} if kind == "chain" else {"kind": kind}


def background_load(host: HostProcess, ledger: Ledger, cycle: int, stop: threading.Event, seed: int) -> None:
    """Requests that may be in flight when the host is killed."""
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        if n % 3 == 0:
            kind = ("chain", "fan_out", "entity_user")[(n // 3) % 3]
            result = start_instance(host, ledger, kind, f"flight-{cycle}-{n}", new_payload(kind, rng))
        else:
            result = signal(host, ledger, "inflight")
        if result == "refused":
            return
        n += 1
        time.sleep(rng.uniform(0.0, 0.02))


def entity_value(host: HostProcess, key: str) -> int:
    code, _, body = host.request("GET", f"/durabletask/entities/counter/{key}")
    return int(json.loads(body)) if code == 200 else 0


def pending_messages(db_path: Path) -> int:
    """Messages in the task hub (read-only, so a killed host's WAL is left for the host to recover)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    finally:
        db.close()


def read_history(db_path: Path) -> dict[str, list[dict[str, Any]]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT instance_id, seq, event FROM history ORDER BY instance_id, seq").fetchall()
    finally:
        db.close()
    history: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for instance_id, _, event in rows:
        history[instance_id].append(json.loads(event))
    return history


def duplicates(values: list[Any]) -> list[Any]:
    return [v for v, n in collections.Counter(values).items() if n > 1]


def history_problems(instance_id: str, kind: str, events: list[dict[str, Any]]) -> list[str]:
    """Every way the raw history of one finished instance can be wrong."""
    problems: list[str] = []

    def of(*types: int) -> list[dict[str, Any]]:
        return [e for e in events if e["EventType"] in types]

    def check(condition: bool, what: str) -> None:
        if not condition:
            problems.append(f"{instance_id} ({kind}): {what}")

    check(len(of(EXECUTION_STARTED)) == 1, f"{len(of(EXECUTION_STARTED))} ExecutionStarted")
    completed = of(EXECUTION_COMPLETED)
    check(len(completed) == 1, f"{len(completed)} ExecutionCompleted")
    check(all(e.get("OrchestrationStatus") == 1 for e in completed), "ExecutionCompleted not Completed")
    for scheduled_type, label in (
        (TASK_SCHEDULED, "TaskScheduled"),
        (SUB_CREATED, "SubOrchestrationCreated"),
        (TIMER_CREATED, "TimerCreated"),
        (EVENT_SENT, "EventSent"),
    ):
        ids = [e["EventId"] for e in of(scheduled_type)]
        check(not duplicates(ids), f"{label} ids repeated: {duplicates(ids)}")
    scheduled = {e["EventId"] for e in of(TASK_SCHEDULED, SUB_CREATED)}
    done = [e["TaskScheduledId"] for e in of(TASK_COMPLETED, TASK_FAILED, SUB_COMPLETED, SUB_FAILED)]
    check(not duplicates(done), f"completions repeated for ids {duplicates(done)}")
    check(set(done) == scheduled, f"completions {sorted(set(done))} != scheduled {sorted(scheduled)}")
    check(not of(TASK_FAILED, SUB_FAILED), "a task failed")
    fired = [e["TimerId"] for e in of(TIMER_FIRED)]
    check(not duplicates(fired), f"TimerFired repeated: {duplicates(fired)}")
    raised = [e["Name"] for e in of(EVENT_RAISED)]
    check(not duplicates(raised), f"EventRaised repeated: {duplicates(raised)}")
    timers = [e["EventId"] for e in of(TIMER_CREATED)]
    check(sorted(fired) == sorted(timers), f"timers fired {sorted(fired)} != created {sorted(timers)}")
    check(len(timers) == (1 if kind == "chain" else 0), f"{len(timers)} timers")
    if kind in ("chain", "fan_out"):
        width = CHAIN_LENGTH if kind == "chain" else FAN_OUT_WIDTH
        check(len(scheduled) == width, f"{len(scheduled)} TaskScheduled, expected {width}")
        check(not of(EVENT_SENT, EVENT_RAISED), "unexpected entity events")
    else:
        sent = [json.loads(e["Input"]) for e in of(EVENT_SENT)]
        calls = {str(r["id"]) for r in sent if not r.get("signal")}
        check(len(sent) == 5 and len(calls) == 3, f"{len(sent)} EventSent ({len(calls)} calls), expected 5 (3)")
        check(set(raised) == calls, f"entity responses {sorted(raised)} != requests {sorted(calls)}")
        check(not scheduled, "unexpected activities")
    return problems


def check_output(instance_id: str, kind: str, payload: dict[str, Any], status: dict[str, Any], total: int) -> list[str]:
    if status.get("runtimeStatus") != "Completed":
        return [f"{instance_id} ({kind}): {status.get('runtimeStatus')}: {status.get('output')}"]
    output = status["output"]
    if kind == "chain":
        expected: Any = chain_output(payload["start"])
    elif kind == "fan_out":
        expected = [i * i for i in range(FAN_OUT_WIDTH)]
    else:
        values = output.get("values") if isinstance(output, dict) else None
        ok = (
            isinstance(values, list)
            and len(values) == 3
            and all(isinstance(v, int) for v in values)
            and values == sorted(set(values))
            and values[0] >= 1
            and values[-1] <= total
        )
        expected = {"instance": instance_id, "values": values if ok else "3 increasing ints in [1, total]"}
    return [] if output == expected else [f"{instance_id} ({kind}): output {output!r}, expected {expected!r}"]


def test_sigkill_loses_no_accepted_work(azurite: Any, tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", str(time.time_ns() % 2**32)))
    print(f"\ncrash test seed: {seed} (CRASH_SEED={seed} replays the waits)")
    rng = random.Random(seed)
    app_dir = copy_app(APP, tmp_path / "app")
    log_dir = tmp_path / "side-effects"
    log_dir.mkdir()
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": HUB,
        "CRASH_LOG_DIR": str(log_dir),
        "CRASH_ACTIVITY_SLEEP_MS": str(ACTIVITY_SLEEP_MS),
        "FUNCTIONS_WORKER_RUNTIME": "python",
    }
    db_path = app_dir / ".durableagent" / f"taskhub-{HUB}.sqlite"
    ledger = Ledger()
    backlog: list[int] = []
    began = time.monotonic()

    host = HostProcess(app_dir, env=env).start()
    try:
        for cycle in range(CYCLES):
            for kind, count in BATCH.items():
                for n in range(count):
                    payload = new_payload(kind, rng)
                    assert start_instance(host, ledger, kind, f"c{cycle}-{kind}-{n}", payload) == "accepted"
            for _ in range(SIGNALS_PER_CYCLE):
                assert signal(host, ledger, "k") == "accepted"
            stop = threading.Event()
            flight = threading.Thread(
                target=background_load, args=(host, ledger, cycle, stop, rng.randrange(2**32)), daemon=True
            )
            flight.start()
            time.sleep(rng.uniform(0.05, 1.0))
            host.kill()
            stop.set()
            flight.join(15)
            assert not flight.is_alive()
            try:
                backlog.append(pending_messages(db_path))  # work the kill interrupted
            except sqlite3.OperationalError:  # a read-only reader cannot recover the WAL: fine
                backlog.append(-1)
            host = HostProcess(app_dir, env=env).start()  # same app dir, a new free port

        crashed_at = time.monotonic()
        all_instances = {**ledger.instances}
        # An ambiguous start either never committed (404 now) or must run like an accepted one.
        for instance_id, spec in ledger.ambiguous_instances.items():
            if host.status(instance_id) is not None:
                all_instances[instance_id] = spec
        deadline = time.monotonic() + FINAL_WAIT_SECONDS
        statuses: dict[str, dict[str, Any]] = {}
        for instance_id in all_instances:
            statuses[instance_id] = host.wait_for(instance_id, timeout=max(1.0, deadline - time.monotonic()))
        # Entity signals carry no instance: wait for the task hub to drain.
        while pending_messages(db_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        leftover = pending_messages(db_path)
        total_k = entity_value(host, "k")
        total_inflight = entity_value(host, "inflight")
        show = "showHistory=True&showHistoryOutput=True"
        api_histories = {
            i: json.loads(host.request("GET", f"/durabletask/instances/{i}?{show}")[2]) for i in all_instances
        }
    finally:
        host.stop()
    drained_in = time.monotonic() - crashed_at

    problems: list[str] = list(ledger.rejected)
    if leftover:
        problems.append(f"{leftover} message(s) left in the task hub after {FINAL_WAIT_SECONDS}s")

    entity_users = sum(1 for kind, _ in all_instances.values() if kind == "entity_user")
    expected_k = ledger.signals["k"] + 5 * entity_users
    if total_k != expected_k:
        problems.append(
            f"counter/k = {total_k}, expected {expected_k} = {ledger.signals['k']} signals "
            f"+ 5 x {entity_users} entity_user instances"
        )
    low, high = ledger.signals["inflight"], ledger.signals["inflight"] + ledger.ambiguous_signals["inflight"]
    if not low <= total_inflight <= high:
        problems.append(f"counter/inflight = {total_inflight}, expected within [{low}, {high}]")

    for instance_id, (kind, payload) in all_instances.items():
        problems += check_output(instance_id, kind, payload, statuses[instance_id], total_k)

    history = read_history(db_path)
    for instance_id, (kind, _) in all_instances.items():
        problems += history_problems(instance_id, kind, history.get(instance_id, []))
        shown = [e["EventType"] for e in api_histories[instance_id].get("historyEvents", [])]
        if shown.count("ExecutionStarted") != 1 or shown.count("ExecutionCompleted") != 1:
            problems.append(f"{instance_id}: API history shows {shown}")

    runs = collections.Counter(
        tuple(line.rsplit(":", 1)) for line in (log_dir / "activities.log").read_text().splitlines() if line
    )
    for instance_id, (kind, _) in all_instances.items():
        missing = [label for label in expected_labels(kind) if runs[(instance_id, label)] < 1]
        if missing:
            problems.append(f"{instance_id} ({kind}): activities never ran: {missing}")
    strangers = {i for i, _ in runs} - set(all_instances)
    if strangers:
        problems.append(f"activities ran for instances never started: {sorted(strangers)[:5]}")

    kinds = collections.Counter(kind for kind, _ in all_instances.values())
    re_executions = sum(runs.values()) - len(runs)
    print(
        f"crash test: {CYCLES} SIGKILL cycles; {len(all_instances)} instances "
        f"({len(ledger.instances)} accepted, {len(all_instances) - len(ledger.instances)} of "
        f"{len(ledger.ambiguous_instances)} ambiguous starts committed; "
        f"{', '.join(f'{k}={v}' for k, v in sorted(kinds.items()))}); "
        f"signals: {ledger.signals['k']} accepted to counter/k, {ledger.signals['inflight']} accepted + "
        f"{ledger.ambiguous_signals['inflight']} ambiguous in flight (counter/inflight={total_inflight}); "
        f"counter/k={total_k}; pending messages at each kill: {backlog}; "
        f"activity executions: {sum(runs.values())} for {len(runs)} activities "
        f"({re_executions} re-executions caused by the crashes); drained in {drained_in:.1f}s; "
        f"total {time.monotonic() - began:.1f}s"
    )
    assert not problems, "\n".join(problems[:50])


def test_host_starts_after_a_kill_while_creating_its_keys_file(azurite: Any, tmp_path: Path) -> None:
    """The first start's kill window, reproduced: the keys were being written and never linked into place."""
    app_dir = copy_app(APP, tmp_path / "app")
    (app_dir / ".durableagent").mkdir()
    (app_dir / ".durableagent" / ".keys.json.12345.tmp").write_text('{"masterKey": "half')
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": HUB,
        "CRASH_LOG_DIR": str(tmp_path),
    }
    host = HostProcess(app_dir, env=env)
    try:
        host.start(timeout=30)
    finally:
        host.stop()
    keys = json.loads((app_dir / ".durableagent" / "keys.json").read_text())
    assert keys["masterKey"] and keys["functionKeys"]["default"]
