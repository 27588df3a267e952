import json
import logging
import os

import azure.durable_functions as df
import azure.functions as func
from azure.storage.blob import BlobServiceClient

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

REPORTS_CONTAINER = "pipeline-reports"


# Upload a text file over HTTP: the body is stored as pipeline-uploads/{name}.txt
@app.route(route="uploads/{name}", methods=["PUT"])
@app.blob_output(arg_name="upload", path="pipeline-uploads/{name}.txt", connection="AzureWebJobsStorage")
def upload(req: func.HttpRequest, upload: func.Out[bytes]) -> func.HttpResponse:
    upload.set(req.get_body())
    return func.HttpResponse(status_code=202)


# A new or changed blob in pipeline-uploads starts one orchestration for it
@app.blob_trigger(arg_name="blob", path="pipeline-uploads/{name}.txt", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def on_upload(blob: func.InputStream, client):
    name = blob.name.split("/")[-1].removesuffix(".txt")
    text = blob.read().decode("utf-8")
    instance_id = await client.start_new("analyze_document", None, {"name": name, "text": text})
    logging.info("Started analysis %s for %s", instance_id, blob.name)


@app.orchestration_trigger(context_name="context")
def analyze_document(context: df.DurableOrchestrationContext):
    document = context.get_input()
    lines = document["text"].splitlines()
    counts = yield context.task_all([context.call_activity("count_words", line) for line in lines])
    report = {"name": document["name"], "lines": len(lines), "words": sum(counts)}
    yield context.call_activity("save_report", report)
    return report


@app.activity_trigger(input_name="line")
def count_words(line: str) -> int:
    return len(line.split())


@app.activity_trigger(input_name="report")
def save_report(report: dict) -> str:
    service = BlobServiceClient.from_connection_string(os.environ["AzureWebJobsStorage"])  # noqa: SIM112 - the app setting's name
    container = service.get_container_client(REPORTS_CONTAINER)
    if not container.exists():
        container.create_container()
    blob_name = f"{report['name']}.json"
    container.upload_blob(blob_name, json.dumps(report), overwrite=True)
    return blob_name


# Read a finished report (404 until the pipeline has written it)
@app.route(route="reports/{name}", methods=["GET"])
@app.blob_input(arg_name="report", path="pipeline-reports/{name}.json", connection="AzureWebJobsStorage")
def get_report(req: func.HttpRequest, report: str) -> func.HttpResponse:
    if report is None:
        return func.HttpResponse("No report yet", status_code=404)
    return func.HttpResponse(report, mimetype="application/json")
