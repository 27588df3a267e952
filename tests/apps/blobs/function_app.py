"""Blob triggers and blob input/output bindings for the end-to-end blob tests.

Environment (container names are app settings so each test run owns its containers):
    UPLOADS: watched by ``on_upload`` (``{name}.txt`` blobs only).
    TEXTS: watched by ``as_text`` (a ``str``-annotated trigger).
    INBOX: watched by ``pipeline``, which writes ``<OUTBOX>/{name}.out`` using ``<SETTINGS>/prefix.txt``.
    FAILING: watched by ``always_fails``.
    DOCS: read by the HTTP functions ``doc``, ``doc_bytes``, ``doc_stream`` and ``doc_version``.
    BLOB_LOG_DIR: where each blob-triggered function appends one JSON line per run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def record(function: str, **fields: Any) -> None:
    with open(Path(os.environ["BLOB_LOG_DIR"]) / f"{function}.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(fields) + "\n")


@app.blob_trigger(arg_name="blob", path="%UPLOADS%/{name}.txt", connection="AzureWebJobsStorage")
def on_upload(blob: func.InputStream) -> None:
    record(
        "on_upload",
        name=blob.name,
        uri=blob.uri,
        length=blob.length,
        content=blob.read().decode("utf-8"),
        properties_length=(blob.blob_properties or {}).get("ContentLength"),
        metadata=blob.metadata,
    )


@app.blob_trigger(arg_name="blob", path="%TEXTS%/{name}", connection="AzureWebJobsStorage")
def as_text(blob: str) -> None:
    # The host sends a blob trigger's content as bytes whatever the annotation (Azure/azure-functions-host#3995).
    record("as_text", type=type(blob).__name__, value=blob.decode("utf-8") if isinstance(blob, bytes) else blob)


@app.blob_trigger(arg_name="blob", path="%INBOX%/{name}", connection="AzureWebJobsStorage")
@app.blob_input(arg_name="prefix", path="%SETTINGS%/prefix.txt", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="out", path="%OUTBOX%/{name}.out", connection="AzureWebJobsStorage")
def pipeline(blob: bytes, prefix: str, out: func.Out[str]) -> None:
    record("pipeline", content=blob.decode("utf-8"), prefix=prefix)
    out.set(f"{prefix}{blob.decode('utf-8').upper()}")


@app.blob_trigger(arg_name="blob", path="%FAILING%/{name}", connection="AzureWebJobsStorage")
def always_fails(blob: func.InputStream) -> None:
    record("always_fails", name=blob.name)
    raise RuntimeError(f"cannot process {blob.name}")


@app.route(route="docs/{id}", methods=["GET"])
@app.blob_input(arg_name="doc", path="%DOCS%/{id}.txt", connection="AzureWebJobsStorage")
def doc(req: func.HttpRequest, doc: str) -> func.HttpResponse:
    # A missing blob arrives as None (the worker refuses an Optional annotation on a binding).
    if doc is None:
        return func.HttpResponse("no such document", status_code=404)
    return func.HttpResponse(json.dumps({"type": type(doc).__name__, "text": doc}), mimetype="application/json")


@app.route(route="docs-bytes/{id}", methods=["GET"])
@app.blob_input(arg_name="doc", path="%DOCS%/{id}.txt", data_type="BINARY", connection="AzureWebJobsStorage")
def doc_bytes(req: func.HttpRequest, doc: bytes) -> func.HttpResponse:
    return func.HttpResponse(doc, mimetype="application/octet-stream")


@app.route(route="docs-stream/{id}", methods=["GET"])
@app.blob_input(arg_name="doc", path="%DOCS%/{id}.txt", data_type="BINARY", connection="AzureWebJobsStorage")
def doc_stream(req: func.HttpRequest, doc: func.InputStream) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"name": doc.name, "content": doc.read().decode("utf-8")}))


@app.route(route="versions/{id}", methods=["GET"])
@app.blob_input(arg_name="doc", path="%DOCS%/{id}-{Query.v}.txt", connection="AzureWebJobsStorage")
def doc_version(req: func.HttpRequest, doc: str) -> func.HttpResponse:
    return func.HttpResponse(doc)


@app.route(route="inbox/{name}", methods=["PUT"])
@app.blob_output(arg_name="blob", path="%INBOX%/{name}", connection="AzureWebJobsStorage")
def put_inbox(req: func.HttpRequest, blob: func.Out[bytes]) -> func.HttpResponse:
    blob.set(req.get_body())
    return func.HttpResponse("stored", status_code=201)
