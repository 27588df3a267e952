"""One agent with two tools, hosted durably: a unit converter and a small FAQ lookup.

The agent ``ShopAssistant`` answers customers of a small online shop. Every conversation (session)
lives in its own Durable Entity, so follow-up questions keep their context across restarts.

Model: Azure OpenAI when ``AZURE_OPENAI_ENDPOINT`` is set, OpenAI when ``OPENAI_API_KEY`` is set,
otherwise an offline model that says so (see ``chat_client_from_settings``).
"""

from __future__ import annotations

from typing import Annotated

import azure.functions as func
from agent_framework import Agent, tool
from pydantic import Field

from durableagent import AgentFunctionApp, chat_client_from_settings

# Units the converter knows, as (dimension, factor to the dimension's base unit).
_UNITS: dict[str, tuple[str, float]] = {
    "mm": ("length", 0.001),
    "cm": ("length", 0.01),
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "in": ("length", 0.0254),
    "ft": ("length", 0.3048),
    "mi": ("length", 1609.344),
    "g": ("mass", 0.001),
    "kg": ("mass", 1.0),
    "oz": ("mass", 0.028349523125),
    "lb": ("mass", 0.45359237),
    "ml": ("volume", 0.001),
    "l": ("volume", 1.0),
    "gal": ("volume", 3.785411784),
}
_TEMPERATURES = {"c", "f", "k"}

FAQ: dict[str, str] = {
    "shipping": "Orders ship within 2 business days; standard delivery takes 3-5 days, express 1-2 days.",
    "returns": "Unused items can be returned within 30 days for a full refund; return shipping is free.",
    "warranty": "All tools carry a 2-year warranty covering manufacturing defects.",
    "hours": "Customer service answers Monday to Friday, 8:00-18:00 CET.",
    "payment": "We accept credit cards, PayPal and bank transfer; invoices are payable within 14 days.",
}


def _to_celsius(value: float, unit: str) -> float:
    return {"c": value, "f": (value - 32) * 5 / 9, "k": value - 273.15}[unit]


def _from_celsius(value: float, unit: str) -> float:
    return {"c": value, "f": value * 9 / 5 + 32, "k": value + 273.15}[unit]


@tool
def convert_units(
    value: Annotated[float, Field(description="The quantity to convert.")],
    from_unit: Annotated[
        str, Field(description="Unit of the value: mm, cm, m, km, in, ft, mi, g, kg, oz, lb, ml, l, gal, C, F or K.")
    ],
    to_unit: Annotated[str, Field(description="Unit to convert to (same choices).")],
) -> str:
    """Convert a quantity between units of length, mass, volume or temperature."""
    source, target = from_unit.strip().lower(), to_unit.strip().lower()
    for unit in (source, target):
        if unit not in _UNITS and unit not in _TEMPERATURES:
            return f"Unknown unit '{unit}': use one of {', '.join([*_UNITS, 'C', 'F', 'K'])}."
    source_dimension = "temperature" if source in _TEMPERATURES else _UNITS[source][0]
    target_dimension = "temperature" if target in _TEMPERATURES else _UNITS[target][0]
    if source_dimension != target_dimension:
        return f"Cannot convert {source_dimension} ({from_unit}) to {target_dimension} ({to_unit})."
    if source_dimension == "temperature":
        result = _from_celsius(_to_celsius(value, source), target)
    else:
        result = value * _UNITS[source][1] / _UNITS[target][1]
    return f"{value:g} {from_unit} = {result:.4g} {to_unit}"


@tool
def faq_lookup(
    topic: Annotated[str, Field(description="One of: " + ", ".join(FAQ) + ".")],
) -> str:
    """Look up the shop's official answer on a topic (shipping, returns, warranty, hours, payment)."""
    answer = FAQ.get(topic.strip().lower())
    if answer is None:
        return f"No FAQ entry for '{topic}'. Known topics: {', '.join(FAQ)}."
    return answer


shop_assistant = Agent(
    client=chat_client_from_settings(),
    name="ShopAssistant",
    instructions=(
        "You are the customer assistant of a small online tool shop. Answer briefly. "
        "Use faq_lookup for questions about shipping, returns, warranty, opening hours or payment, "
        "and quote its answer rather than guessing. Use convert_units for any unit conversion."
    ),
    tools=[convert_units, faq_lookup],
)

app = AgentFunctionApp(agents=[shop_assistant], http_auth_level=func.AuthLevel.FUNCTION)
