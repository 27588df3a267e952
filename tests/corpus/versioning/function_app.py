import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orders", methods=["POST"])
@app.durable_client_input(client_name="client")
async def place_order(req: func.HttpRequest, client):
    # No version is passed: the instance gets host.json's defaultVersion
    instance_id = await client.start_new("order_orchestrator", None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def order_orchestrator(context: df.DurableOrchestrationContext):
    order = context.get_input()

    # context.version is fixed when the instance starts; a running instance keeps its branch
    if context.version == "1.0":
        total = yield context.call_activity("price_v1", order)
    else:
        total = yield context.call_activity("price_v2", order)

    if order.get("needsApproval"):
        context.set_custom_status("Waiting for approval")
        yield context.wait_for_external_event("Approve")

    return {"version": context.version, "item": order["item"], "total": total}


@app.activity_trigger(input_name="order")
def price_v1(order: dict) -> float:
    return order["quantity"] * 10.0


@app.activity_trigger(input_name="order")
def price_v2(order: dict) -> float:
    # Version 2.0 gives 10% off
    return round(order["quantity"] * 10.0 * 0.9, 2)
