"""Every workflow of ``zoo.py`` hosted durably, plus an approval with a short request timeout."""

from datetime import timedelta

from zoo import GRAPH_BUILDERS, approval, functional, slow_steps

from durableagent import AgentFunctionApp

app = AgentFunctionApp(workflows=[build() for build in GRAPH_BUILDERS.values()])
app.add_workflow(functional)
app.add_workflow(slow_steps)

# The same approval workflow under another name, with a timeout that answers "rejected".
timed = approval()
timed.name = "timedapproval"
app.add_workflow(timed, request_timeout=timedelta(seconds=2), timeout_response=False)

# Without a timeout answer, a request that times out fails the run.
strict = approval()
strict.name = "strictapproval"
app.add_workflow(strict, request_timeout=timedelta(seconds=1))
