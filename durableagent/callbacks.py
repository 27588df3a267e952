"""Callbacks that observe agent runs: ``from durableagent.callbacks import AgentCallbackContext,
AgentResponseCallbackProtocol`` (the import path the product description documents).

A module of its own, not a name on ``durableagent``: importing it loads Agent Framework, which the
lazy package root (PEP 562) only does on first use.
"""

from __future__ import annotations

from ._callbacks import AgentCallbackContext, AgentResponseCallbackProtocol

__all__ = ["AgentCallbackContext", "AgentResponseCallbackProtocol"]
