"""Queue, timer and HTTP-with-queue-output functions for the end-to-end trigger tests.

Environment (queue names are app settings so each test run owns its queues):
    INPUT_QUEUE: what ``process_item`` consumes.
    RESULTS_QUEUE: where ``process_item`` writes one JSON result per message.
    FAILING_QUEUE: what ``always_fails`` consumes (its messages end in ``<FAILING_QUEUE>-poison``).
    HTTP_OUT_QUEUE: where ``enqueue`` writes its request body.
    QUEUE_SUFFIX: completes the ``prefixed-%QUEUE_SUFFIX%`` output queue of ``enqueue_prefixed``.
    TIMER_LOG_DIR: where ``heartbeat`` appends one line per run.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.queue_trigger(arg_name="msg", queue_name="%INPUT_QUEUE%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="results", queue_name="%RESULTS_QUEUE%", connection="AzureWebJobsStorage")
def process_item(msg: func.QueueMessage, results: func.Out[str]) -> None:
    results.set(json.dumps({"body": msg.get_body().decode(), "dequeueCount": msg.dequeue_count, "id": msg.id}))


@app.queue_trigger(arg_name="msg", queue_name="%FAILING_QUEUE%", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    raise RuntimeError(f"cannot process {msg.get_body().decode()!r} (attempt {msg.dequeue_count})")


@app.timer_trigger(arg_name="timer", schedule="*/2 * * * * *", run_on_startup=True)
def heartbeat(timer: func.TimerRequest) -> None:
    line = f"{datetime.now(timezone.utc).isoformat()} past_due={timer.past_due}\n"
    with open(Path(os.environ["TIMER_LOG_DIR"]) / "heartbeat.log", "a", encoding="utf-8") as log:
        log.write(line)


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="outmsg", queue_name="%HTTP_OUT_QUEUE%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, outmsg: func.Out[str]) -> func.HttpResponse:
    outmsg.set(req.get_body().decode())
    return func.HttpResponse("queued", status_code=202)


@app.route(route="enqueue-prefixed", methods=["POST"])
@app.queue_output(arg_name="outmsg", queue_name="prefixed-%QUEUE_SUFFIX%", connection="AzureWebJobsStorage")
def enqueue_prefixed(req: func.HttpRequest, outmsg: func.Out[str]) -> func.HttpResponse:
    outmsg.set(req.get_body().decode())
    return func.HttpResponse("queued", status_code=202)
