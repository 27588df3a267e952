"""Agents chained in a durable orchestration: a Researcher, a Writer and an Editor, one after the other.

``POST /api/articles`` with ``{"topic": "..."}`` starts ``article_pipeline`` and answers 202 with the
usual check-status links. The orchestration hands each agent's text to the next one:

    Researcher (notes on the topic) -> Writer (a draft from the notes) -> Editor (the final text)

Each step is a durable agent call (``yield agent.run(...)``): its result is kept in the orchestration's
history, so a restart of the app resumes after the last finished step and never asks a model twice. The
output holds the final article and every intermediate result; the custom status says which step runs.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp, chat_client_from_settings

MAX_TOPIC_CHARS = 500

INSTRUCTIONS = {
    "Researcher": (
        "You are a product researcher for an online tool shop. For the topic you are given, list the facts, "
        "figures and customer questions a writer needs, as at most eight short bullet points. No prose."
    ),
    "Writer": (
        "You are a copywriter for an online tool shop. Turn research notes into a short blog post of at most "
        "three paragraphs in plain, vivid English. Use only facts from the notes. Answer with the text only."
    ),
    "Editor": (
        "You are a meticulous editor. Tighten the text you are given, fix grammar and tone, keep every fact, "
        "and add a title on the first line. Answer with the edited text only."
    ),
}

# The chain: each step's prompt gets the topic and the previous step's text.
STEPS = [
    ("Researcher", "Research this topic for a blog post: {topic}"),
    ("Writer", "Write a blog post about '{topic}' from these research notes:\n\n{previous}"),
    ("Editor", "Edit this blog post about '{topic}':\n\n{previous}"),
]

client = chat_client_from_settings()
app = AgentFunctionApp(
    agents=[Agent(client=client, name=name, instructions=text) for name, text in INSTRUCTIONS.items()],
    http_auth_level=func.AuthLevel.FUNCTION,
)


def _json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@app.function_name(name="start_article")
@app.route(route="articles", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_article(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start ``article_pipeline`` for ``{"topic": "..."}``; answers 202 with the check-status links."""
    try:
        body = req.get_json()
    except ValueError:
        body = None
    topic = body.get("topic") if isinstance(body, dict) else None
    if not isinstance(topic, str) or not topic.strip() or len(topic) > MAX_TOPIC_CHARS:
        message = f'Send {{"topic": "..."}} with 1-{MAX_TOPIC_CHARS} characters.'
        return _json_response({"error": {"code": "topic_required", "message": message}}, 400)
    instance_id = await client.start_new("article_pipeline", client_input={"topic": topic.strip()})
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def article_pipeline(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Researcher -> Writer -> Editor: each agent's answer is the next agent's input."""
    topic: str = context.get_input()["topic"]
    previous = ""
    steps: list[dict[str, str]] = []
    for done, (name, prompt) in enumerate(STEPS):
        context.set_custom_status({"completedSteps": done, "of": len(STEPS), "running": name})
        # Each agent gets its own session for this instance (@<agent>@orch-<instance id>).
        response = yield app.get_agent(context, name).run(prompt.format(topic=topic, previous=previous))
        previous = response.text
        if not previous.strip():
            raise RuntimeError(f"{name} returned no text; the chain stops here.")
        steps.append({"agent": name, "sessionId": response.session_id, "text": previous})
    context.set_custom_status({"completedSteps": len(STEPS), "of": len(STEPS), "running": None})
    return {"topic": topic, "article": previous, "steps": steps}
