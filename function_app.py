"""The deployable function app.

For now: a durable hello-world (HTTP starter, chained activities, a counter entity). The agents
built from settings replace it as the agent features land.
"""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["functionName"], None, body.decode() or None)
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def hello_chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    elif context.operation_name == "reset":
        value = 0
    context.set_state(value)
    context.set_result(value)
