import json
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


# --- A slow "report service": accepts a job with 202 and a Location to poll --------------------


@app.route(route="jobs", methods=["POST"])
def submit_job(req: func.HttpRequest) -> func.HttpResponse:
    seconds = float((req.get_json() or {}).get("seconds", 3))
    job_id = uuid.uuid4().hex
    ready_at = time.time() + seconds
    location = f"{req.url.split('/api/')[0]}/api/jobs/{job_id}?ready_at={ready_at}"
    return func.HttpResponse(status_code=202, headers={"Location": location, "Retry-After": "1"})


@app.route(route="jobs/{job_id}", methods=["GET"])
def job_status(req: func.HttpRequest) -> func.HttpResponse:
    if time.time() < float(req.params["ready_at"]):
        return func.HttpResponse(status_code=202, headers={"Location": req.url, "Retry-After": "1"})
    body = {"jobId": req.route_params["job_id"], "status": "done"}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


# --- The orchestration that calls it with durable HTTP and polls until it is done -------------


@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    parts = urlsplit(req.url)
    payload = {"serviceUrl": f"{parts.scheme}://{parts.netloc}", **(req.get_json() or {})}
    instance_id = await client.start_new(req.route_params["functionName"], None, payload)
    return client.create_check_status_response(req, instance_id)


def header(response: dict, name: str):
    for key, value in response["headers"].items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return None


@app.orchestration_trigger(context_name="context")
def run_report(context: df.DurableOrchestrationContext):
    settings = context.get_input()
    job = {"seconds": settings.get("seconds", 3)}  # a dict is sent as JSON
    response = yield context.call_http(
        "POST", f"{settings['serviceUrl']}/api/jobs", content=job, headers={"Content-Type": "application/json"}
    )
    polls = 0
    while response["statusCode"] == 202:
        wait = int(header(response, "Retry-After") or 1)
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=wait))
        response = yield context.call_http("GET", header(response, "Location"))
        polls += 1
    return {"statusCode": response["statusCode"], "result": json.loads(response["content"]), "polls": polls}
