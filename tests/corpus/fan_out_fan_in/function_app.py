import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    payload = req.get_json()
    instance_id = await client.start_new(req.route_params["functionName"], None, payload)
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def word_count_orchestrator(context: df.DurableOrchestrationContext):
    documents = context.get_input()["documents"]

    # Fan out: one activity per document, all scheduled at once
    tasks = [context.call_activity("count_words", text) for text in documents]

    # Fan in: wait for every one of them
    counts = yield context.task_all(tasks)

    return {"documents": len(documents), "counts": counts, "total": sum(counts)}


@app.activity_trigger(input_name="text")
def count_words(text: str) -> int:
    return len(text.split())
