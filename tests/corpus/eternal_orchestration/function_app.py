from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

INSTANCE_ID = "heartbeat"


# Start the single "heartbeat" instance (a second start while it runs is refused with 409)
@app.route(route="heartbeat/start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_heartbeat(req: func.HttpRequest, client):
    status = await client.get_status(INSTANCE_ID)
    active = (df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending)
    if status and status.runtime_status in active:
        return func.HttpResponse(f"'{INSTANCE_ID}' is already running", status_code=409)
    interval = int(req.params.get("intervalSeconds", "5"))
    await client.start_new("heartbeat_orchestrator", INSTANCE_ID, {"beats": 0, "intervalSeconds": interval})
    return client.create_check_status_response(req, INSTANCE_ID)


@app.route(route="heartbeat/stop", methods=["POST"])
@app.durable_client_input(client_name="client")
async def stop_heartbeat(req: func.HttpRequest, client):
    await client.terminate(INSTANCE_ID, "stopped over HTTP")
    return func.HttpResponse(status_code=202)


@app.orchestration_trigger(context_name="context")
def heartbeat_orchestrator(context: df.DurableOrchestrationContext):
    state = context.get_input()
    beats = state["beats"] + 1
    yield context.call_activity("beat", beats)
    context.set_custom_status({"beats": beats})

    next_beat = context.current_utc_datetime + timedelta(seconds=state["intervalSeconds"])
    yield context.create_timer(next_beat)

    # Start over with a fresh history, carrying the count: the history never grows
    context.continue_as_new({**state, "beats": beats})


@app.activity_trigger(input_name="beats")
def beat(beats: int) -> str:
    return f"beat {beats}"
