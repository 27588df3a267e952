"""The product description's "Adding Custom Azure Functions" and "Custom Authentication" examples, as
written: one agent given as ``agent=``, function keys required, and the page's own timer, queue, blob
and HTTP functions on the same app (the blob trigger is one the local host cannot serve yet: it is put
in error and the rest of the app runs).
"""

from __future__ import annotations

import azure.functions as func
from agent_framework import Agent
from agent_framework.openai import OpenAIChatCompletionClient

from durableagent import AgentFunctionApp

my_agent = Agent(client=OpenAIChatCompletionClient(), name="MyAgent", instructions="You are a helpful assistant.")

app = AgentFunctionApp(
    agent=my_agent,
    http_auth_level=func.AuthLevel.FUNCTION,  # Requires function key
)


# Add a timer trigger
@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
def periodic_task(timer: func.TimerRequest) -> None:
    print("Runs every 5 minutes")


# Add a queue trigger
@app.queue_trigger(arg_name="msg", queue_name="tasks", connection="AzureWebJobsStorage")
def process_queue(msg: func.QueueMessage) -> None:
    print(f"Processing: {msg.get_body()}")


# Add a blob trigger
@app.blob_trigger(arg_name="blob", path="uploads/{name}", connection="AzureWebJobsStorage")
def process_blob(blob: func.InputStream) -> None:
    print(f"Processing blob: {blob.name}")


# Add custom HTTP endpoints
@app.route(route="status", methods=["GET"])
def get_status(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("Running", status_code=200)
