"""What every benchmark prints about where and how it ran.

Standard library only: ``dbos_bench.py`` imports it too, from a venv without our package.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    """The interpreter and machine the numbers come from."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def command_line(repo: Path) -> str:
    """The command that ran this script, from the repository root (a venv inside it shown relative)."""
    python = sys.executable
    if python.startswith(str(repo) + os.sep):
        python = os.path.relpath(python, repo)
    return f"cd {repo} && {' '.join([python, Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}"


def widths(text: str) -> list[int]:
    """``--fan-out`` value: one width or a comma-separated list."""
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("expected positive widths, e.g. 1000 or 100,300,1000,3000")
    return values
