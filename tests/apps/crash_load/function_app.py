"""Mixed durable load for the SIGKILL crash test: chains (with a timer), fan-outs and entity calls.

Every activity first appends one line ``<instance>:<task-label>`` to ``$CRASH_LOG_DIR/activities.log``
(O_APPEND + fsync), so the test can count how often each activity was executed; then it sleeps
``CRASH_ACTIVITY_SLEEP_MS`` (so kills land mid-work) and returns its result.
"""

import os
import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

CHAIN_LENGTH = 5
FAN_OUT_WIDTH = 20
COUNTER = df.EntityId("counter", "k")


def _record(instance: str, label: str) -> None:
    """Log that this execution started (so an execution a kill cut short counts too), then work."""
    directory = os.environ["CRASH_LOG_DIR"]
    fd = os.open(os.path.join(directory, "activities.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{instance}:{label}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    time.sleep(float(os.environ.get("CRASH_ACTIVITY_SLEEP_MS", "0")) / 1000)


@app.activity_trigger(input_name="work")
def step(work: dict) -> int:
    """Chain step: ``acc * 2 + index`` (order-sensitive, so a reordered chain shows)."""
    _record(work["instance"], work["label"])
    return int(work["acc"]) * 2 + int(work["index"])


@app.activity_trigger(input_name="work")
def square(work: dict) -> int:
    _record(work["instance"], work["label"])
    return int(work["index"]) ** 2


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    acc = int((context.get_input() or {}).get("start", 0))
    for index in range(CHAIN_LENGTH):
        work = {"instance": context.instance_id, "label": f"step{index}", "acc": acc, "index": index}
        acc = yield context.call_activity("step", work)
        if index == 2:  # a durable timer mid-chain, so TimerFired is crash-tested too
            yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=50))
    return acc


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    tasks = [
        context.call_activity("square", {"instance": context.instance_id, "label": f"sq{i}", "index": i})
        for i in range(FAN_OUT_WIDTH)
    ]
    results = yield context.task_all(tasks)
    return results


@app.orchestration_trigger(context_name="context")
def entity_user(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    values = []
    values.append((yield context.call_entity(COUNTER, "add", 1)))
    context.signal_entity(COUNTER, "add", 1)
    values.append((yield context.call_entity(COUNTER, "add", 1)))
    context.signal_entity(COUNTER, "add", 1)
    values.append((yield context.call_entity(COUNTER, "add", 1)))
    return {"instance": context.instance_id, "values": values}


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    context.set_state(value)
    context.set_result(value)
