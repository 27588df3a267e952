"""An agent that runs on a schedule, and idle sessions that clean themselves up.

``Digest`` writes a short status digest of the shop's orders every hour (``AgentSchedule``); every digest
goes to the same session, so ``GET /api/agents/Digest/hourly-digest`` shows them all. Anyone can also ask
it questions over HTTP; sessions idle for longer than ``SESSION_TTL_HOURS`` are deleted by a maintenance
timer (``session_ttl``).

App settings (all optional):
    DIGEST_SCHEDULE: six-field NCRONTAB of the digest (default hourly, ``0 0 * * * *``).
    MAINTENANCE_SCHEDULE: NCRONTAB of the idle-session clean-up (default ``0 30 * * * *``).
    SESSION_TTL_HOURS: how long a session may stay idle before it is deleted (default 24).

The schedules are read here rather than written as ``%DIGEST_SCHEDULE%``: the Functions host resolves
``%SETTING%`` in a timer's schedule, but ``AgentSchedule`` checks for six NCRONTAB fields when the app is
built and rejects the placeholder.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import azure.functions as func
from agent_framework import Agent, tool

from durableagent import AgentFunctionApp, AgentSchedule, chat_client_from_settings

DIGEST_SCHEDULE = os.environ.get("DIGEST_SCHEDULE") or "0 0 * * * *"
MAINTENANCE_SCHEDULE = os.environ.get("MAINTENANCE_SCHEDULE") or "0 30 * * * *"
SESSION_TTL = timedelta(hours=float(os.environ.get("SESSION_TTL_HOURS") or 24))
DIGEST_SESSION = "hourly-digest"

# A stand-in for the shop's order database.
_ORDERS = [
    {"id": 1001, "status": "shipped", "total": 129.90},
    {"id": 1002, "status": "pending", "total": 54.00},
    {"id": 1003, "status": "shipped", "total": 18.50},
    {"id": 1004, "status": "returned", "total": 89.00},
    {"id": 1005, "status": "pending", "total": 240.00},
]


@tool
def order_stats() -> dict[str, object]:
    """Current order figures: count and value per status, and when they were taken (UTC)."""
    by_status: dict[str, dict[str, float]] = {}
    for order in _ORDERS:
        entry = by_status.setdefault(str(order["status"]), {"count": 0, "value": 0.0})
        entry["count"] += 1
        entry["value"] = round(entry["value"] + float(order["total"]), 2)
    return {"as_of": datetime.now(timezone.utc).isoformat(timespec="seconds"), "by_status": by_status}


digest = Agent(
    client=chat_client_from_settings(),
    name="Digest",
    instructions=(
        "You write the shop's status digest for the team: call order_stats, then report in at most four "
        "short lines what changed since your previous digest in this conversation and what needs attention."
    ),
    tools=[order_stats],
)

app = AgentFunctionApp(
    http_auth_level=func.AuthLevel.FUNCTION,
    session_ttl=SESSION_TTL,
    maintenance_schedule=MAINTENANCE_SCHEDULE,
)
app.add_agent(
    digest,
    schedules=[
        AgentSchedule(
            DIGEST_SCHEDULE,
            "Write the hourly digest.",
            session_key=DIGEST_SESSION,
            name="hourly",
        )
    ],
)
