"""durableagent: Microsoft Agent Framework agents and workflows, durable on Azure Functions."""

__all__: list[str] = []
