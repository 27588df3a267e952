import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


# An HTTP-triggered function that starts any orchestrator of this app by name
@app.route(route="orchestrators/{functionName}")
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    function_name = req.route_params.get("functionName")
    instance_id = await client.start_new(function_name)
    return client.create_check_status_response(req, instance_id)


# The orchestrator: three activity calls, each one waiting for the previous one
@app.orchestration_trigger(context_name="context")
def hello_orchestrator(context: df.DurableOrchestrationContext):
    outputs = []
    for city in ["Tokyo", "Seattle", "London"]:
        greeting = yield context.call_activity("say_hello", city)
        outputs.append(greeting)
    return outputs


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"
