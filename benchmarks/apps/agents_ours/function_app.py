"""Our side of ``benchmarks/agents_bench.py``: one agent on a zero-latency, in-process model.

``ScriptedChatClient`` with nothing scripted answers ``"echo: <last user message>"`` at once, so
what the benchmark measures is the framework and the host, not a model.
"""

import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp
from durableagent.testing import ScriptedChatClient

bench = Agent(client=ScriptedChatClient(), name="bench", instructions="You repeat what you are told.")

app = AgentFunctionApp(agents=[bench], http_auth_level=func.AuthLevel.ANONYMOUS)


# The benchmark's floor: one trivial HTTP function on the same host is the loopback hop a turn cannot avoid.
@app.route(route="bench/ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
