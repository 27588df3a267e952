"""Agents in parallel: one question to a panel of experts at once, then a Moderator sums up.

``POST /api/panels`` with ``{"question": "..."}`` starts ``expert_panel`` and answers 202 with the usual
check-status links. The orchestration sends the question to every expert in ``EXPERTS`` at the same time
(fan-out with ``context.task_all``), waits for all of them (fan-in), and hands their answers to the
``Moderator``, who weighs them and gives a recommendation. The output holds each expert's answer and the
summary; the custom status says which stage runs.

Each expert is its own agent (own instructions, own Durable Entity), so their runs really overlap: the
panel takes about as long as its slowest expert, not the sum of all of them.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp, chat_client_from_settings

MAX_QUESTION_CHARS = 1000

# The experts answer in parallel; the Moderator reads all of their answers.
EXPERTS = ["MarketAnalyst", "Engineer", "CustomerAdvocate"]
INSTRUCTIONS = {
    "MarketAnalyst": (
        "You are a market analyst for an online tool shop. Judge the question by demand, competition, "
        "pricing and margin. Answer in at most five sentences and end with 'Verdict: for', 'against' or 'unsure'."
    ),
    "Engineer": (
        "You are a product engineer for an online tool shop. Judge the question by feasibility, quality, "
        "safety and support effort. Answer in at most five sentences and end with 'Verdict: for', 'against' "
        "or 'unsure'."
    ),
    "CustomerAdvocate": (
        "You speak for the shop's customers: tradespeople and DIY enthusiasts. Judge the question by what "
        "they need, what annoys them and what they would pay for. Answer in at most five sentences and end "
        "with 'Verdict: for', 'against' or 'unsure'."
    ),
    "Moderator": (
        "You moderate a panel of experts. Given a question and the experts' answers, summarize where they "
        "agree and disagree in at most four sentences, then give one recommendation on its own line."
    ),
}

EXPERT_PROMPT = "The panel's question: {question}"
SUMMARY_PROMPT = "The panel's question: {question}\n\nThe experts' answers:\n\n{answers}"

client = chat_client_from_settings()
app = AgentFunctionApp(
    agents=[Agent(client=client, name=name, instructions=text) for name, text in INSTRUCTIONS.items()],
    http_auth_level=func.AuthLevel.FUNCTION,
)


def _json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@app.function_name(name="start_panel")
@app.route(route="panels", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_panel(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start ``expert_panel`` for ``{"question": "..."}``; answers 202 with the check-status links."""
    try:
        body = req.get_json()
    except ValueError:
        body = None
    question = body.get("question") if isinstance(body, dict) else None
    if not isinstance(question, str) or not question.strip() or len(question) > MAX_QUESTION_CHARS:
        message = f'Send {{"question": "..."}} with 1-{MAX_QUESTION_CHARS} characters.'
        return _json_response({"error": {"code": "question_required", "message": message}}, 400)
    instance_id = await client.start_new("expert_panel", client_input={"question": question.strip()})
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def expert_panel(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Fan out the question to every expert, fan in their answers, then let the Moderator sum up."""
    question: str = context.get_input()["question"]

    context.set_custom_status({"stage": "asking", "experts": EXPERTS})
    prompt = EXPERT_PROMPT.format(question=question)
    # Start every run first, then wait for all of them: the runs overlap.
    runs = [app.get_agent(context, name).run(prompt) for name in EXPERTS]
    responses = yield context.task_all(runs)  # in the order of EXPERTS; raises if any run failed
    answers = [{"agent": name, "text": r.text} for name, r in zip(EXPERTS, responses, strict=True)]

    context.set_custom_status({"stage": "summarizing", "experts": EXPERTS})
    listed = "\n\n".join(f"{a['agent']}:\n{a['text']}" for a in answers)
    summary = yield app.get_agent(context, "Moderator").run(SUMMARY_PROMPT.format(question=question, answers=listed))

    context.set_custom_status({"stage": "done", "experts": EXPERTS})
    return {"question": question, "answers": answers, "summary": summary.text}
