"""Our side of ``benchmarks/agents_bench.py``: one agent on a zero-latency, in-process model.

``ScriptedChatClient`` with nothing scripted answers ``"echo: <last user message>"`` at once, so
what the benchmark measures is the framework and the host, not a model. It keeps no record of its
calls, as upstream's ``EchoChatClient`` keeps none: each record holds every message the model saw,
so over a benchmark's thousands of turns the records would grow the heap, and the garbage
collector's work with it (measured: 0.2 -> 0.9 ms of collection per turn over three rounds of many
sessions).
"""

from typing import Any

import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp
from durableagent.testing import ScriptedChatClient


class _Forgetful(ScriptedChatClient):
    """Forgets each call once answered: the package from before ``record_calls`` (``bench_all --before``)."""

    def _answer(self, *args: Any, **kwargs: Any) -> Any:
        answer = super()._answer(*args, **kwargs)
        self.clear_calls()
        return answer


def _echo_model() -> ScriptedChatClient:
    try:
        return ScriptedChatClient(record_calls=False)
    except TypeError:
        return _Forgetful()


bench = Agent(client=_echo_model(), name="bench", instructions="You repeat what you are told.")

app = AgentFunctionApp(agents=[bench], http_auth_level=func.AuthLevel.ANONYMOUS)


# The benchmark's floor: one trivial HTTP function on the same host is the loopback hop a turn cannot avoid.
@app.route(route="bench/ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
