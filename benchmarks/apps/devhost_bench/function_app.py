"""The benchmark app of ``benchmarks/devhost_bench.py``: a 10-activity chain, a wide fan-out, a counter."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

CHAIN_LENGTH = 10


@app.activity_trigger(input_name="value")
def inc(value: int) -> int:
    return value + 1


@app.orchestration_trigger(context_name="context")
def chain10(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    acc = int((context.get_input() or {}).get("start", 0))
    for _ in range(CHAIN_LENGTH):
        acc = yield context.call_activity("inc", acc)
    return acc


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    width = int((context.get_input() or {}).get("width", 1000))
    results = yield context.task_all([context.call_activity("inc", i) for i in range(width)])
    return sum(results)


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    context.set_state(value)
    context.set_result(value)
