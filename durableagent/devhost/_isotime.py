"""ISO 8601 times as the host meets them, parsed alike on every Python we support.

Python 3.10's ``datetime.fromisoformat`` reads only its own ``isoformat`` output: no ``Z`` suffix and
exactly 3 or 6 fractional digits. .NET writes 7 (``DateTime`` round-trip format), SDKs and users write
``Z``; from 3.11 ``fromisoformat`` takes both (any number of digits, truncated to microseconds).
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["parse_iso_datetime"]

# The fraction of the seconds: it follows "HH:MM:SS" and ends at the offset or the end of the text.
_FRACTION = re.compile(r"(?<=:\d\d)[.,](\d+)")


def parse_iso_datetime(text: str) -> datetime:
    """``datetime.fromisoformat`` as on Python 3.11+ for a ``Z``/``z`` suffix and 1-9+ fractional digits.

    Naive unless the text has an offset (``Z`` is ``+00:00``).

    Raises:
        ValueError: Not an ISO time.
    """
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    fraction = _FRACTION.search(text)
    if fraction is not None:
        # Microseconds: extra digits are cut (not rounded), as fromisoformat does from 3.11.
        micro = fraction.group(1)[:6].ljust(6, "0")
        text = f"{text[: fraction.start()]}.{micro}{text[fraction.end() :]}"
    return datetime.fromisoformat(text)
