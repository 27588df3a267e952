import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


# The entity: one instance per key, its state is an integer
@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext):
    current_value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        current_value += context.get_input()
    elif operation == "reset":
        current_value = 0
    elif operation == "get":
        context.set_result(current_value)
    context.set_state(current_value)


# POST a number to add it (signals are one-way: the answer does not wait for the entity)
@app.route(route="counters/{key}/add", methods=["POST"])
@app.durable_client_input(client_name="client")
async def add(req: func.HttpRequest, client):
    entity_id = df.EntityId("Counter", req.route_params["key"])
    await client.signal_entity(entity_id, "add", int(req.get_body()))
    return func.HttpResponse(status_code=202)


@app.route(route="counters/{key}/reset", methods=["POST"])
@app.durable_client_input(client_name="client")
async def reset(req: func.HttpRequest, client):
    await client.signal_entity(df.EntityId("Counter", req.route_params["key"]), "reset")
    return func.HttpResponse(status_code=202)


@app.route(route="counters/{key}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def read(req: func.HttpRequest, client):
    entity_id = df.EntityId("Counter", req.route_params["key"])
    state = await client.read_entity_state(entity_id)
    if not state.entity_exists:
        return func.HttpResponse(status_code=404)
    body = {"key": entity_id.key, "value": state.entity_state}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


# An orchestration can call the entity and wait for its answer
@app.route(route="counters/{key}/double", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_double(req: func.HttpRequest, client):
    instance_id = await client.start_new("double_counter", None, req.route_params["key"])
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def double_counter(context: df.DurableOrchestrationContext):
    entity_id = df.EntityId("Counter", context.get_input())
    value = yield context.call_entity(entity_id, "get")
    yield context.call_entity(entity_id, "add", value)
    return (yield context.call_entity(entity_id, "get"))
