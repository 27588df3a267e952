"""``benchmarks/workflows_bench.py``'s durable side: the chain workflow as a durable workflow.

``BENCH_SUPERSTEPS`` (default 20) sets the number of supersteps.
"""

import os

import azure.functions as func
from chain import build

from durableagent import AgentFunctionApp

app = AgentFunctionApp(
    workflows=[build(int(os.environ.get("BENCH_SUPERSTEPS", "20")))], http_auth_level=func.AuthLevel.ANONYMOUS
)
