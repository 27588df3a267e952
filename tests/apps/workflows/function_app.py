"""Every workflow of ``zoo.py`` hosted durably, plus an approval with a short request timeout."""

import json
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func
from zoo import GRAPH_BUILDERS, approval, functional, late_ask, slow_steps

from durableagent import AgentFunctionApp, DurableAgentError

app = AgentFunctionApp(workflows=[build() for build in GRAPH_BUILDERS.values()])
app.add_workflow(functional)
app.add_workflow(slow_steps)
app.add_workflow(late_ask)

# The same approval workflow under another name, with a timeout that answers "rejected".
timed = approval()
timed.name = "timedapproval"
app.add_workflow(timed, request_timeout=timedelta(seconds=2), timeout_response=False)

# Without a timeout answer, a request that times out fails the run.
strict = approval()
strict.name = "strictapproval"
app.add_workflow(strict, request_timeout=timedelta(seconds=1))

# A timeout answer that does not fit the request's response type (bool) fails the run when used.
misfit = approval()
misfit.name = "misfitapproval"
app.add_workflow(misfit, request_timeout=timedelta(seconds=1), timeout_response={"approved": "nope"})


# The Python API, behind routes of the app's own.
@app.function_name(name="python_start")
@app.route(route="python/{name}/runs", methods=["POST"])
@app.durable_client_input(client_name="client")
async def python_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_json()
    try:
        run_id = await app.start_workflow(
            client, req.route_params["name"], body.get("input"), checkpoint_id=body.get("checkpointId")
        )
    except DurableAgentError as exc:
        return func.HttpResponse(json.dumps({"refused": str(exc)}), status_code=400, mimetype="application/json")
    return func.HttpResponse(json.dumps({"runId": run_id}), mimetype="application/json")


@app.function_name(name="python_run")
@app.route(route="python/{name}/runs/{runId}", methods=["GET"])
def python_run(req: func.HttpRequest) -> func.HttpResponse:
    name, run_id = req.route_params["name"], req.route_params["runId"]
    body = {
        "checkpoints": [c.to_json() for c in app.run_checkpoints(name, run_id)],
        "eventTypes": [e.type for e in app.run_events(name, run_id)],
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")
