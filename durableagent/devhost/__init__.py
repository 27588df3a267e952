"""Local host for Azure Functions Python apps with the Durable Functions extension.

Runs any ``DFApp``/``FunctionApp`` app on one machine with Python and Azurite alone. It imports
nothing else from ``durableagent``.
"""
