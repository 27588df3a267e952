"""Three agents with different instructions on one function app: a Writer, a Critic and a Translator.

Each agent has its own routes (``/api/agents/<name>/...``), queue, Durable Entity and sessions; they share
one model client. ``GET /api/health`` lists all three.
"""

from __future__ import annotations

import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp, chat_client_from_settings

# One client serves every agent: it holds the connection pool and the credentials.
client = chat_client_from_settings()

INSTRUCTIONS = {
    "Writer": (
        "You are a copywriter. Write what you are asked for in plain, vivid English: short sentences, "
        "concrete details, no clichés. Answer with the text only."
    ),
    "Critic": (
        "You are an exacting editor. Review the text you are given: list at most three concrete "
        "weaknesses, each with a one-line suggestion, then give a score from 1 to 10."
    ),
    "Translator": (
        "You are a professional translator. Translate the text you are given into the language the "
        "user names (French when none is named). Keep the tone and formatting; answer with the translation only."
    ),
}

writer = Agent(client=client, name="Writer", instructions=INSTRUCTIONS["Writer"])
critic = Agent(client=client, name="Critic", instructions=INSTRUCTIONS["Critic"])
translator = Agent(client=client, name="Translator", instructions=INSTRUCTIONS["Translator"])

app = AgentFunctionApp(agents=[writer, critic], http_auth_level=func.AuthLevel.FUNCTION)
# Agents can also be added one by one, for example with their own queue name or options.
app.add_agent(translator)
