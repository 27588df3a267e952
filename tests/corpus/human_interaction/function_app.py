import json
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="expenses", methods=["POST"])
@app.durable_client_input(client_name="client")
async def submit_expense(req: func.HttpRequest, client):
    instance_id = await client.start_new("expense_approval", None, req.get_json())
    return client.create_check_status_response(req, instance_id)


# A manager answers here: {"approved": true, "by": "Dana"}
@app.route(route="expenses/{instanceId}/decision", methods=["POST"])
@app.durable_client_input(client_name="client")
async def decide(req: func.HttpRequest, client):
    await client.raise_event(req.route_params["instanceId"], "Decision", req.get_json())
    return func.HttpResponse(status_code=202)


@app.orchestration_trigger(context_name="context")
def expense_approval(context: df.DurableOrchestrationContext):
    expense = context.get_input()
    timeout = expense.get("timeoutSeconds", 24 * 60 * 60)
    deadline = context.current_utc_datetime + timedelta(seconds=timeout)

    context.set_custom_status("Waiting for a decision")
    decision_task = context.wait_for_external_event("Decision")
    timeout_task = context.create_timer(deadline)
    winner = yield context.task_any([decision_task, timeout_task])

    if winner == decision_task:
        timeout_task.cancel()
        decision = decision_task.result
        # client.raise_event sends the payload as JSON text, so a dict arrives here as a string
        if isinstance(decision, str):
            decision = json.loads(decision)
        return (yield context.call_activity("record_decision", {**expense, **decision}))

    return (yield context.call_activity("escalate", expense))


@app.activity_trigger(input_name="expense")
def record_decision(expense: dict) -> str:
    verdict = "approved" if expense["approved"] else "rejected"
    return f"Expense '{expense['description']}' {verdict} by {expense['by']}"


@app.activity_trigger(input_name="expense")
def escalate(expense: dict) -> str:
    return f"Expense '{expense['description']}' escalated: no decision in time"
